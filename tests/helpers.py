"""Shared test helpers: run the real ingestion job for uploads, as the sensor would."""

from __future__ import annotations

import csv
import io
import itertools
import random
import uuid
from pathlib import Path

import dagster as dg

from outreach_assets.definitions import defs
from outreach_assets.ingestion import UploadRef
from outreach_assets.partitions import teams_partitions
from outreach_assets.sensors import upload_sensor
from outreach_core.catalog import load_catalog
from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.db.tables import Upload
from outreach_core.settings import get_settings
from outreach_core.uploads.landing import land_upload
from outreach_core.uploads.processing import get_upload


def lake_for(team_id: uuid.UUID) -> TeamLake:
    return TeamLake(store_from_url(get_settings().resolved_datalake_url), team_id)


def land(
    team_id: uuid.UUID,
    data: bytes,
    bucket_id: str = "ny-construction-plumbers",
    filename: str = "leads.csv",
) -> Upload:
    return land_upload(
        lake_for(team_id), [data], filename=filename, bucket=load_catalog().get(bucket_id)
    ).upload


def land_file(
    team_id: uuid.UUID, path: Path, bucket_id: str = "ny-construction-plumbers"
) -> Upload:
    return land(team_id, path.read_bytes(), bucket_id, path.name)


def run_sensor_and_jobs(
    instance: dg.DagsterInstance, only: set[uuid.UUID] | None = None, raise_on_error: bool = True
) -> list[dg.ExecuteInProcessResult]:
    """Evaluate the real upload sensor, then execute in-process the runs it asks for (those
    naming any of `only`, when given: other tests' uploads may be waiting too)."""
    result = upload_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(teams_partitions.name, list(request.partition_keys))
    job = defs.resolve_job_def("ingest_job")
    runs = []
    for request in result.run_requests or []:
        named = {uuid.UUID(ref.id) for ref in _named_uploads(request)}
        if only is not None and not named & only:
            continue
        runs.append(
            job.execute_in_process(
                instance=instance,
                partition_key=request.partition_key,
                run_config=request.run_config,
                tags=request.tags,
                raise_on_error=raise_on_error,
            )
        )
    return runs


def _named_uploads(request: dg.RunRequest) -> list[UploadRef]:
    config = request.run_config["ops"]["validated_records"]["config"]
    return [UploadRef(**ref) for ref in config["uploads"]]


def ingest(instance: dg.DagsterInstance, *uploads: Upload) -> list[Upload]:
    """Ingest these uploads through the sensor and real runs; all must end final."""
    runs = run_sensor_and_jobs(instance, {u.id for u in uploads})
    assert runs and all(r.success for r in runs)
    done = [get_upload(u.team_id, u.id) for u in uploads]
    assert all(u.status in ("completed", "failed") for u in done), [u.status for u in done]
    return done


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# Sending numbers are unique across teams: one sequence for the whole test session (random
# draws from the 10,000 numbers of +1212555xxxx collided once tests made a few hundred).
_NUMBERS = itertools.count(random.randrange(10_000))


def fresh_sending_number() -> str:
    return f"+1212555{next(_NUMBERS) % 10_000:04d}"
