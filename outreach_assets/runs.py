"""Reading the run queue: which runs are still alive, who owns a run's uploads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sized

import dagster as dg

# Runs that may still do work: waiting in the queue, starting, running or stopping.
LIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
WAITING = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)
# Set on a failed run by Dagster when run retries will start it again.
WILL_RETRY_TAG = "dagster/will_retry"
PARTITION_TAG = "dagster/partition"
TEAM_TAG = "dagster/partition/team"
SECTOR_TAG = "dagster/partition/sector"


def run_owner(run: dg.DagsterRun) -> str:
    """Who owns the uploads a run claims: the first run of its group. Retries and
    re-executions keep it, so they resume what the first attempt took."""
    return run.root_run_id or run.run_id


def live_runs(
    instance: dg.DagsterInstance, job: str, tags: dict[str, str] | None = None
) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=LIVE, tags=tags or {}))
    )


def teams_without_live_run(
    instance: dg.DagsterInstance, job: str, team_tag: str, team_ids: Iterable[uuid.UUID]
) -> list[uuid.UUID]:
    """Of `team_ids`, those with no queued or running run of `job` (tagged `team_tag`): one
    run query, however many teams have work."""
    busy = {run.tags.get(team_tag) for run in live_runs(instance, job)}
    return [team_id for team_id in team_ids if str(team_id) not in busy]


def skip_reason(with_work: int, requests: Sized, what: str = "teams") -> str | None:
    """Why a tick launched nothing: nothing to do, or every run it would launch is live."""
    if requests:
        return None
    if with_work:
        return f"{with_work} {what} with work, each with a run queued or running already"
    return "nothing due"
