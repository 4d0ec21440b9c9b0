"""Delivery reconciliation on Dagster: every 5 minutes a run asks Twilio about messages stuck
without a final status and applies the answers (`outreach_core.messaging.reconcile`). The
teams are the `teams` partitions (every team with leads has one: leads only come from
uploads) unless the run config names them. Decisions are core's; this schedules and
reports."""

import uuid
from datetime import timedelta

import dagster as dg

from outreach_assets.campaigns import TwilioResource, campaign_send_job
from outreach_assets.jobs import SEND_CAMPAIGN_TAG
from outreach_assets.partitions import teams_partitions
from outreach_assets.runs import live_runs
from outreach_core.messaging.reconcile import reconcile_stuck

RECONCILE_CRON = "*/5 * * * *"


class ReconcileConfig(dg.Config):
    # Stuck: no status change for this long (callbacks normally arrive within seconds).
    older_than_minutes: int = 15
    # Older messages are no longer asked about.
    max_age_hours: int = 72
    # Provider requests a run makes at most.
    limit: int = 500
    # Only these teams (UUIDs); every team with a `teams` partition when empty.
    team_ids: list[str] | None = None


def _teams(instance: dg.DagsterInstance, named: list[str] | None) -> list[uuid.UUID]:
    keys = named or instance.get_dynamic_partitions(teams_partitions.name)
    teams = []
    for key in keys:
        try:
            teams.append(uuid.UUID(key))
        except ValueError:
            continue  # not a team id (a partition added by hand)
    return teams


@dg.op(description="Ask Twilio about messages stuck without a final status; apply the answers.")
def reconcile_deliveries_op(
    context: dg.OpExecutionContext, config: ReconcileConfig, twilio: TwilioResource
) -> None:
    def may_recover(_team_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
        # A live send run of the campaign recovers its own claims.
        tags = {SEND_CAMPAIGN_TAG: str(campaign_id)}
        return not live_runs(context.instance, campaign_send_job.name, tags)

    stats = reconcile_stuck(
        twilio.gateway(),
        timedelta(minutes=config.older_than_minutes),
        config.limit,
        _teams(context.instance, config.team_ids),
        max_age=timedelta(hours=config.max_age_hours),
        may_recover=may_recover,
        run_id=f"reconcile:{context.run_id}",
    )
    context.log.info(
        f"checked {stats.checked}, updated {stats.updated}, unchanged {stats.unchanged}, "
        f"errors {stats.errors}; claims in doubt {stats.in_doubt}: recovered "
        f"{stats.recovered}, requeued {stats.requeued}, campaigns deferred {len(stats.deferred)}"
        + (f"; stopped: {stats.stopped}" if stats.stopped else "")
    )
    for unknown in stats.unknown:
        context.log.warning(
            f"Twilio has no message {unknown.sid} "
            f"(team {unknown.team_id}, message {unknown.message_id}): left as it is"
        )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Reconcile delivery statuses with Twilio (started by its schedule).",
)
def reconcile_deliveries_job() -> None:
    reconcile_deliveries_op()


@dg.schedule(
    job=reconcile_deliveries_job,
    cron_schedule=RECONCILE_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def reconcile_deliveries_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """A run every 5 minutes, unless the last one is still going."""
    if live_runs(context.instance, reconcile_deliveries_job.name):
        return dg.SkipReason("the previous reconciliation is still running")
    return dg.RunRequest()
