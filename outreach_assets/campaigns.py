"""Campaign sending on Dagster: a sensor starts scheduled campaigns at their start, completes
those with nothing left to send, and launches at most one send run per campaign that has
messages due; the run sends through `outreach_core.messaging.sender`. Decisions are core's;
this schedules and reports."""

import contextlib
import uuid

import dagster as dg
from sqlalchemy import text

from outreach_assets.jobs import POOL_TAG, SEND_CAMPAIGN_TAG, SEND_POOL
from outreach_assets.runs import live_runs, skip_reason
from outreach_core.db.engine import system_session
from outreach_core.db.states import CampaignStatus
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import InvalidTransition, transition
from outreach_core.messaging.sender import send_campaign
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.settings import get_settings

# The daemon's loop is 5 s; 1 s makes the sensor tick on every loop (see sensors.py).
SEND_SENSOR_INTERVAL_SECONDS = 1


class TwilioResource(dg.ConfigurableResource):
    """Twilio: the account, and where to reach it (the sandbox under `outreach dev` and in
    tests). Credentials default to TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN."""

    base_url: str | None = None

    def gateway(self) -> TwilioGateway:
        settings = get_settings()
        if self.base_url is not None:
            settings = settings.model_copy(update={"twilio_base_url": self.base_url})
        return TwilioGateway.from_settings(settings)


def default_twilio() -> TwilioResource:
    return TwilioResource(base_url=get_settings().twilio_base_url)


class SendConfig(dg.Config):
    team_id: str
    campaign_id: str


@dg.op(description="Send one campaign's due messages through the guardrails and the outbox.")
def send_campaign_op(
    context: dg.OpExecutionContext, config: SendConfig, twilio: TwilioResource
) -> None:
    stats = send_campaign(
        uuid.UUID(config.team_id),
        uuid.UUID(config.campaign_id),
        twilio.gateway(),
        run_id=context.run_id,
        log_progress=context.log.info,
    )
    context.log.info(
        f"sent {stats.sent}, rescheduled {stats.rescheduled}, blocked {stats.blocked}, "
        f"retried {stats.retried}, failed {stats.failed}, recovered {stats.recovered}"
        + (f"; stopped: {stats.stopped}" if stats.stopped else "")
    )


@dg.job(
    tags={POOL_TAG: SEND_POOL},
    executor_def=dg.in_process_executor,
    description="Send a campaign's due messages (launched by campaign_send_sensor).",
)
def campaign_send_job() -> None:
    send_campaign_op()


@dg.sensor(
    job=campaign_send_job,
    minimum_interval_seconds=SEND_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def campaign_send_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Scheduled campaigns whose start has come become active; active ones with nothing
    left to send complete; each active one with messages due gets a send run, unless one
    is already queued or running for it."""
    with system_session() as session:
        work = session.execute(text("SELECT * FROM outreach_campaigns_with_work()")).all()
    requests = []
    sends = 0
    for team_id, campaign_id, kind in work:
        if kind == "start":
            _move(team_id, campaign_id, CampaignStatus.ACTIVE, "schedule start reached")
        elif kind == "complete":
            _move(team_id, campaign_id, CampaignStatus.COMPLETED, "every message is out")
        else:
            sends += 1
            tags = {SEND_CAMPAIGN_TAG: str(campaign_id)}
            if live_runs(context.instance, campaign_send_job.name, tags):
                continue
            config = SendConfig(team_id=str(team_id), campaign_id=str(campaign_id))
            requests.append(
                dg.RunRequest(run_config=dg.RunConfig(ops={"send_campaign_op": config}), tags=tags)
            )
    return dg.SensorResult(
        run_requests=requests, skip_reason=skip_reason(sends, requests, "campaigns")
    )


def _move(team_id: uuid.UUID, campaign_id: uuid.UUID, to: CampaignStatus, why: str) -> None:
    # Someone else may have moved it first (paused, cancelled): theirs stands.
    with contextlib.suppress(InvalidTransition):
        transition(team_id, campaign_id, to, defaults.SYSTEM_ACTOR, why)
