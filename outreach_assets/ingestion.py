"""Ingestion assets, partitioned team x sector. Each asset runs one core stage over the
run's uploads and reports counts as materialisation metadata.

Nothing passes between the steps through per-partition storage: the first step claims
the run's uploads in PostgreSQL for the run group (`run_owner`), and every later step
reads them back from there. Two runs of one partition can therefore never see each
other's uploads, whatever the run queue does.

(No `from __future__ import annotations` here: Dagster reads the config classes' and
the assets' annotations at definition time.)"""

import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import dagster as dg
from sqlalchemy.exc import OperationalError

from outreach_assets.partitions import team_and_sector, team_sector_partitions
from outreach_assets.resources import DatalakeResource
from outreach_assets.runs import run_owner
from outreach_core.catalog import load_catalog
from outreach_core.datalake import TeamLake
from outreach_core.db.tables import Upload
from outreach_core.uploads import checks, processing

GROUP = "ingestion"


class UploadRef(dg.Config):
    id: str
    # The upload's attempt when the run was asked for: a failed run fails only the
    # attempt it was started for, never a later one the watchdog or a retry queued.
    attempt: int = 0


class UploadSelection(dg.Config):
    """The uploads this run is for (the upload sensor names them). Empty: every received
    upload of the partition, as when a run is launched from the UI."""

    uploads: list[UploadRef] = []


def _each(
    context: dg.AssetExecutionContext,
    uploads: list[Upload],
    stage: str,
    work: Callable[[Upload], object],
) -> dict[str, str]:
    """Run one stage over each upload. An upload the stage cannot handle fails alone, with
    the reason; the others go on. A lost database connection fails the run instead, so
    Dagster's run retry resumes it."""
    failures = {}
    for upload in uploads:
        try:
            work(upload)
        except OperationalError:
            raise
        except Exception as exc:
            reason = f"{stage} failed: {type(exc).__name__}: {exc}"[:1000]
            context.log.error(f"upload {upload.id} ({upload.filename}): {reason}")
            processing.fail_upload(upload.team_id, upload.id, reason)
            failures[str(upload.id)] = reason
    return failures


@dg.asset(partitions_def=team_sector_partitions, group_name=GROUP, kinds={"parquet", "csv"})
def validated_records(
    context: dg.AssetExecutionContext, config: UploadSelection, datalake: DatalakeResource
) -> dg.MaterializeResult:
    """Raw CSV uploads read, mapped to standard columns, normalised and validated. Rejected
    rows go to rejected/{upload}.csv and upload_rejections, each with its reason."""
    team_id, sector = team_and_sector(context)
    owner = run_owner(context.run)
    lake = datalake.team(team_id)
    named = [uuid.UUID(u.id) for u in config.uploads] or None
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    with processing.keep_alive(team_id, owner):
        uploads = processing.claim_uploads(team_id, sector, owner, named)
        skipped = sorted({str(u) for u in named or []} - {str(u.id) for u in uploads})
        if skipped:
            context.log.info(f"not mine to process (finished, or another run has them): {skipped}")

        def validate(upload: Upload) -> None:
            context.log.info(f"validating upload {upload.id} ({upload.filename})")
            result = processing.validate_upload(lake, upload, context.log.info)
            if result is not None:
                totals.update(
                    total=result.total, accepted=result.accepted, rejected=result.rejected
                )
                reasons.update(result.top_reasons)

        _each(context, uploads, "validation", validate)
    failed = processing.failed_uploads(team_id, [u.id for u in uploads])
    return dg.MaterializeResult(
        metadata={
            "uploads": len(uploads) - len(failed),
            "failed_uploads": dg.MetadataValue.json({str(k): v for k, v in failed.items()}),
            "not_taken": dg.MetadataValue.json(skipped),
            "rows_total": totals["total"],
            "rows_accepted": totals["accepted"],
            "rows_rejected": totals["rejected"],
            "top_rejection_reasons": dg.MetadataValue.json(dict(reasons.most_common(5))),
        }
    )


def _owned(
    context: dg.AssetExecutionContext, datalake: DatalakeResource
) -> tuple[TeamLake, list[Upload]]:
    """The team's datalake and the uploads this run group still holds."""
    team_id, sector = team_and_sector(context)
    return (
        datalake.team(team_id),
        processing.owned_uploads(team_id, sector, run_owner(context.run)),
    )


@dg.asset(
    partitions_def=team_sector_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[validated_records],
)
def processed_records(
    context: dg.AssetExecutionContext, datalake: DatalakeResource
) -> dg.MaterializeResult:
    """Validated rows with bucket and sector, duplicate contacts inside a file merged."""
    team_id, _ = team_and_sector(context)
    lake, uploads = _owned(context, datalake)
    rows = duplicates = 0

    def process(upload: Upload) -> None:
        nonlocal rows, duplicates
        result = processing.process_upload(lake, upload, context.log.info)
        rows += result.rows
        duplicates += result.duplicates_in_file

    with processing.keep_alive(team_id, run_owner(context.run)):
        failures = _each(context, uploads, "processing", process)
    return dg.MaterializeResult(
        metadata={
            "uploads": len(uploads) - len(failures),
            "failed_uploads": dg.MetadataValue.json(failures),
            "rows": rows,
            "duplicates_in_file": duplicates,
        }
    )


@dg.asset(
    partitions_def=team_sector_partitions,
    group_name=GROUP,
    kinds={"json"},
    deps=[processed_records],
)
def bucket_index(
    context: dg.AssetExecutionContext, datalake: DatalakeResource
) -> dg.MaterializeResult:
    """index.json per bucket touched: byState, byCounty, byCity, bySic and totals."""
    team_id, _ = team_and_sector(context)
    lake, uploads = _owned(context, datalake)
    totals: dict[str, dict[str, int]] = {}
    with processing.keep_alive(team_id, run_owner(context.run)):
        for bucket_id in sorted({u.bucket_id for u in uploads}):
            bucket = load_catalog().get(bucket_id)
            index = processing.build_bucket_index(lake, bucket, context.log.info)
            totals[bucket_id] = {k: int(v) for k, v in index["totals"].items()}
    return dg.MaterializeResult(metadata={"buckets": dg.MetadataValue.json(totals)})


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
    context: dg.AssetExecutionContext, datalake: DatalakeResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Leads in PostgreSQL: batch upsert, one lead per phone, then email, inside the team.
    Each upload is `completed` when its leads are committed."""
    team_id, sector = team_and_sector(context)
    owner = run_owner(context.run)
    lake, uploads = _owned(context, datalake)
    inserted = merged = 0

    def load(upload: Upload) -> None:
        nonlocal inserted, merged
        result = processing.load_leads(lake, upload, context.log.info)
        inserted += result.inserted
        merged += result.merged

    with processing.keep_alive(team_id, owner):
        failures = _each(context, uploads, "loading leads", load)
    completed = processing.finished_uploads(team_id, sector, owner)
    yield dg.MaterializeResult(
        metadata={
            "uploads": len(completed),
            "failed_uploads": dg.MetadataValue.json(failures),
            "inserted": inserted,
            "merged": merged,
        }
    )
    yield from _leads_checks(lake, completed)


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
