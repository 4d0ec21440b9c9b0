"""The two jobs and the tags the run queue limits them by.

Both run in-process: their steps orchestrate PostgreSQL work and do little in Python, and
a process per step costs 4-12 s on two cores. Every run carries its pool and its
partition as tags (from the job's partitioned config, so a run launched from the UI gets
them too); the instance configuration written by `outreach_cli.instance` limits each pool
and allows one run per partition and job at a time."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from outreach_assets.partitions import team_sector_partitions

POOL_TAG = "outreach/pool"
INGEST_POOL = "ingest"
ENRICH_POOL = "enrich"
SEND_POOL = "send"
INGEST_PARTITION_TAG = "outreach/ingest_partition"
ENRICH_PARTITION_TAG = "outreach/enrich_partition"
# One send run per campaign at a time.
SEND_CAMPAIGN_TAG = "outreach/campaign"
# One replies run per team at a time.
REPLIES_TEAM_TAG = "outreach/replies_team"


def _no_config(_: str) -> Mapping[str, object]:
    # Run config comes from whoever launches the run (the sensor names the uploads).
    return {}


def _partition_tags(tag: str) -> dg.PartitionedConfig:
    def tags(partition_key: str) -> Mapping[str, str]:
        return {tag: partition_key}

    return dg.PartitionedConfig(
        partitions_def=team_sector_partitions,
        run_config_for_partition_key_fn=_no_config,
        tags_for_partition_key_fn=tags,
    )


ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Validate, process, index and load the uploads of one team x sector.",
    config=_partition_tags(INGEST_PARTITION_TAG),
    tags={POOL_TAG: INGEST_POOL},
    executor_def=dg.in_process_executor,
)

enrich_job = dg.define_asset_job(
    "enrich_job",
    selection=dg.AssetSelection.groups("enrichment"),
    description="Match one team x sector partition's open leads against Apollo.",
    config=_partition_tags(ENRICH_PARTITION_TAG),
    tags={POOL_TAG: ENRICH_POOL},
    executor_def=dg.in_process_executor,
)
