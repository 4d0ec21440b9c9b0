"""Batch upsert of processed rows into `leads`: COPY into a temporary staging table, resolve
each row to an existing lead (same E.164 phone, else same email, inside the team), fill the
empty fields of matched leads, insert the rest.

A merge never overwrites a non-empty value: a lead's data only ever gains fields. One team's
loads are serialised by an advisory lock (see loader.py), so two runs for the same team
(two sectors at once) cannot both insert the same phone.

COPY cannot write into a table under row-level security, hence the staging table; the
INSERT ... SELECT from it is checked by the policies like any other write. New leads take
the ids reserved for them from the team's counter (ids.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from outreach_core.db.copy import copy_frame
from outreach_core.db.tables import LEAD_TEXT_FIELDS
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score

STAGING_COLUMNS: tuple[str, ...] = (*LEAD_TEXT_FIELDS, "bucket_id", "sector")
# The dedup keys: filled on a merge only when no other lead of the team holds them.
_KEYS = ("phone", "email")
_FILLABLE = tuple(c for c in STAGING_COLUMNS if c not in _KEYS)
_COLUMNS = ", ".join(STAGING_COLUMNS)


@dataclass(frozen=True)
class UpsertCounts:
    rows: int
    inserted: int
    merged: int  # rows that matched a lead the team already had
    changed: int  # leads that gained at least one field


def _staging_ddl() -> str:
    # Same collation as the leads columns, so key lookups can use their unique indexes.
    cols = ", ".join(
        f'{c} text COLLATE "C"' if c in _KEYS else f"{c} text" for c in STAGING_COLUMNS
    )
    return f"CREATE TEMP TABLE lead_staging (row_number bigint, {cols}) ON COMMIT DROP"


# Each staging row's lead: same phone, else same email. LATERAL ... LIMIT 1 keeps these
# as probes of the unique indexes whatever the statistics say: a batch is small next to a
# large team, and a plan that scans the team's leads per batch is what made imports slow.
_RESOLVE = """
CREATE TEMP TABLE lead_keys ON COMMIT DROP AS
SELECT s.row_number, COALESCE(p.id, e.id) AS lead_id
FROM lead_staging s
LEFT JOIN LATERAL (
    SELECT id FROM leads WHERE team_id = :team AND phone = s.phone LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT id FROM leads WHERE p.id IS NULL AND team_id = :team AND email = s.email LIMIT 1
) e ON true
"""

# One staging row per lead (the earliest), so a lead is merged deterministically.
_MATCHED = f"""
SELECT DISTINCT ON (k.lead_id) k.lead_id, {", ".join(f"s.{c}" for c in STAGING_COLUMNS)}
FROM lead_keys k JOIN lead_staging s USING (row_number)
WHERE k.lead_id IS NOT NULL
ORDER BY k.lead_id, s.row_number
"""


def _fill(column: str) -> str:
    return f"{column} = COALESCE(l.{column}, s.{column})"


def _gains(column: str) -> str:
    return f"(l.{column} IS NULL AND s.{column} IS NOT NULL)"


# Only leads that gain a field are written: re-importing a file rewrites nothing.
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
FROM ({_MATCHED}) s
WHERE l.team_id = :team AND l.id = s.lead_id
  AND ({" OR ".join(_gains(c) for c in STAGING_COLUMNS)})
"""

_NEW = "SELECT count(*) FROM lead_keys WHERE lead_id IS NULL"

# In phone order, so the phone index is written page by page instead of at random; the
# reserved ids are numbered in the same order, so the primary key is appended to as well.
# A new lead starts at the scoring rules' base (outreach_core.leads.scoring).
_INSERT = f"""
INSERT INTO leads (team_id, id, {_COLUMNS}, source, source_upload_id, last_upload_id, score)
SELECT :team, CAST(:first_id AS bigint) - 1 + row_number() OVER (ORDER BY s.phone),
       {", ".join(f"s.{c}" for c in STAGING_COLUMNS)}, :source, :upload, :upload, :score
FROM lead_staging s JOIN lead_keys k USING (row_number)
WHERE k.lead_id IS NULL
ORDER BY s.phone
"""


def upsert_leads(
    session: Session,
    team_id: uuid.UUID,
    upload_id: uuid.UUID,
    frame: pl.DataFrame,
    source: str,
) -> UpsertCounts:
    """Merge one batch inside the caller's tenant transaction. `frame` holds row_number and
    STAGING_COLUMNS, and is already deduplicated on phone, then on email. The caller holds
    the team's load lock (`outreach_core.leads.loader.team_load_lock`)."""
    if frame.height == 0:
        return UpsertCounts(0, 0, 0, 0)
    # Large batches: keep sorts and hashes in memory; JIT compilation costs more than it
    # saves on statements this size.
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    session.execute(text("SET LOCAL jit = off"))
    # Safe to skip the flush here: the upload is marked complete in a later, synchronous
    # commit, which flushes this one too; a crash before it reruns the idempotent load.
    session.execute(text("SET LOCAL synchronous_commit = off"))
    session.execute(text(_staging_ddl()))
    copy_frame(session, "lead_staging", frame.select("row_number", *STAGING_COLUMNS))
    params = {"team": team_id, "upload": upload_id, "source": source}
    session.execute(text(_RESOLVE), params)
    session.execute(text("ANALYZE lead_keys"))
    changed = session.execute(text(_MERGE), params).rowcount
    inserted = 0
    if new := session.scalar(text(_NEW)):
        # Only now is the number of new leads known; see ids.py for why the reservation
        # is its own transaction.
        first_id = reserve_lead_ids(team_id, new, session.get_bind().engine)
        inserted = session.execute(
            text(_INSERT), {**params, "first_id": first_id, "score": base_score()}
        ).rowcount
    session.execute(text("DROP TABLE lead_keys; DROP TABLE lead_staging"))
    return UpsertCounts(
        rows=frame.height, inserted=inserted, merged=frame.height - inserted, changed=changed
    )
