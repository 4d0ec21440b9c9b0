"""Partitions: teams (dynamic, added by the upload sensor) x the 17 sectors (static).
Buckets are finer than a run needs; they are a column and a folder inside a sector."""

from __future__ import annotations

import uuid

import dagster as dg

from outreach_core.catalog import SECTORS

teams_partitions = dg.DynamicPartitionsDefinition(name="teams")
sector_partitions = dg.StaticPartitionsDefinition(list(SECTORS))
team_sector_partitions = dg.MultiPartitionsDefinition(
    {"team": teams_partitions, "sector": sector_partitions}
)


def partition_key(team_id: uuid.UUID | str, sector: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"team": str(team_id), "sector": sector})


def team_and_sector(context: dg.AssetExecutionContext) -> tuple[uuid.UUID, str]:
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    return uuid.UUID(keys["team"]), keys["sector"]
