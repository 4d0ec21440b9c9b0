"""The ingestion stages the Dagster assets run, one function a stage, each streaming in chunks
so memory does not grow with the file:

raw CSV -> validated Parquet (+ rejected CSV, upload_rejections)
        -> processed Parquet (bucket, duplicates inside the file merged)
        -> bucket index (index.json, bucket_index)
        -> leads (COPY + merge in PostgreSQL)
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow.parquet as pq
from sqlalchemy import and_, delete, false, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from outreach_core.catalog import Bucket, load_catalog
from outreach_core.datalake import TeamLake
from outreach_core.db.copy import copy_frame
from outreach_core.db.engine import system_session, tenant_session
from outreach_core.db.states import UploadStatus
from outreach_core.db.tables import BucketIndex, Lead, Upload, UploadRejection
from outreach_core.ingest import STANDARD_COLUMNS, IngestError, read_chunks, write_csv_safely
from outreach_core.leads.dedup import group_leaders, merge_groups
from outreach_core.leads.loader import load_batches
from outreach_core.leads.upsert import STAGING_COLUMNS, UpsertCounts
from outreach_core.settings import get_settings

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Validated:
    upload_id: uuid.UUID
    total: int
    accepted: int
    rejected: int
    top_reasons: dict[str, int]


@dataclass(frozen=True)
class Processed:
    upload_id: uuid.UUID
    rows: int
    duplicates_in_file: int


@dataclass(frozen=True)
class LeadsLoaded:
    upload_id: uuid.UUID
    inserted: int
    merged: int
    changed: int


def claim_uploads(
    team_id: uuid.UUID, sector: str, owner: str, only: list[uuid.UUID] | None = None
) -> list[Upload]:
    """Take the uploads a run will process and mark them `processing`, owned by `owner`
    (the run group's root run id, which Dagster's retries keep). `only` names the run's
    uploads; without it, every received upload of the partition. An upload is taken when
    it is received, or when this run group already owned it (a retry resumes it); one
    another run finished or still owns is left alone, so overlapping runs never process
    the same upload twice."""
    mine = and_(
        Upload.run_id == owner,
        Upload.status.in_((UploadStatus.PROCESSING, UploadStatus.FAILED)),
    )
    query = (
        update(Upload)
        .where(Upload.team_id == team_id, Upload.sector == sector)
        .where(or_(Upload.status == UploadStatus.RECEIVED, mine))
        .values(
            status=UploadStatus.PROCESSING,
            run_id=owner,
            started_at=datetime.now(UTC),
            heartbeat_at=datetime.now(UTC),
            finished_at=None,
            error=None,
        )
        .returning(Upload)
    )
    if only is not None:
        query = query.where(Upload.id.in_(only))
    with tenant_session(team_id) as session:
        claimed = list(session.scalars(query))
    return sorted(claimed, key=lambda u: (u.created_at, u.id))


def owned_uploads(team_id: uuid.UUID, sector: str, owner: str) -> list[Upload]:
    """The uploads `owner` claimed that are still in its hands (not failed, not done)."""
    query = select(Upload).where(
        Upload.team_id == team_id,
        Upload.sector == sector,
        Upload.run_id == owner,
        Upload.status == UploadStatus.PROCESSING,
    )
    with tenant_session(team_id) as session:
        return list(session.scalars(query.order_by(Upload.created_at, Upload.id)))


def finished_uploads(team_id: uuid.UUID, sector: str, owner: str) -> list[uuid.UUID]:
    """The uploads `owner` completed: what the leads checks look at."""
    query = select(Upload.id).where(
        Upload.team_id == team_id,
        Upload.sector == sector,
        Upload.run_id == owner,
        Upload.status == UploadStatus.COMPLETED,
    )
    with tenant_session(team_id) as session:
        return list(session.scalars(query))


def failed_uploads(team_id: uuid.UUID, upload_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The reasons of those among `upload_ids` that failed."""
    query = select(Upload.id, Upload.error).where(
        Upload.team_id == team_id,
        Upload.id.in_(upload_ids),
        Upload.status == UploadStatus.FAILED,
    )
    with tenant_session(team_id) as session:
        return {r.id: r.error or "failed" for r in session.execute(query)}


