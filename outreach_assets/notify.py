"""Team notifications on Dagster: a sensor launches, per team with notifications due, one
run that posts them to the team's incoming webhook (`outreach_core.notify.deliver`).
Decisions are core's; this schedules and reports."""

# No `from __future__ import annotations`: Dagster reads the op's config annotation at runtime.

import uuid
from datetime import timedelta

import dagster as dg
from sqlalchemy import text

from outreach_assets.jobs import POOL_TAG
from outreach_assets.runs import skip_reason, teams_without_live_run
from outreach_core.db.engine import system_session
from outreach_core.notify.deliver import deliver_pending
from outreach_core.settings import get_settings

# Notification runs have their own slots (`notify_concurrency`): a long campaign send never
# holds back a budget alert; one run per team at a time.
NOTIFY_POOL = "notify"
NOTIFY_TEAM_TAG = "outreach/notify_team"
# Seconds between the sensor's looks for notifications due.
NOTIFY_SENSOR_INTERVAL_SECONDS = 5


class NotifyConfig(dg.Config):
    team_id: str


@dg.op(description="Post a team's due notifications to its incoming webhook.")
def notify_op(context: dg.OpExecutionContext, config: NotifyConfig) -> None:
    stats = deliver_pending(uuid.UUID(config.team_id))
    context.log.info(
        f"notifications sent {stats.sent}, failed {stats.failed}, retrying {stats.retrying}"
    )


@dg.job(
    tags={POOL_TAG: NOTIFY_POOL},
    executor_def=dg.in_process_executor,
    description="Post a team's notifications (launched by notify_sensor).",
)
def notify_job() -> None:
    notify_op()


@dg.sensor(
    job=notify_job,
    minimum_interval_seconds=NOTIFY_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def notify_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per team with notifications due (pending, a retry whose time has come, or a
    claim left by a dead run), unless one is queued or running for it."""
    stale = timedelta(seconds=get_settings().notify_stale_seconds)
    with system_session() as session:
        teams = session.scalars(
            text("SELECT team_id FROM outreach_notifications_due(:stale)"), {"stale": stale}
        ).all()
    requests = []
    for team_id in teams_without_live_run(
        context.instance, notify_job.name, NOTIFY_TEAM_TAG, teams
    ):
        tags = {NOTIFY_TEAM_TAG: str(team_id)}
        config = NotifyConfig(team_id=str(team_id))
        requests.append(
            dg.RunRequest(run_config=dg.RunConfig(ops={"notify_op": config}), tags=tags)
        )
    return dg.SensorResult(run_requests=requests, skip_reason=skip_reason(len(teams), requests))
