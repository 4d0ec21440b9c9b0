"""Sensors of the upload queue: received uploads become ingest runs, a failed run fails its
uploads with the reason, and a watchdog puts back in the queue (or fails) any upload that
nothing owns any more. The decisions are `outreach_core.uploads.queue`'s; these read the
run queue and translate."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg

from outreach_assets.ingestion import UploadRef, UploadSelection
from outreach_assets.jobs import ingest_job
from outreach_assets.partitions import partition_key, teams_partitions
from outreach_assets.runs import (
    LIVE,
    SECTOR_TAG,
    TEAM_TAG,
    WAITING,
    WILL_RETRY_TAG,
    live_runs,
    run_owner,
)
from outreach_core.db.states import UploadStatus
from outreach_core.settings import get_settings
from outreach_core.uploads.processing import fail_run_uploads
from outreach_core.uploads.queue import (
    RunQueueState,
    UnfinishedUpload,
    list_pending_uploads,
    list_unfinished_uploads,
    plan_ingest_runs,
    requeue_or_fail,
)

# The daemon looks at its sensors every 5 s and evaluates those whose interval has passed
# since their last tick started. An interval of 5 s would, with the tick's own time, be
# missed every other loop (ticks 10 s apart); 1 s makes the upload sensor tick on every loop.
UPLOAD_SENSOR_INTERVAL_SECONDS = 1


def _named(run: dg.DagsterRun) -> list[UploadRef]:
    """The uploads a run was started for (its run config)."""
    config = run.run_config.get("ops", {}).get("validated_records", {}).get("config", {})
    return [UploadRef(**ref) for ref in config.get("uploads", [])]


def _partition(run: dg.DagsterRun) -> tuple[uuid.UUID, str] | None:
    if TEAM_TAG not in run.tags or SECTOR_TAG not in run.tags:
        return None
    return uuid.UUID(run.tags[TEAM_TAG]), run.tags[SECTOR_TAG]


def _queue_state(instance: dg.DagsterInstance) -> RunQueueState:
    live = live_runs(instance, ingest_job.name)
    partitions = [(run, _partition(run)) for run in live]
    return RunQueueState(
        assigned=frozenset(uuid.UUID(ref.id) for run in live for ref in _named(run)),
        waiting=frozenset(p for run, p in partitions if p is not None and run.status in WAITING),
        live_per_team=Counter(p[0] for _, p in partitions if p is not None),
    )


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=UPLOAD_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def upload_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Received uploads of one team x sector go into one run (at most `uploads_per_run`),
    with the teams taking turns. A partition whose run is still waiting in the queue gets
    no second one: its new uploads join the next batch. The run key names the batch, so a
    sensor that crashes before saving its tick asks again for the same run and Dagster
    starts no second one."""
    pending = list_pending_uploads()
    if not pending:
        return dg.SensorResult(skip_reason="no received uploads")
    settings = get_settings()
    batches = plan_ingest_runs(
        pending,
        _queue_state(context.instance),
        uploads_per_run=settings.uploads_per_run,
        runs_per_team=settings.ingest_runs_per_team,
    )
    if not batches:
        return dg.SensorResult(
            skip_reason=f"{len(pending)} received uploads wait for runs already queued"
        )
    known = set(context.instance.get_dynamic_partitions(teams_partitions.name))
    new_teams = sorted({str(b.team_id) for b in batches} - known)
    requests = [
        dg.RunRequest(
            run_key=batch.run_key,
            partition_key=partition_key(batch.team_id, batch.sector),
            run_config=dg.RunConfig(
                ops={
                    "validated_records": UploadSelection(
                        uploads=[
                            UploadRef(id=str(u.upload_id), attempt=u.attempt) for u in batch.uploads
                        ]
                    )
                }
            ),
            tags={"outreach/uploads": str(len(batch.uploads))},
        )
        for batch in batches
    ]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [teams_partitions.build_add_request(new_teams)] if new_teams else []
        ),
    )