@contextmanager
def keep_alive(team_id: uuid.UUID, owner: str, every: float | None = None) -> Iterator[None]:
    """Renew the lease on `owner`'s uploads while the block runs, so the watchdog can tell
    a run at work from one whose worker died (a killed worker looks alive to Dagster)."""
    interval = every or get_settings().upload_stale_after_seconds / 5
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(interval):
            try:
                with tenant_session(team_id) as session:
                    session.execute(
                        update(Upload)
                        .where(
                            Upload.team_id == team_id,
                            Upload.run_id == owner,
                            Upload.status == UploadStatus.PROCESSING,
                        )
                        .values(heartbeat_at=datetime.now(UTC))
                    )
            except Exception:  # a missed renewal is retried; the lease has slack
                logger.warning("could not renew the uploads lease of run %s", owner, exc_info=True)

    thread = threading.Thread(target=renew, name="uploads-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def get_upload(team_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    with tenant_session(team_id) as session:
        return session.get_one(Upload, (team_id, upload_id))


def _set(team_id: uuid.UUID, upload_id: uuid.UUID, **values: object) -> None:
    with tenant_session(team_id) as session:
        session.execute(
            update(Upload).where(Upload.team_id == team_id, Upload.id == upload_id).values(**values)
        )


def fail_upload(team_id: uuid.UUID, upload_id: uuid.UUID, reason: str) -> None:
    """Mark the upload failed with the reason; a completed upload stays completed."""
    with tenant_session(team_id) as session:
        session.execute(
            update(Upload)
            .where(
                Upload.team_id == team_id,
                Upload.id == upload_id,
                Upload.status != UploadStatus.COMPLETED,
            )
            .values(status=UploadStatus.FAILED, error=reason, finished_at=datetime.now(UTC))
        )


def fail_run_uploads(
    team_id: uuid.UUID, owner: str, named: list[tuple[uuid.UUID, int]], reason: str
) -> list[uuid.UUID]:
    """A run failed for good: the uploads it still held, and those it was started for
    (id, attempt) but never took, become `failed` with the reason (`outreach retry` queues
    them again). An upload requeued since (a later attempt) is not this run's to fail."""
    held = and_(Upload.run_id == owner, Upload.status == UploadStatus.PROCESSING)
    never_taken = and_(
        Upload.status == UploadStatus.RECEIVED,
        or_(false(), *(and_(Upload.id == i, Upload.attempt == a) for i, a in named)),
    )
    with tenant_session(team_id) as session:
        return list(
            session.scalars(
                update(Upload)
                .where(Upload.team_id == team_id, or_(held, never_taken))
                .values(status=UploadStatus.FAILED, error=reason, finished_at=datetime.now(UTC))
                .returning(Upload.id)
            )
        )


def reason_category(reason: str) -> str:
    # Reasons carry the offending (masked) value after a colon; group by what went wrong.
    return reason.split(":", 1)[0].strip()


def _bucket(upload: Upload) -> Bucket:
    return load_catalog().get(upload.bucket_id)


def _store_rejections(team_id: uuid.UUID, upload_id: uuid.UUID, rejected: pl.DataFrame) -> None:
    with tenant_session(team_id) as session:
        session.execute(
            text(
                "CREATE TEMP TABLE rejection_staging (row_number bigint, reason text, raw text) "
                "ON COMMIT DROP"
            )
        )
        copy_frame(session, "rejection_staging", rejected.select("row_number", "reason", "raw"))
        session.execute(
            text(
                "INSERT INTO upload_rejections (team_id, upload_id, row_number, reason, raw) "
                "SELECT :team, :upload, row_number, reason, raw FROM rejection_staging"
            ),
            {"team": team_id, "upload": upload_id},
        )


def _append_rejected(frame: pl.DataFrame, out: IO[bytes], header: bool) -> None:
    buffer = io.BytesIO()
    write_csv_safely(frame.select("row_number", "reason", "raw"), buffer)
    data = buffer.getvalue()
    # One header for the whole file; ours (row_number,reason,raw) holds no newline.
    out.write(data if header else data.split(b"\n", 1)[1])


def validate_upload(
    lake: TeamLake, upload: Upload, progress: Progress = _quiet
) -> Validated | None:
    """Raw CSV -> validated Parquet. Returns None (and marks the upload failed, with the
    reason) when the file as a whole cannot be read; bad rows never fail the file."""
    team_id, upload_id = upload.team_id, upload.id
    bucket = _bucket(upload)
    with tenant_session(team_id) as session:  # a rerun starts the rejections afresh
        session.execute(
            delete(UploadRejection).where(
                UploadRejection.team_id == team_id, UploadRejection.upload_id == upload_id
            )
        )
    total = accepted = rejected = 0
    reasons: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="outreach-validate-") as tmp:
        work = Path(tmp)
        validated_path = work / "validated.parquet"
        rejected_path = work / "rejected.csv"
        writer: pq.ParquetWriter | None = None
        try:
            with (
                lake.local_copy(upload.storage_key, work) as raw_path,
                rejected_path.open("wb") as rejected_out,
            ):
                for chunk in read_chunks(raw_path, chunk_rows=get_settings().ingest_chunk_rows):
                    table = chunk.accepted.select("row_number", *STANDARD_COLUMNS).to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(validated_path, table.schema)
                    writer.write_table(table)
                    if chunk.rejected.height:
                        _append_rejected(chunk.rejected, rejected_out, header=rejected == 0)
                        _store_rejections(team_id, upload_id, chunk.rejected)
                        reasons.update(
                            reason_category(r) for r in chunk.rejected["reason"].to_list()
                        )
                    accepted += chunk.accepted.height
                    rejected += chunk.rejected.height
                    total = accepted + rejected
                    progress(f"validated {total:,} rows ({rejected:,} rejected)")
        except IngestError as exc:
            if writer is not None:
                writer.close()
            fail_upload(team_id, upload_id, str(exc))
            progress(f"upload {upload_id} failed: {exc}")
            return None
        if writer is not None:
            writer.close()
        if total == 0:
            fail_upload(team_id, upload_id, "file has a header but no data rows")
            return None
        lake.put_file(lake.validated_key(bucket, upload_id), validated_path)
        if rejected:
            lake.put_file(lake.rejected_key(bucket, upload_id), rejected_path)
    top = dict(reasons.most_common(5))
    _set(
        team_id,
        upload_id,
        total_rows=total,
        accepted_rows=accepted,
        rejected_rows=rejected,
        top_rejection_reasons=top,
    )
    return Validated(upload_id, total, accepted, rejected, top)


