"""Loading many batches for one team: the team's load lock, and two writers at once.

PostgreSQL spends a large import maintaining the leads indexes, one backend per connection.
Each batch is split by a hash of its dedup key into parts written concurrently; since no two
rows of an upload's processed file share a phone or email, parts never insert the same key.
Two parts merging into one existing lead can deadlock; PostgreSQL aborts one, which is
retried."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import polars as pl
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from outreach_core.crashpoints import crashpoint
from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.leads.upsert import UpsertCounts, upsert_leads

RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
MAX_ATTEMPTS = 5
# Beyond this many new leads the table's statistics are refreshed after the load.
ANALYZE_AFTER_ROWS = 50_000


@contextmanager
def team_load_lock(team_id: uuid.UUID) -> Iterator[None]:
    """Held for a whole upload's load, across processes: one loader per team at a time."""
    with app_engine().connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": _key(team_id)})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(
                text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": _key(team_id)}
            )
            conn.commit()


def _key(team_id: uuid.UUID) -> str:
    return f"leads:{team_id}"


def split(frame: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    key = pl.coalesce(pl.col("phone"), pl.col("email"), pl.col("row_number").cast(pl.String))
    bucket = frame.select((key.hash(seed=0) % parts).alias("_part"))["_part"]
    return [frame.filter(bucket == i) for i in range(parts)]


def _write(
    team_id: uuid.UUID, upload_id: uuid.UUID, frame: pl.DataFrame, source: str
) -> UpsertCounts:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with tenant_session(team_id) as session:
                return upsert_leads(session, team_id, upload_id, frame, source)
        except DBAPIError as exc:
            if not isinstance(exc.orig, RETRYABLE) or attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def load_batches(
    team_id: uuid.UUID,
    upload_id: uuid.UUID,
    batches: Iterable[pl.DataFrame],
    source: str,
    writers: int = 2,
    progress: Callable[[UpsertCounts], None] | None = None,
) -> UpsertCounts:
    """Upsert every batch. No two rows of all the batches may share a phone or an email
    (the processed Parquet of one upload guarantees it), so parts are written by whichever
    writer is free, in any order; at most two parts per writer wait, to bound memory."""
    total = UpsertCounts(0, 0, 0, 0)
    pending: deque[Future[UpsertCounts]] = deque()

    def settle(future: Future[UpsertCounts]) -> None:
        nonlocal total
        done = future.result()
        total = UpsertCounts(
            rows=total.rows + done.rows,
            inserted=total.inserted + done.inserted,
            merged=total.merged + done.merged,
            changed=total.changed + done.changed,
        )
        crashpoint("leads.after_batch")
        if progress is not None:
            progress(total)

    with team_load_lock(team_id), ThreadPoolExecutor(writers, "lead-writer") as pool:
        for frame in batches:
            for part in split(frame, writers):
                if part.height:
                    pending.append(pool.submit(_write, team_id, upload_id, part, source))
            while len(pending) > 2 * writers:
                settle(pending.popleft())
        while pending:
            settle(pending.popleft())
    if total.inserted >= ANALYZE_AFTER_ROWS:
        with app_engine().begin() as conn:
            conn.execute(text("SELECT outreach_analyze_leads()"))
    return total