@dg.run_failure_sensor(
    monitored_jobs=[ingest_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def upload_run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    """A run that failed for good leaves its uploads `failed` with the reason, never
    `processing` forever; `outreach retry` queues them again. A run Dagster will retry is
    left to its retry, which resumes the same uploads."""
    run = context.dagster_run
    partition = _partition(run)
    if partition is None or run.tags.get(WILL_RETRY_TAG) == "true":
        return
    failed = fail_run_uploads(
        partition[0],
        run_owner(run),
        [(uuid.UUID(ref.id), ref.attempt) for ref in _named(run)],
        f"run {run.run_id[:8]} failed: {_failure_reason(context)[:500]}",
    )
    context.log.info(f"run {run.run_id} failed: {len(failed)} uploads marked failed")


def _failure_reason(context: dg.RunFailureSensorContext) -> str:
    """What went wrong, in the user's terms: the failed steps' own errors (not Dagster's
    wrapper around them), else the run's failure message."""
    reasons = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        cause = error.cause if error is not None and error.cause is not None else error
        if cause is not None:
            reasons.append(f"{event.step_key}: {cause.message.strip()}")
    return "; ".join(reasons) or context.failure_event.message or "run failed"


@dataclass(frozen=True)
class Orphaned:
    reason: str
    # Runs Dagster still counts as running whose worker is gone: they hold run-queue slots
    # (their partition's among them) until they are marked failed.
    zombies: list[dg.DagsterRun] = field(default_factory=list)


def _orphaned(instance: dg.DagsterInstance, upload: UnfinishedUpload) -> Orphaned | None:
    """Why nothing owns this upload any more, or None when something still might."""
    minutes = get_settings().upload_stale_after_seconds / 60
    if upload.status is UploadStatus.RECEIVED:
        partition = {TEAM_TAG: str(upload.team_id), SECTOR_TAG: upload.sector}
        if live_runs(instance, ingest_job.name, partition):
            return None  # a run of its partition is queued or running; it gets its turn
        return Orphaned(f"no run picked it up for {minutes:g} min")
    if upload.run_id is None:
        return Orphaned("processing without a run")
    root = instance.get_run_by_id(upload.run_id)
    group = live_runs(instance, ingest_job.name, {"dagster/root_run_id": upload.run_id})
    group += [root] if root is not None and root.status in LIVE else []
    if any(r.status in (*WAITING, dg.DagsterRunStatus.STARTING) for r in group):
        return None  # its run, or a retry of it, is about to start and will resume it
    # The lease is stale: whatever Dagster says, no worker is renewing it.
    if group:
        return Orphaned(
            f"its run {upload.run_id[:8]} stopped working on it {minutes:g} min ago "
            "(its worker is gone)",
            zombies=group,
        )
    if root is None:
        return Orphaned(f"its run {upload.run_id[:8]} no longer exists")
    return Orphaned(f"its run {upload.run_id[:8]} ended {root.status.value} without finishing it")


def watchdog_interval_seconds() -> int:
    """Often enough to notice a stale lease soon after it goes stale."""
    return max(
        UPLOAD_SENSOR_INTERVAL_SECONDS, min(60, get_settings().upload_stale_after_seconds // 5)
    )


@dg.sensor(
    minimum_interval_seconds=watchdog_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def upload_watchdog_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
    """No upload stays `received` or `processing` for good: after a killed run worker, a
    deleted run, or a run that ended without finishing one, the upload goes back in the
    queue with the reason, or is failed once it has had its attempts. A run whose worker
    is gone is marked failed, so it stops holding its place in the run queue."""
    settings = get_settings()
    stale = list_unfinished_uploads(timedelta(seconds=settings.upload_stale_after_seconds))
    acted = 0
    failed_runs: set[str] = set()
    for upload in stale:
        found = _orphaned(context.instance, upload)
        if found is None:
            continue
        # A received upload never reached a run: putting it back costs nothing, so it is
        # never failed for waiting.
        limit = settings.upload_max_attempts if upload.status is UploadStatus.PROCESSING else None
        outcome = requeue_or_fail(upload, found.reason, limit)
        if outcome is None:
            continue  # a run took it meanwhile
        acted += 1
        context.log.warning(f"upload {upload.upload_id}: {found.reason}; now {outcome.value}")
        # After the requeue, so the failure sensor finds nothing of this upload to fail.
        for run in found.zombies:
            if run.run_id not in failed_runs:
                failed_runs.add(run.run_id)
                context.instance.report_run_failed(run, message=f"watchdog: {found.reason}")
    if not acted:
        return dg.SkipReason(f"{len(stale)} unfinished uploads past the limit, all owned")
    return None
