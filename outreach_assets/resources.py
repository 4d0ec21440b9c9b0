"""Dagster resources: thin wrappers that hand core code what it needs."""

from __future__ import annotations

import uuid

import dagster as dg
from dagster_aws.s3 import S3Resource

from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.settings import get_settings


class DatalakeResource(dg.ConfigurableResource):
    """The datalake: a local directory, or `s3://bucket/prefix` through dagster-aws."""

    url: str
    s3: S3Resource | None = None

    def team(self, team_id: uuid.UUID) -> TeamLake:
        client = (
            self.s3.get_client() if self.s3 is not None and self.url.startswith("s3://") else None
        )
        return TeamLake(store_from_url(self.url, s3_client=client), team_id)


def default_datalake() -> DatalakeResource:
    url = get_settings().resolved_datalake_url
    return DatalakeResource(url=url, s3=S3Resource() if url.startswith("s3://") else None)