def _batches(path: Path, min_rows: int = 0) -> Iterator[pl.DataFrame]:
    """Row groups in order, joined until each batch has at least `min_rows` rows."""
    parquet = pq.ParquetFile(path)
    pending: list[pl.DataFrame] = []
    size = 0
    for i in range(parquet.num_row_groups):
        frame = pl.from_arrow(parquet.read_row_group(i))
        assert isinstance(frame, pl.DataFrame)
        pending.append(frame)
        size += frame.height
        if size >= min_rows:
            yield pl.concat(pending)
            pending, size = [], 0
    if pending:
        yield pl.concat(pending)


def process_upload(lake: TeamLake, upload: Upload, progress: Progress = _quiet) -> Processed:
    """Validated Parquet -> processed Parquet: bucket and sector columns added, duplicate
    contacts anywhere in the file merged, so no two processed rows share a phone or email."""
    bucket = _bucket(upload)
    rows_in = rows_out = 0
    with tempfile.TemporaryDirectory(prefix="outreach-process-") as tmp:
        work = Path(tmp)
        out_path = work / "processed.parquet"
        writer: pq.ParquetWriter | None = None

        def write(frame: pl.DataFrame) -> None:
            nonlocal writer, rows_out
            table = frame.with_columns(
                pl.lit(bucket.id).alias("bucket_id"), pl.lit(bucket.sector).alias("sector")
            ).to_arrow()
            writer = writer or pq.ParquetWriter(out_path, table.schema)
            writer.write_table(table)
            rows_out += frame.height

        spill_path = work / "repeated.parquet"
        spill: pq.ParquetWriter | None = None
        spilled = 0
        with lake.local_copy(lake.validated_key(bucket, upload.id), work) as validated_path:
            leaders = group_leaders(
                pl.read_parquet(validated_path, columns=["row_number", "phone", "email"])
            )
            for frame in _batches(validated_path):
                # Same file, same order: this batch's keys are the next slice of `leaders`.
                groups = leaders.slice(rows_in, frame.height)
                assert groups["row_number"].equals(frame["row_number"])
                single = groups["size"] == 1
                write(frame.filter(single))
                repeated = frame.filter(~single).with_columns(groups.filter(~single)["leader"])
                if repeated.height:
                    table = repeated.to_arrow()
                    spill = spill or pq.ParquetWriter(spill_path, table.schema)
                    spill.write_table(table)
                    spilled += repeated.height
                rows_in += frame.height
                progress(f"processed {rows_in:,} rows")
            del leaders
        if spill is not None:
            spill.close()
            # A slice of groups at a time, so memory follows the slice, not the file.
            slices = max(1, -(-spilled // get_settings().lead_batch_rows))
            for k in range(slices):
                part = pl.scan_parquet(spill_path).filter(pl.col("leader") % slices == k)
                write(merge_groups(part.collect()))
        if writer is None:
            raise RuntimeError(f"upload {upload.id} has no validated rows")
        writer.close()
        lake.put_file(lake.processed_key(bucket, upload.id), out_path)
    progress(f"processed {rows_in:,} rows: {rows_in - rows_out:,} duplicates in the file")
    return Processed(upload.id, rows_out, rows_in - rows_out)


def build_bucket_index(lake: TeamLake, bucket: Bucket, progress: Progress = _quiet) -> dict:
    """Counts over every processed file of the bucket, each contact counted once. Two runs
    of one team and bucket take turns, so neither overwrites the other's newer index."""
    with system_session() as session:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"index:{lake.team_id}:{bucket.id}"},
        )
        return _build_bucket_index(lake, bucket, progress)


