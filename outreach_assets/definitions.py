"""The Dagster code location (workspace.yaml points here)."""

from __future__ import annotations

import dagster as dg

from outreach_assets.analytics import (
    analytics_dbt_assets,
    analytics_job,
    analytics_schedule,
    default_dbt,
)
from outreach_assets.campaign_create import create_campaign_job
from outreach_assets.campaigns import campaign_send_job, campaign_send_sensor, default_twilio
from outreach_assets.enrichment import enrich_after_ingest_sensor, enriched_leads
from outreach_assets.ingestion import bucket_index, leads, processed_records, validated_records
from outreach_assets.jobs import enrich_job, ingest_job
from outreach_assets.notify import notify_job, notify_sensor
from outreach_assets.reconcile import reconcile_deliveries_job, reconcile_deliveries_schedule
from outreach_assets.replies import default_smtp, replies_job, replies_sensor
from outreach_assets.resources import default_apollo, default_datalake
from outreach_assets.sensors import (
    upload_run_failure_sensor,
    upload_sensor,
    upload_watchdog_sensor,
)
from outreach_assets.workflows import workflow_sensor, workflows_job

defs = dg.Definitions(
    assets=[
        validated_records,
        processed_records,
        bucket_index,
        leads,
        enriched_leads,
        analytics_dbt_assets,
    ],
    jobs=[
        ingest_job,
        enrich_job,
        create_campaign_job,
        campaign_send_job,
        reconcile_deliveries_job,
        replies_job,
        notify_job,
        workflows_job,
        analytics_job,
    ],
    schedules=[reconcile_deliveries_schedule, analytics_schedule],
    sensors=[
        upload_sensor,
        upload_run_failure_sensor,
        upload_watchdog_sensor,
        enrich_after_ingest_sensor,
        campaign_send_sensor,
        replies_sensor,
        notify_sensor,
        workflow_sensor,
    ],
    resources={
        "datalake": default_datalake(),
        "apollo": default_apollo(),
        "twilio": default_twilio(),
        "smtp": default_smtp(),
        "dbt": default_dbt(),
    },
)
