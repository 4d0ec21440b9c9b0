"""The datalake on S3 (`s3://bucket/prefix`), through dagster-aws's S3 resource: its
credentials, region and endpoint come from the resource's configuration or boto3's usual
environment."""

from __future__ import annotations

from typing import Any

from dagster_aws.s3 import S3Resource

from outreach_assets.resources import DatalakeResource


class S3DatalakeResource(DatalakeResource):
    s3: S3Resource

    def s3_client(self) -> Any:
        return self.s3.get_client()
