"""Batch upsert of processed rows into `leads`: COPY into a temporary staging table, resolve
each row to an existing lead (same E.164 phone, else same email, inside the team), fill the
empty fields of matched leads, insert the rest.

A merge never overwrites a non-empty value: a lead's data only ever gains fields. One team's
merges are serialised by a transaction-scoped advisory lock, so two runs for the same team
(two sectors at once) cannot both insert the same phone."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from outreach_core.db.tables import LEAD_TEXT_FIELDS

STAGING_COLUMNS: tuple[str, ...] = (*LEAD_TEXT_FIELDS, "bucket_id", "sector")
# Never filled from a merge: they are the dedup keys, handled separately below.
_KEYS = ("phone", "email")
_FILLABLE = tuple(c for c in STAGING_COLUMNS if c not in _KEYS)


@dataclass(frozen=True)
class UpsertCounts:
    rows: int
    inserted: int
    merged: int  # rows that matched a lead the team already had
    changed: int  # of those, leads that gained at least one field


def _staging_ddl() -> str:
    cols = ", ".join(f"{c} text" for c in STAGING_COLUMNS)
    return f"CREATE TEMP TABLE lead_staging ({cols}, lead_id bigint) ON COMMIT DROP"


def _copy_frame(session: Session, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.select(STAGING_COLUMNS).write_csv(buffer, include_header=False, null_value="")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cols = ", ".join(STAGING_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY lead_staging ({cols}) FROM STDIN (FORMAT csv)") as cp:
        view = buffer.getbuffer()
        step = 1 << 20
        for start in range(0, len(view), step):
            cp.write(view[start : start + step])


def _fill(column: str) -> str:
    return f"{column} = COALESCE(l.{column}, s.{column})"


def _gains(column: str) -> str:
    return f"(l.{column} IS NULL AND s.{column} IS NOT NULL)"


_RESOLVE_BY_PHONE = """
UPDATE lead_staging s SET lead_id = l.id FROM leads l
WHERE l.team_id = :team AND s.phone IS NOT NULL AND l.phone = s.phone
"""
_RESOLVE_BY_EMAIL = """
UPDATE lead_staging s SET lead_id = l.id FROM leads l
WHERE s.lead_id IS NULL AND s.email IS NOT NULL AND l.team_id = :team AND l.email = s.email
"""

# A matched lead takes a key it lacks only when no other lead of the team holds it already,
# so the unique (team, phone) and (team, email) indexes hold without a failed statement.
_MERGE = f"""
UPDATE leads l SET
    {", ".join(_fill(c) for c in _FILLABLE)},
    phone = CASE WHEN l.phone IS NULL AND s.phone IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM leads o WHERE o.team_id = l.team_id AND o.phone = s.phone)
        THEN s.phone ELSE l.phone END,
    email = CASE WHEN l.email IS NULL AND s.email IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM leads o WHERE o.team_id = l.team_id AND o.email = s.email)
        THEN s.email ELSE l.email END,
    last_upload_id = :upload,
    updated_at = now()
FROM lead_staging s
WHERE l.team_id = :team AND l.id = s.lead_id
  AND ({" OR ".join(_gains(c) for c in STAGING_COLUMNS)})
"""

_INSERT_COLUMNS = ", ".join(STAGING_COLUMNS)
_INSERT = f"""
INSERT INTO leads (team_id, {_INSERT_COLUMNS}, source, source_upload_id, last_upload_id)
SELECT :team, {_INSERT_COLUMNS}, :source, :upload, :upload
FROM lead_staging WHERE lead_id IS NULL
"""


def upsert_leads(
    session: Session,
    team_id: uuid.UUID,
    upload_id: uuid.UUID,
    frame: pl.DataFrame,
    source: str,
) -> UpsertCounts:
    """Merge one batch inside the caller's tenant transaction. `frame` holds STAGING_COLUMNS
    and is already deduplicated on phone, then on email."""
    if frame.height == 0:
        return UpsertCounts(0, 0, 0, 0)
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"leads:{team_id}"},
    )
    session.execute(text(_staging_ddl()))
    _copy_frame(session, frame)
    session.execute(text("ANALYZE lead_staging"))
    params = {"team": team_id, "upload": upload_id, "source": source}
    session.execute(text(_RESOLVE_BY_PHONE), params)
    session.execute(text(_RESOLVE_BY_EMAIL), params)
    changed = session.execute(text(_MERGE), params).rowcount
    inserted = session.execute(text(_INSERT), params).rowcount
    session.execute(text("DROP TABLE lead_staging"))
    return UpsertCounts(
        rows=frame.height, inserted=inserted, merged=frame.height - inserted, changed=changed
    )


def dedup_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """First row per phone, then per email; later duplicates only fill the gaps of the
    first (a duplicate's non-empty field never replaces one already set)."""
    order = "row_number"
    phone_groups = (
        frame.filter(pl.col("phone").is_not_null())
        .group_by("phone", maintain_order=True)
        .agg(
            pl.col(order).min(), *(pl.col(c).drop_nulls().first() for c in _non_key(frame, "phone"))
        )
    )
    merged = pl.concat(
        [phone_groups.select(frame.columns), frame.filter(pl.col("phone").is_null())]
    ).sort(order)
    email_groups = (
        merged.filter(pl.col("email").is_not_null())
        .group_by("email", maintain_order=True)
        .agg(
            pl.col(order).min(),
            *(pl.col(c).drop_nulls().first() for c in _non_key(merged, "email")),
        )
    )
    return pl.concat(
        [email_groups.select(frame.columns), merged.filter(pl.col("email").is_null())]
    ).sort(order)


def _non_key(frame: pl.DataFrame, key: str) -> list[str]:
    return [c for c in frame.columns if c not in (key, "row_number")]
