"""Follow-up workflows on Dagster: a sensor (every `workflow_tick_seconds`, a minute by
default) evaluates every team's triggers, creating the executions whose trigger holds, and
launches, per team with executions due, one run that executes them through the guardrails.
Follow-up SMS the run queues are sent by the replies run. Decisions are core's
(`outreach_core.workflows`); this schedules and reports."""

# No `from __future__ import annotations`: Dagster reads the op's config annotation at runtime.

import uuid
from datetime import UTC, datetime

import dagster as dg

from outreach_assets.jobs import POOL_TAG, SEND_POOL
from outreach_assets.replies import SmtpResource
from outreach_assets.runs import skip_reason, teams_without_live_run
from outreach_core.settings import get_settings
from outreach_core.workflows.executor import run_due
from outreach_core.workflows.tick import tick

# One workflows run per team at a time.
WORKFLOWS_TEAM_TAG = "outreach/workflows_team"
# A run's share of work, in minutes of the team's rate limit: it then ends and the next
# tick starts another, so a long backlog never holds a send slot for hours.
RUN_MINUTES = 5


class WorkflowsConfig(dg.Config):
    team_id: str


@dg.op(description="Run a team's due workflow executions through the guardrails.")
def workflows_op(
    context: dg.OpExecutionContext, config: WorkflowsConfig, smtp: SmtpResource
) -> None:
    stats = run_due(
        uuid.UUID(config.team_id),
        smtp=smtp.config(),
        max_executions=get_settings().followups_per_team_per_minute * RUN_MINUTES,
        log_progress=context.log.info,
    )
    context.log.info(f"workflow executions: {stats.summary()}")


@dg.job(
    tags={POOL_TAG: SEND_POOL},
    executor_def=dg.in_process_executor,
    description="A team's due workflow executions (launched by workflow_sensor).",
)
def workflows_job() -> None:
    workflows_op()


@dg.sensor(
    job=workflows_job,
    minimum_interval_seconds=get_settings().workflow_tick_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def workflow_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Schedule the executions of every item whose trigger holds (set-based, one statement
    per workflow), then one run per team with executions due, unless one is queued or
    running for it. Overlapping ticks create each execution once (its unique key)."""
    now = datetime.now(UTC)
    result = tick(now)
    # The tick's interval names the run: a tick evaluated again after a crash (before its
    # cursor was saved) asks for the same run, and Dagster starts no second one.
    interval = int(now.timestamp()) // get_settings().workflow_tick_seconds
    requests = []
    idle = teams_without_live_run(
        context.instance, workflows_job.name, WORKFLOWS_TEAM_TAG, result.due
    )
    for team_id in idle:
        tags = {WORKFLOWS_TEAM_TAG: str(team_id)}
        config = WorkflowsConfig(team_id=str(team_id))
        requests.append(
            dg.RunRequest(
                run_key=f"{team_id}:{interval}",
                run_config=dg.RunConfig(ops={"workflows_op": config}),
                tags=tags,
            )
        )
    context.log.info(
        f"{result.created} workflow executions scheduled across {len(result.teams)} teams "
        f"in {result.seconds:.2f} s; {len(result.paused)} teams paused"
        + (f"; {len(result.failed)} teams failed (see the log)" if result.failed else "")
    )
    return dg.SensorResult(
        run_requests=requests, skip_reason=skip_reason(len(result.due), requests)
    )