def _build_bucket_index(lake: TeamLake, bucket: Bucket, progress: Progress) -> dict:
    prefix = lake.bucket_key(bucket, "processed")
    keys = [k for k in lake.list(prefix.removeprefix(lake.root + "/")) if k.endswith(".parquet")]
    with tempfile.TemporaryDirectory(prefix="outreach-index-") as tmp, ExitStack() as files:
        paths = [files.enter_context(lake.local_copy(key, Path(tmp))) for key in keys]
        index = _index(paths, bucket)
    lake.put_bytes(lake.index_key(bucket), json.dumps(index, indent=1).encode())
    with tenant_session(lake.team_id) as session:
        stmt = insert(BucketIndex).values(
            team_id=lake.team_id, bucket_id=bucket.id, sector=bucket.sector, index=index
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["team_id", "bucket_id"],
                set_={"index": stmt.excluded.index, "updated_at": datetime.now(UTC)},
            )
        )
    progress(f"indexed bucket {bucket.id}: {index['totals']['leads']:,} leads")
    return index


def _index(paths: list[Path], bucket: Bucket) -> dict:
    result: dict = {
        "bucket_id": bucket.id,
        "updated_at": datetime.now(UTC).isoformat(),
        "totals": {"leads": 0, "with_phone": 0, "with_email": 0, "needs_skip_trace": 0},
        "byState": {},
        "byCounty": {},
        "byCity": {},
        "bySic": {},
    }
    if not paths:
        return result
    # One file at a time, kept compact: a 64-bit hash of the contact key (a collision would
    # only miscount one contact in an index), flags, and the dimensions as categoricals.
    # A contact in several uploads counts once.
    dims = ("state", "county", "city", "sic_code")
    frames = [
        pl.read_parquet(path, columns=["phone", "email", *dims]).select(
            pl.coalesce("phone", "email").hash(seed=0).alias("_key"),
            pl.col("phone").is_not_null().alias("has_phone"),
            pl.col("email").is_not_null().alias("has_email"),
            *(pl.col(d).cast(pl.Categorical) for d in dims),
        )
        for path in paths
    ]
    contacts = pl.concat(frames).unique(subset="_key", keep="first", maintain_order=True)
    del frames
    result["totals"] = {
        "leads": contacts.height,
        "with_phone": int(contacts["has_phone"].sum()),
        "with_email": int(contacts["has_email"].sum()),
        # No phone: someone has to find one before this lead can be texted.
        "needs_skip_trace": int((~contacts["has_phone"]).sum()),
    }

    def counts(expr: pl.Expr) -> dict[str, int]:
        grouped = (
            contacts.select(expr.cast(pl.String).alias("k")).drop_nulls().group_by("k").len()
        ).sort("k")
        return dict(zip(grouped["k"].to_list(), grouped["len"].to_list(), strict=True))

    result["byState"] = counts(pl.col("state"))
    result["byCounty"] = counts(pl.concat_str("county", "state", separator=", "))
    result["byCity"] = counts(pl.concat_str("city", "state", separator=", "))
    result["bySic"] = counts(pl.col("sic_code"))
    return result


