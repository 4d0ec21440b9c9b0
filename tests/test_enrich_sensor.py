"""Enrichment follows ingestion, coalesced: however many ingest runs of a partition succeed,
at most one enrichment run of it waits in the queue, and it is asked for once the
partition's ingestion has settled."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from outreach_assets.definitions import defs
from outreach_assets.enrichment import enrich_after_ingest_sensor
from outreach_core.settings import get_settings
from tests.helpers import csv_bytes, land, run_sensor_and_jobs


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def settings(monkeypatch):  # type: ignore[no-untyped-def]
    """No settling time unless a test asks for one."""
    settings = get_settings()
    monkeypatch.setattr(settings, "enrich_settle_seconds", 0)
    return settings


def _ingest(instance: dg.DagsterInstance, team_id, phone: str, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload = land(team_id, csv_bytes([{"Phone": phone, "Name": "Ann"}]), bucket_id=bucket)
    [run] = run_sensor_and_jobs(instance, {upload.id})
    assert run.success


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = enrich_after_ingest_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_one_enrichment_per_partition_however_many_ingest_runs(instance, team, settings) -> None:
    for i in range(3):
        _ingest(instance, team.team_id, f"21255531{i:02d}", "ny-construction-plumbers")
    _ingest(instance, team.team_id, "2125553199", "fl-restaurants-bars-taverns")
    first = _tick(instance, None)
    assert sorted(str(r.partition_key) for r in first.run_requests) == [
        f"construction|{team.team_id}",
        f"restaurants|{team.team_id}",
    ]
    # Nothing new since the cursor: nothing asked.
    assert _tick(instance, first.cursor).run_requests == []


def test_no_second_enrichment_while_one_of_the_partition_waits(
    instance, team, settings, monkeypatch
) -> None:
    monkeypatch.setenv("APOLLO_API_KEY", "sandbox-key")  # the job's resource config reads it
    _ingest(instance, team.team_id, "2125553200", "ny-construction-plumbers")
    partition = f"construction|{team.team_id}"
    [request] = _tick(instance, None).run_requests
    # That request became a run that has not started yet.
    instance.create_run_for_job(
        defs.resolve_job_def("enrich_job"),
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": partition, **request.tags},
    )
    cursor = _tick(instance, None).cursor
    _ingest(instance, team.team_id, "2125553201", "ny-construction-plumbers")
    assert _tick(instance, cursor).run_requests == []


def test_enrichment_waits_while_the_partition_is_still_ingesting_but_not_forever(
    instance, team, settings, monkeypatch
) -> None:
    monkeypatch.setenv("APOLLO_API_KEY", "sandbox-key")
    _ingest(instance, team.team_id, "2125553300", "ny-construction-plumbers")
    partition = f"construction|{team.team_id}"
    # Another upload of the partition is being ingested.
    busy = instance.create_run_for_job(
        defs.resolve_job_def("ingest_job"),
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": partition},
    )
    held = _tick(instance, None)
    assert held.run_requests == []
    assert partition in held.cursor
    # Still busy, but held back long enough.
    monkeypatch.setattr(settings, "enrich_max_deferral_seconds", 0)
    [request] = _tick(instance, held.cursor).run_requests
    assert str(request.partition_key) == partition
    # Or the ingestion finishes.
    monkeypatch.setattr(settings, "enrich_max_deferral_seconds", 300)
    instance.delete_run(busy.run_id)
    [request] = _tick(instance, held.cursor).run_requests
    assert str(request.partition_key) == partition


def test_enrichment_waits_for_the_partitions_ingestion_to_settle(
    instance, team, settings, monkeypatch
) -> None:
    """Uploads one after the other: the next one's run is not queued yet when the last one
    finishes, and enrichment still waits for it."""
    monkeypatch.setenv("APOLLO_API_KEY", "sandbox-key")
    monkeypatch.setattr(settings, "enrich_settle_seconds", 3600)
    _ingest(instance, team.team_id, "2125553400", "ny-construction-plumbers")
    held = _tick(instance, None)
    assert held.run_requests == []
    _ingest(instance, team.team_id, "2125553401", "ny-construction-plumbers")
    held = _tick(instance, held.cursor)
    assert held.run_requests == []
    # Quiet long enough: one enrichment, for the last ingest run.
    monkeypatch.setattr(settings, "enrich_settle_seconds", 0)
    [request] = _tick(instance, held.cursor).run_requests
    assert str(request.partition_key) == f"construction|{team.team_id}"
    # Never past the maximum, however busy the partition stays.
    monkeypatch.setattr(settings, "enrich_settle_seconds", 3600)
    monkeypatch.setattr(settings, "enrich_max_deferral_seconds", 0)
    assert len(_tick(instance, None).run_requests) == 1
