"""The datalake on S3 (moto's server on loopback), through dagster-aws's S3 resource."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from outreach_assets.ingestion import bucket_index, leads, processed_records, validated_records
from outreach_assets.partitions import partition_key, teams_partitions
from outreach_assets.s3_datalake import S3DatalakeResource
from outreach_core.catalog import load_catalog
from outreach_core.datalake import InvalidKey, TeamLake
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Lead
from outreach_core.uploads.landing import land_upload
from outreach_core.uploads.processing import get_upload
from tests.helpers import csv_bytes


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Resource]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address  # type: ignore[attr-defined]
    resource = S3Resource(
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    resource.get_client().create_bucket(Bucket="lake")
    yield resource
    server.stop()


def test_ingestion_runs_on_s3_and_keys_stay_under_the_team(s3, team, other_team) -> None:
    datalake = S3DatalakeResource(url="s3://lake/prod", s3=s3)
    lake = datalake.team(team.team_id)
    bucket = load_catalog().get("ny-construction-plumbers")
    data = csv_bytes(
        [
            {"Company": "Acme", "Phone": "2125550100", "Email": "a@example.com"},
            {"Company": "Bad", "Phone": "12", "Email": ""},
        ]
    )
    upload = land_upload(lake, [data], filename="l.csv", bucket=bucket).upload
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(teams_partitions.name, [str(team.team_id)])
        result = dg.materialize(
            [validated_records, processed_records, bucket_index, leads],
            partition_key=partition_key(team.team_id, "construction"),
            resources={"datalake": datalake},
            instance=instance,
            run_config={
                "ops": {"validated_records": {"config": {"uploads": [{"id": str(upload.id)}]}}}
            },
        )
    assert result.success
    done = get_upload(team.team_id, upload.id)
    assert (done.status, done.inserted_leads, done.rejected_rows) == ("completed", 1, 1)
    with tenant_session(team.team_id) as s:
        assert s.scalars(select(Lead.phone)).all() == ["+12125550100"]

    keys = s3.get_client().list_objects_v2(Bucket="lake")["Contents"]
    names = [k["Key"] for k in keys]
    assert names and all(
        k.startswith(f"prod/team_{team.team_id}/datalake/business/ny/") for k in names
    )
    assert {k.rsplit("/", 2)[-2] for k in names} >= {"raw", "processed", "rejected"}
    # The other team's view lists nothing of ours and refuses our keys.
    theirs = datalake.team(other_team.team_id)
    assert theirs.list() == []
    with pytest.raises(InvalidKey):
        theirs.get_bytes(upload.storage_key)
    with pytest.raises(InvalidKey):
        theirs.get_bytes(f"team_{other_team.team_id}/datalake/../../team_{team.team_id}/x")


def test_team_lake_requires_a_uuid() -> None:
    with pytest.raises(TypeError):
        TeamLake(None, "team_x/../y")  # type: ignore[arg-type]


def test_the_datalake_resource_follows_the_configured_url(monkeypatch) -> None:
    from outreach_assets.resources import DatalakeResource, default_datalake
    from outreach_core.settings import get_settings

    monkeypatch.setattr(get_settings(), "datalake_url", "s3://lake/prod")
    assert isinstance(default_datalake(), S3DatalakeResource)
    monkeypatch.setattr(get_settings(), "datalake_url", "/srv/lake")
    assert type(default_datalake()) is DatalakeResource


def test_a_local_datalake_does_not_load_boto3_into_every_run_worker() -> None:
    """Every run worker imports the definitions before its first step; boto3 and dagster-aws
    would add about 2 s to each upload's wait."""
    code = (
        "import sys, outreach_assets.definitions; "
        "print(sorted(m for m in ('boto3', 'botocore', 'dagster_aws') if m in sys.modules))"
    )
    env = {**os.environ, "OUTREACH_DATALAKE_URL": "/srv/lake"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