def load_leads(lake: TeamLake, upload: Upload, progress: Progress = _quiet) -> LeadsLoaded:
    """Processed Parquet -> leads, one transaction per chunk; then the upload is complete."""
    bucket = _bucket(upload)
    source = f"upload:{upload.filename}"

    def report(counts: UpsertCounts) -> None:
        progress(f"leads: {counts.inserted:,} new, {counts.merged:,} merged")

    with (
        tempfile.TemporaryDirectory(prefix="outreach-leads-") as tmp,
        lake.local_copy(lake.processed_key(bucket, upload.id), Path(tmp)) as path,
    ):
        # Processed rows share no key, so any grouping of them into batches is safe.
        batches = (
            f.select("row_number", *STAGING_COLUMNS)
            for f in _batches(path, get_settings().lead_batch_rows)
        )
        counts = load_batches(
            upload.team_id,
            upload.id,
            batches,
            source,
            writers=get_settings().lead_writers,
            progress=report,
        )
    # Counted from the database, not from this attempt, so a load resumed after a crash
    # still reports the leads its first attempt created; every other accepted row merged
    # into a lead (in the file or already in the team).
    created = (
        select(func.count())
        .select_from(Lead)
        .where(Lead.team_id == upload.team_id, Lead.source_upload_id == upload.id)
        .scalar_subquery()
    )
    with tenant_session(upload.team_id) as session:
        done = session.execute(
            update(Upload)
            .where(
                Upload.team_id == upload.team_id,
                Upload.id == upload.id,
                # A run the watchdog gave up on must not complete what another run now owns.
                Upload.run_id.is_not_distinct_from(upload.run_id),
            )
            .values(
                status=UploadStatus.COMPLETED,
                inserted_leads=created,
                merged_rows=func.coalesce(Upload.accepted_rows, 0) - created,
                finished_at=datetime.now(UTC),
            )
            .returning(Upload.inserted_leads, Upload.merged_rows)
        ).one_or_none()
    if done is None:
        progress(f"upload {upload.id} was taken over by another run; it completes it")
        return LeadsLoaded(
            upload.id, counts.inserted, counts.rows - counts.inserted, counts.changed
        )
    return LeadsLoaded(upload.id, done.inserted_leads, done.merged_rows, counts.changed)
