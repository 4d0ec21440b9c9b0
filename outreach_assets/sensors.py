"""Sensors: received uploads become ingestion runs."""

from __future__ import annotations

import uuid

import dagster as dg

from outreach_assets.partitions import partition_key, teams_partitions
from outreach_core.uploads.processing import fail_upload, list_pending_uploads

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Validate, process, index and load one team x sector partition's uploads.",
)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def upload_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per received upload, keyed by the upload id: a sensor that crashes before
    saving its state asks again with the same run_key, and Dagster starts no second run."""
    pending = list_pending_uploads()
    if not pending:
        return dg.SensorResult(skip_reason="no received uploads")
    known = set(context.instance.get_dynamic_partitions(teams_partitions.name))
    new_teams = sorted({str(p.team_id) for p in pending} - known)
    requests = [
        dg.RunRequest(
            run_key=p.run_key,
            partition_key=partition_key(p.team_id, p.sector),
            run_config=dg.RunConfig(
                ops={"validated_records": {"config": {"upload_ids": [str(p.upload_id)]}}}
            ),
            tags={"outreach/upload_id": str(p.upload_id), "outreach/team_id": str(p.team_id)},
        )
        for p in pending
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
    """A run that failed (its retries included) leaves its upload `failed` with the reason,
    never `processing` forever; `outreach retry` queues it again."""
    tags = context.dagster_run.tags
    if "outreach/upload_id" not in tags:
        return
    team_id = uuid.UUID(tags["outreach/team_id"])
    upload_id = uuid.UUID(tags["outreach/upload_id"])
    message = context.failure_event.message or "run failed"
    fail_upload(team_id, upload_id, f"run {context.dagster_run.run_id[:8]} failed: {message[:500]}")
