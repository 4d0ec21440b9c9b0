"""Replies on Dagster: a sensor launches, per team with work, one run that processes inbound
messages the webhook queued during a burst or whose processing failed (or died), sends the
replies due in the outbox (approved drafts, answers decided after the webhook returned,
rescheduled ones) and emails pending deliverables. Decisions are core's; this schedules
and reports."""

# No `from __future__ import annotations`: Dagster reads the op's config annotation at runtime.

import uuid
from dataclasses import replace
from datetime import timedelta

import dagster as dg
from sqlalchemy import text

from outreach_assets.campaigns import TwilioResource
from outreach_assets.jobs import POOL_TAG, REPLIES_TEAM_TAG, SEND_POOL
from outreach_assets.runs import skip_reason, teams_without_live_run
from outreach_core.db.engine import system_session
from outreach_core.deliverables.email import SmtpConfig
from outreach_core.inbox.deliverables import send_pending_deliverables, smtp_config
from outreach_core.inbox.retry import process_pending
from outreach_core.messaging.sender import send_replies
from outreach_core.settings import get_settings

# Seconds between the sensor's looks for work.
REPLIES_SENSOR_INTERVAL_SECONDS = 5


class SmtpResource(dg.ConfigurableResource):
    """Where deliverables are emailed; every field defaults to the OUTREACH_SMTP_* settings
    (the sandbox SMTP server under `outreach dev`)."""

    host: str | None = None
    port: int | None = None

    def config(self) -> SmtpConfig:
        config = smtp_config()
        return replace(config, host=self.host or config.host, port=self.port or config.port)


class RepliesConfig(dg.Config):
    team_id: str


@dg.op(description="Process queued or failed inbound messages, send replies, email deliverables.")
def replies_op(
    context: dg.OpExecutionContext,
    config: RepliesConfig,
    twilio: TwilioResource,
    smtp: SmtpResource,
) -> None:
    team_id = uuid.UUID(config.team_id)
    processed = process_pending(team_id, log_progress=context.log.info)
    sent = send_replies(team_id, twilio.gateway(), context.run_id, log_progress=context.log.info)
    emailed = send_pending_deliverables(team_id, smtp.config())
    context.log.info(
        f"inbound processed {processed}; replies sent {sent.sent}, blocked "
        f"{sent.blocked}, rescheduled {sent.rescheduled}; deliverables sent {emailed.sent}, "
        f"failed {emailed.failed}, retrying {emailed.retrying}"
    )


@dg.job(
    tags={POOL_TAG: SEND_POOL},
    executor_def=dg.in_process_executor,
    description="A team's replies work (launched by replies_sensor).",
)
def replies_job() -> None:
    replies_op()


@dg.sensor(
    job=replies_job,
    minimum_interval_seconds=REPLIES_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def replies_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per team with replies work, unless one is queued or running for it."""
    settings = get_settings()
    with system_session() as session:
        teams = session.scalars(
            text("SELECT DISTINCT team_id FROM outreach_replies_with_work(:inbound, :sending)"),
            {
                "inbound": timedelta(seconds=settings.inbound_retry_after_seconds),
                "sending": timedelta(seconds=settings.deliverable_stale_seconds),
            },
        ).all()
    requests = []
    for team_id in teams_without_live_run(
        context.instance, replies_job.name, REPLIES_TEAM_TAG, teams
    ):
        tags = {REPLIES_TEAM_TAG: str(team_id)}
        config = RepliesConfig(team_id=str(team_id))
        requests.append(
            dg.RunRequest(run_config=dg.RunConfig(ops={"replies_op": config}), tags=tags)
        )
    return dg.SensorResult(run_requests=requests, skip_reason=skip_reason(len(teams), requests))


def default_smtp() -> SmtpResource:
    return SmtpResource()
