"""The upload queue: which received uploads wait, which go into which ingest run, and what
the watchdog does with uploads nothing owns any more. Decisions only; the Dagster sensors
read the run queue and translate."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update

from outreach_core.db.engine import system_session, tenant_session
from outreach_core.db.states import UploadStatus
from outreach_core.db.tables import Upload


@dataclass(frozen=True)
class PendingUpload:
    team_id: uuid.UUID
    upload_id: uuid.UUID
    sector: str
    attempt: int

    @property
    def run_key(self) -> str:
        return str(self.upload_id) if self.attempt == 0 else f"{self.upload_id}:{self.attempt}"


def list_pending_uploads(limit: int = 500) -> list[PendingUpload]:
    """Received uploads of every team, each team's oldest first and the teams taking turns:
    the sensor's one cross-tenant read, through a SECURITY DEFINER function that returns
    ids and nothing else."""
    with system_session() as session:
        rows = session.execute(
            text("SELECT team_id, upload_id, sector, attempt FROM outreach_pending_uploads(:n)"),
            {"n": limit},
        )
        return [PendingUpload(r.team_id, r.upload_id, r.sector, r.attempt) for r in rows]


@dataclass(frozen=True)
class IngestBatch:
    """The uploads one ingest run is started for: all of one team x sector."""

    team_id: uuid.UUID
    sector: str
    uploads: tuple[PendingUpload, ...]

    @property
    def run_key(self) -> str:
        # The same set asked for again (a sensor that crashed before saving its tick) gets
        # the same key, and Dagster starts no second run.
        keys = "\n".join(sorted(u.run_key for u in self.uploads))
        return "uploads:" + hashlib.sha256(keys.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RunQueueState:
    """What the run queue already holds for ingestion."""

    # Uploads named by runs not finished yet: they have a run.
    assigned: frozenset[uuid.UUID] = frozenset()
    # Partitions with a run waiting to start: new uploads join the batch after it.
    waiting: frozenset[tuple[uuid.UUID, str]] = frozenset()
    # Queued or running ingest runs per team.
    live_per_team: Mapping[uuid.UUID, int] = field(default_factory=dict)


def plan_ingest_runs(
    pending: Iterable[PendingUpload],
    queue: RunQueueState,
    *,
    uploads_per_run: int,
    runs_per_team: int,
) -> list[IngestBatch]:
    """At most one new run per team x sector: its received uploads not already in a run,
    oldest first, up to `uploads_per_run`. None for a partition that has a run waiting to
    start (those uploads join the next one), nor for a team that already has
    `runs_per_team` runs queued or running. `pending` comes with the teams taking turns,
    and the batches keep that order."""
    groups: dict[tuple[uuid.UUID, str], list[PendingUpload]] = {}
    for upload in pending:
        if upload.upload_id not in queue.assigned:
            groups.setdefault((upload.team_id, upload.sector), []).append(upload)
    live = dict(queue.live_per_team)
    batches = []
    for (team_id, sector), uploads in groups.items():
        if (team_id, sector) in queue.waiting or live.get(team_id, 0) >= runs_per_team:
            continue
        live[team_id] = live.get(team_id, 0) + 1
        batches.append(IngestBatch(team_id, sector, tuple(uploads[:uploads_per_run])))
    return batches


def retry_upload(team_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    """Queue a failed or stuck upload again; the sensor starts a fresh run for it."""
    with tenant_session(team_id) as session:
        upload = session.scalar(
            update(Upload)
            .where(
                Upload.team_id == team_id,
                Upload.id == upload_id,
                Upload.status != UploadStatus.COMPLETED,
            )
            .values(
                status=UploadStatus.RECEIVED,
                error=None,
                attempt=Upload.attempt + 1,
                queued_at=datetime.now(UTC),
            )
            .returning(Upload)
        )
    if upload is None:
        raise LookupError(f"no upload {upload_id} to retry (unknown, or already completed)")
    return upload


@dataclass(frozen=True)
class UnfinishedUpload:
    team_id: uuid.UUID
    upload_id: uuid.UUID
    sector: str
    status: UploadStatus
    run_id: str | None
    attempt: int
    since: datetime


def list_unfinished_uploads(older_than: timedelta, limit: int = 500) -> list[UnfinishedUpload]:
    """Uploads received or processing for longer than `older_than`, every team (ids only,
    through a SECURITY DEFINER function): the watchdog's worklist."""
    with system_session() as session:
        rows = session.execute(
            text(
                "SELECT team_id, upload_id, sector, status, run_id, attempt, since "
                "FROM outreach_unfinished_uploads(:age, :n)"
            ),
            {"age": older_than, "n": limit},
        )
        return [
            UnfinishedUpload(
                r.team_id,
                r.upload_id,
                r.sector,
                UploadStatus(r.status),
                r.run_id,
                r.attempt,
                r.since,
            )
            for r in rows
        ]


def requeue_or_fail(
    upload: UnfinishedUpload, reason: str, max_attempts: int | None
) -> UploadStatus | None:
    """Put an upload nothing owns any more back in the queue (a new attempt, so a new run
    key), or fail it with the reason once it has had `max_attempts` (None: never). Returns
    the new status, or None when the upload moved on meanwhile (a run took it)."""
    final = max_attempts is not None and upload.attempt + 1 >= max_attempts
    values: dict[str, object] = (
        {
            "status": UploadStatus.FAILED,
            "error": f"{reason}; gave up after {upload.attempt + 1} attempts",
            "finished_at": datetime.now(UTC),
        }
        if final
        else {
            "status": UploadStatus.RECEIVED,
            "error": f"requeued: {reason}",
            "attempt": Upload.attempt + 1,
            "queued_at": datetime.now(UTC),
        }
    )
    with tenant_session(upload.team_id) as session:
        changed = session.scalar(
            update(Upload)
            .where(
                Upload.team_id == upload.team_id,
                Upload.id == upload.upload_id,
                # Only if nothing happened since the watchdog looked.
                Upload.status == upload.status,
                Upload.attempt == upload.attempt,
                Upload.run_id.is_not_distinct_from(upload.run_id),
            )
            .values(**values)
            .returning(Upload.status)
        )
    return changed
