"""Ingestion assets, partitioned team x sector. Each asset calls one core stage per upload
and reports the counts as materialisation metadata."""

import uuid
from collections import Counter
from collections.abc import Iterator

import dagster as dg

from outreach_assets.partitions import team_and_sector, team_sector_partitions
from outreach_assets.resources import DatalakeResource
from outreach_core.catalog import load_catalog
from outreach_core.datalake import TeamLake
from outreach_core.db.tables import Upload
from outreach_core.uploads import checks, processing

GROUP = "ingestion"


class UploadSelection(dg.Config):
    """Which uploads to process; empty means every upload of the partition still waiting."""

    upload_ids: list[str] = []


def _uploads(team_id: uuid.UUID, upload_ids: list[str]) -> list[Upload]:
    return processing.get_uploads(team_id, [uuid.UUID(u) for u in upload_ids])


@dg.asset(partitions_def=team_sector_partitions, group_name=GROUP, kinds={"parquet", "csv"})
def validated_records(
    context: dg.AssetExecutionContext, config: UploadSelection, datalake: DatalakeResource
) -> list[str]:
    """Raw CSV uploads read, mapped to standard columns, normalised and validated. Rejected
    rows go to rejected/{upload}.csv and upload_rejections, each with its reason."""
    team_id, sector = team_and_sector(context)
    lake = datalake.team(team_id)
    only = [uuid.UUID(u) for u in config.upload_ids] or None
    uploads = processing.pending_uploads(team_id, sector, only)
    done: list[str] = []
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for upload in uploads:
        context.log.info(f"validating upload {upload.id} ({upload.filename}, {upload.bucket_id})")
        result = processing.validate_upload(lake, upload, context.run.run_id, context.log.info)
        if result is None:
            failures[str(upload.id)] = processing.get_upload(team_id, upload.id).error or "failed"
            continue
        done.append(str(upload.id))
        totals.update(total=result.total, accepted=result.accepted, rejected=result.rejected)
        reasons.update(result.top_reasons)
    context.add_output_metadata(
        {
            "uploads": len(done),
            "failed_uploads": dg.MetadataValue.json(failures),
            "rows_total": totals["total"],
            "rows_accepted": totals["accepted"],
            "rows_rejected": totals["rejected"],
            "top_rejection_reasons": dg.MetadataValue.json(dict(reasons.most_common(5))),
        }
    )
    return done


@dg.asset(partitions_def=team_sector_partitions, group_name=GROUP, kinds={"parquet"})
def processed_records(
    context: dg.AssetExecutionContext, validated_records: list[str], datalake: DatalakeResource
) -> list[str]:
    """Validated rows with bucket and sector, duplicate contacts inside a file merged."""
    team_id, _ = team_and_sector(context)
    lake = datalake.team(team_id)
    rows = duplicates = 0
    for upload in _uploads(team_id, validated_records):
        result = processing.process_upload(lake, upload, context.log.info)
        rows += result.rows
        duplicates += result.duplicates_in_file
    context.add_output_metadata({"rows": rows, "duplicates_in_file": duplicates})
    return validated_records


@dg.asset(partitions_def=team_sector_partitions, group_name=GROUP, kinds={"json"})
def bucket_index(
    context: dg.AssetExecutionContext, processed_records: list[str], datalake: DatalakeResource
) -> dict[str, dict[str, int]]:
    """index.json per bucket touched: byState, byCounty, byCity, bySic and totals."""
    team_id, _ = team_and_sector(context)
    lake = datalake.team(team_id)
    bucket_ids = sorted({u.bucket_id for u in _uploads(team_id, processed_records)})
    totals: dict[str, dict[str, int]] = {}
    for bucket_id in bucket_ids:
        index = processing.build_bucket_index(lake, load_catalog().get(bucket_id), context.log.info)
        totals[bucket_id] = {k: int(v) for k, v in index["totals"].items()}
    context.add_output_metadata({"buckets": dg.MetadataValue.json(totals)})
    return totals


LEADS_CHECKS = [
    dg.AssetCheckSpec("no_row_without_team", asset="leads"),
    dg.AssetCheckSpec("no_duplicate_phone_or_email_in_team", asset="leads"),
    dg.AssetCheckSpec("rows_in_equal_accepted_rejected_merged", asset="leads"),
]


@dg.asset(
    partitions_def=team_sector_partitions,
    group_name=GROUP,
    kinds={"postgres"},
    deps=[bucket_index],
    check_specs=LEADS_CHECKS,
)
def leads(
    context: dg.AssetExecutionContext, processed_records: list[str], datalake: DatalakeResource
):  # type: ignore[no-untyped-def]
    """Leads in PostgreSQL: batch upsert, one lead per phone, then email, inside the team."""
    team_id, _ = team_and_sector(context)
    lake = datalake.team(team_id)
    inserted = merged = 0
    for upload in _uploads(team_id, processed_records):
        result = processing.load_leads(lake, upload, context.log.info)
        inserted += result.inserted
        merged += result.merged
    yield dg.MaterializeResult(
        metadata={"uploads": len(processed_records), "inserted": inserted, "merged": merged}
    )
    yield from _leads_checks(lake, [uuid.UUID(u) for u in processed_records])


def _leads_checks(lake: TeamLake, upload_ids: list[uuid.UUID]) -> Iterator[dg.AssetCheckResult]:
    results = {
        "no_row_without_team": checks.no_row_without_team(lake.team_id),
        "no_duplicate_phone_or_email_in_team": checks.no_duplicate_keys(lake.team_id),
        "rows_in_equal_accepted_rejected_merged": checks.rows_balance(lake, upload_ids),
    }
    for name, result in results.items():
        yield dg.AssetCheckResult(
            check_name=name,
            passed=result.passed,
            metadata={
                k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                for k, v in result.metadata.items()
            },
        )
