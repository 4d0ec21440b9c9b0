"""Data-quality checks after a load; the Dagster asset checks report them."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import func, select, text

from outreach_core.catalog import load_catalog
from outreach_core.datalake import TeamLake
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import UploadRejection
from outreach_core.uploads.processing import get_upload


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def no_row_without_team(team_id: uuid.UUID) -> CheckResult:
    """The schema still guarantees it (NOT NULL, forced RLS), and no visible lead lacks it."""
    with tenant_session(team_id) as session:
        guarded = session.execute(
            text(
                "SELECT a.attnotnull, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'team_id' "
                "WHERE c.oid = 'leads'::regclass"
            )
        ).one()
        missing = session.scalar(text("SELECT count(*) FROM leads WHERE team_id IS NULL"))
    passed = all(guarded) and missing == 0
    return CheckResult(
        passed,
        {"rows_without_team": missing, "not_null": guarded[0], "rls_forced": guarded[2]},
    )


def no_duplicate_keys(team_id: uuid.UUID) -> CheckResult:
    counts = {}
    with tenant_session(team_id) as session:
        for key in ("phone", "email"):
            counts[f"duplicate_{key}s"] = session.scalar(
                text(
                    f"SELECT count(*) FROM (SELECT {key} FROM leads WHERE team_id = :t AND {key} "
                    f"IS NOT NULL GROUP BY {key} HAVING count(*) > 1) d"
                ),
                {"t": team_id},
            )
    return CheckResult(not any(counts.values()), counts)


def _parquet_rows(lake: TeamLake, key: str) -> int:
    with tempfile.TemporaryDirectory() as tmp, lake.local_copy(key, Path(tmp)) as path:
        return pq.ParquetFile(path).metadata.num_rows


def rows_balance(lake: TeamLake, upload_ids: list[uuid.UUID]) -> CheckResult:
    """Rows in = accepted + rejected + merged, each side counted from where it was stored:
    the validated and processed Parquet, the rejection rows, the leads table."""
    mismatched: dict[str, dict[str, int]] = {}
    for upload_id in upload_ids:
        up = get_upload(lake.team_id, upload_id)
        bucket = load_catalog().get(up.bucket_id)
        with tenant_session(lake.team_id) as session:
            rejected = session.scalar(
                select(func.count())
                .select_from(UploadRejection)
                .where(UploadRejection.team_id == lake.team_id, UploadRejection.upload_id == up.id)
            )
        counts = {
            "rows_in": up.total_rows or 0,
            "validated_rows": _parquet_rows(lake, lake.validated_key(bucket, up.id)),
            "rejection_rows": rejected or 0,
            "processed_rows": _parquet_rows(lake, lake.processed_key(bucket, up.id)),
            "inserted": up.inserted_leads or 0,
            "merged": up.merged_rows or 0,
        }
        balanced = (
            counts["rows_in"] == counts["validated_rows"] + counts["rejection_rows"]
            and counts["validated_rows"] == counts["inserted"] + counts["merged"]
            and counts["inserted"] <= counts["processed_rows"] <= counts["validated_rows"]
        )
        if not balanced:
            mismatched[str(upload_id)] = counts
    return CheckResult(
        not mismatched, {"uploads_checked": len(upload_ids), "mismatched": mismatched}
    )
