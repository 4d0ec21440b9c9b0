"""CSV uploads become leads through real Dagster runs on a real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import pytest
from sqlalchemy import func, select

from outreach_core.catalog import load_catalog
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import BucketIndex, Lead, UploadRejection
from outreach_core.uploads.processing import get_upload
from tests.helpers import (
    csv_bytes,
    ingest,
    lake_for,
    land,
    run_sensor_and_jobs,
)


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def row(phone: str = "", email: str = "", company: str = "Acme Plumbing", **extra: str) -> dict:
    return {
        "Company Name": company,
        "Phone": phone,
        "Email": email,
        "City": extra.get("city", ""),
        "State": extra.get("state", "NY"),
        "Zip": extra.get("zip", ""),
        "Title": extra.get("title", ""),
    }


def leads_of(team_id: uuid.UUID) -> list[Lead]:
    with tenant_session(team_id) as s:
        return list(s.scalars(select(Lead).where(Lead.team_id == team_id).order_by(Lead.id)))


def test_upload_becomes_leads_with_counts_index_and_checks(instance, team) -> None:
    data = csv_bytes(
        [
            row("(212) 555-0101", "A@Example.com ", city="Brooklyn", zip="11201-1234"),
            row("212.555.0102", "", city="Buffalo", state="New York"),
            row("+1 212 555 0101", "", title="Owner"),  # duplicate phone inside the file
            row("123", "", company="Bad Phone Co"),  # invalid phone, no email
            row("", "only@example.com", city="Albany"),
        ]
    )
    upload = land(team.team_id, data)
    runs = run_sensor_and_jobs(instance, {upload.id})
    assert len(runs) == 1 and runs[0].success
    checks = runs[0].get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)

    done = get_upload(team.team_id, upload.id)
    assert done.status == "completed"
    assert (done.total_rows, done.accepted_rows, done.rejected_rows) == (5, 4, 1)
    assert done.inserted_leads == 3 and done.merged_rows == 1
    leads = leads_of(team.team_id)
    assert sorted(lead.phone or "" for lead in leads) == ["", "+12125550101", "+12125550102"]
    first = next(lead for lead in leads if lead.phone == "+12125550101")
    assert first.email == "a@example.com" and first.zip == "11201" and first.title == "Owner"
    assert all(lead.bucket_id == "ny-construction-plumbers" for lead in leads)
    assert next(lead for lead in leads if lead.phone == "+12125550102").state == "NY"

    with tenant_session(team.team_id) as s:
        rejections = list(s.scalars(select(UploadRejection)))
        index = s.scalar(select(BucketIndex))
    assert [r.row_number for r in rejections] == [4]
    assert "phone" in rejections[0].reason
    assert index is not None and index.index["totals"]["leads"] == 3
    assert index.index["totals"]["needs_skip_trace"] == 1
    bucket = load_catalog().get("ny-construction-plumbers")
    lake = lake_for(team.team_id)
    stored = json.loads(lake.get_bytes(lake.index_key(bucket)))
    assert stored["byCity"]["Brooklyn, NY"] == 1 and stored["bySic"] == {}
    assert lake.exists(lake.processed_key(bucket, upload.id))
    assert lake.exists(lake.rejected_key(bucket, upload.id))


def test_second_upload_merges_and_never_blanks_a_field(instance, team) -> None:
    first = land(team.team_id, csv_bytes([row("2125550111", "", title="Owner", city="Troy")]))
    ingest(instance, first)
    second = land(
        team.team_id,
        csv_bytes(
            [
                row("212-555-0111", "new@example.com", title="", city="Albany"),
            ]
        ),
    )
    [done] = ingest(instance, second)
    assert (done.inserted_leads, done.merged_rows) == (0, 1)
    [lead] = leads_of(team.team_id)
    # Filled the empty email; kept the existing title and city.
    assert (lead.email, lead.title, lead.city) == ("new@example.com", "Owner", "Troy")
    assert lead.source_upload_id == first.id and lead.last_upload_id == second.id


def test_same_file_twice_gives_the_same_leads(instance, team) -> None:
    data = csv_bytes([row(f"21255502{i:02d}", f"p{i}@example.com") for i in range(40)])
    ingest(instance, land(team.team_id, data))
    before = [(lead.id, lead.phone, lead.email) for lead in leads_of(team.team_id)]
    [again] = ingest(instance, land(team.team_id, data))
    assert again.inserted_leads == 0 and again.merged_rows == 40
    assert [(lead.id, lead.phone, lead.email) for lead in leads_of(team.team_id)] == before


def test_same_phone_in_two_teams_is_two_leads(instance, team, other_team) -> None:
    data = csv_bytes([row("2125550199", "shared@example.com")])
    ingest(instance, land(team.team_id, data), land(other_team.team_id, data))
    assert len(leads_of(team.team_id)) == 1
    assert len(leads_of(other_team.team_id)) == 1


def test_one_valid_row_among_ten_thousand_invalid(instance, team) -> None:
    rows = [row("555", "nope") for _ in range(10_000)]
    rows.insert(5_000, row("2125550123", ""))
    [done] = ingest(instance, land(team.team_id, csv_bytes(rows)))
    assert (done.status, done.accepted_rows, done.rejected_rows) == ("completed", 1, 10_000)
    with tenant_session(team.team_id) as s:
        assert s.scalar(select(func.count()).select_from(UploadRejection)) == 10_000
    assert [lead.phone for lead in leads_of(team.team_id)] == ["+12125550123"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"Company Name,Phone,Email\n", "no data rows"),
        (bytes(range(256)) * 64, "binary"),
        (b"\x89PNG\r\n\x1a\n" + bytes(2000), "binary"),
        (b"foo,bar\n1,2\n", "no usable column"),
    ],
)
def test_unusable_files_fail_with_a_clear_reason(instance, team, content, reason) -> None:
    [done] = ingest(instance, land(team.team_id, content))
    assert done.status == "failed"
    assert reason in (done.error or "").lower()
    assert leads_of(team.team_id) == []


def test_bucket_of_another_state_keeps_rows_own_state(instance, team) -> None:
    upload = land(
        team.team_id,
        csv_bytes([row("3055550100", "", state="FL", city="Miami")]),
        bucket_id="nj-construction-plumbers",
    )
    assert upload.storage_key.startswith(f"team_{team.team_id}/datalake/business/nj/")
    ingest(instance, upload)
    [lead] = leads_of(team.team_id)
    assert (lead.bucket_id, lead.state) == ("nj-construction-plumbers", "FL")


def test_sensor_asks_one_run_per_partition_the_same_again_and_adds_the_team(instance, team) -> None:
    """Uploads of one team x sector waiting together go into one run; evaluated again
    before anything ran (a sensor that crashed before saving its tick), it asks for the
    same runs by the same keys, so Dagster starts no second one."""
    from outreach_assets.sensors import upload_sensor

    plumbers = [land(team.team_id, csv_bytes([row(f"21255501{i}7", "")])) for i in range(2)]
    bars = land(
        team.team_id, csv_bytes([row("2125550179", "")]), bucket_id="fl-restaurants-bars-taverns"
    )
    context = dg.build_sensor_context(instance=instance)
    first = [r for r in upload_sensor(context).run_requests if str(team.team_id) in r.partition_key]
    again = [r for r in upload_sensor(context).run_requests if str(team.team_id) in r.partition_key]

    def named(request: dg.RunRequest) -> set[str]:
        return {
            u["id"] for u in request.run_config["ops"]["validated_records"]["config"]["uploads"]
        }

    by_partition = {str(r.partition_key): named(r) for r in first}
    assert by_partition == {
        f"construction|{team.team_id}": {str(u.id) for u in plumbers},
        f"restaurants|{team.team_id}": {str(bars.id)},
    }
    assert [r.run_key for r in again] == [r.run_key for r in first]
    added = {
        k for req in upload_sensor(context).dynamic_partitions_requests for k in req.partition_keys
    }
    assert str(team.team_id) in added


def test_two_sectors_of_one_team_load_at_once_without_duplicates(team) -> None:
    """Two runs for the same team (different sectors) merging overlapping contacts at the
    same time: the team's load lock keeps one lead per phone."""
    import threading

    from outreach_core.uploads import processing

    shared = [row(f"21255503{i:02d}", f"s{i}@example.com") for i in range(60)]
    first = land(team.team_id, csv_bytes(shared + [row("2125550400", "")]))
    second = land(
        team.team_id,
        csv_bytes(shared + [row("2125550401", "")]),
        bucket_id="fl-restaurants-bars-taverns",
    )
    lake = lake_for(team.team_id)
    for upload in (first, second):
        processing.validate_upload(lake, upload)
        processing.process_upload(lake, upload)
    errors: list[BaseException] = []

    def load(upload) -> None:  # type: ignore[no-untyped-def]
        try:
            processing.load_leads(lake, upload)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(u,)) for u in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    phones = [lead.phone for lead in leads_of(team.team_id)]
    assert len(phones) == len(set(phones)) == 62
    done = [get_upload(team.team_id, u.id) for u in (first, second)]
    assert sorted(d.inserted_leads for d in done) == [1, 61]


def test_kill_9_during_load_then_rerun_loses_and_duplicates_nothing(
    team, other_team, monkeypatch
) -> None:
    """SIGKILL after the first committed batch; the rerun (as Dagster's run retry does)
    finishes the upload with the same leads as an uninterrupted load."""
    import os
    import signal
    import subprocess
    import sys

    from outreach_core.sandbox.synthetic import generate
    from outreach_core.settings import get_settings
    from outreach_core.uploads import processing

    monkeypatch.setattr(get_settings(), "ingest_chunk_rows", 500)
    monkeypatch.setattr(get_settings(), "lead_batch_rows", 500)  # several load batches
    data = generate(3_000, seed=11).write_csv().encode()
    upload = land(team.team_id, data)
    lake = lake_for(team.team_id)
    [upload] = processing.claim_uploads(team.team_id, upload.sector, "run-1", [upload.id])
    processing.validate_upload(lake, upload)
    processing.process_upload(lake, upload)
    script = (
        "import uuid; from outreach_core.uploads import processing as p; "
        "from tests.helpers import lake_for; "
        f"u = p.get_upload(uuid.UUID('{team.team_id}'), uuid.UUID('{upload.id}')); "
        "p.load_leads(lake_for(u.team_id), u)"
    )
    env = {
        **os.environ,
        "OUTREACH_CRASH_AT": "leads.after_batch",
        "OUTREACH_LEAD_BATCH_ROWS": "500",
    }
    killed = subprocess.run([sys.executable, "-c", script], env=env, cwd=os.getcwd(), check=False)
    assert killed.returncode == -signal.SIGKILL
    assert get_upload(team.team_id, upload.id).status == "processing"
    partial = len(leads_of(team.team_id))
    assert partial > 0

    processing.load_leads(lake, get_upload(team.team_id, upload.id))
    final = get_upload(team.team_id, upload.id)
    assert final.status == "completed"
    assert final.accepted_rows == final.inserted_leads + final.merged_rows

    # The same file loaded into another team without a crash gives the same leads.
    clean = land(other_team.team_id, data)
    other_lake = lake_for(other_team.team_id)
    processing.validate_upload(other_lake, clean)
    processing.process_upload(other_lake, clean)
    processing.load_leads(other_lake, clean)

    def contacts(team_id):  # type: ignore[no-untyped-def]
        return sorted((lead.phone or "", lead.email or "") for lead in leads_of(team_id))

    assert partial < len(contacts(other_team.team_id))
    assert contacts(team.team_id) == contacts(other_team.team_id)


def test_an_unreadable_upload_fails_alone_with_its_reason_and_retry_processes_it(
    instance, team
) -> None:
    """A run of two uploads, one of whose raw file is gone: that upload fails with the
    reason, the other completes, the run succeeds; after the file is back, `outreach
    retry` processes it."""
    from outreach_core.uploads.queue import retry_upload

    good = land(team.team_id, csv_bytes([row("2125550187", "")]))
    lost = land(team.team_id, csv_bytes([row("2125550188", "")]))
    raw = lake_for(team.team_id).store
    data = raw.get_bytes(lost.storage_key)
    raw.delete(lost.storage_key)
    runs = run_sensor_and_jobs(instance, {good.id, lost.id})
    assert len(runs) == 1 and runs[0].success
    assert get_upload(team.team_id, good.id).status == "completed"
    failed = get_upload(team.team_id, lost.id)
    assert failed.status == "failed"
    assert failed.error.startswith("validation failed: FileNotFoundError")

    raw.put_bytes(lost.storage_key, data)
    again = retry_upload(team.team_id, lost.id)
    assert again.attempt == 1 and again.status == "received" and again.error is None
    [done] = ingest(instance, again)
    assert done.status == "completed" and done.inserted_leads == 1


def _fail_with_sensor(instance: dg.DagsterInstance, run: dg.ExecuteInProcessResult) -> None:
    from outreach_assets.sensors import upload_run_failure_sensor

    failure = next(e for e in run.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=upload_run_failure_sensor.name,
        dagster_instance=instance,
        dagster_run=run.dagster_run,
        dagster_event=failure,
    ).for_run_failure()
    upload_run_failure_sensor(context)


def test_a_run_failing_before_it_takes_its_uploads_fails_them_with_the_reason(
    instance, team
) -> None:
    """A misconfigured datalake fails the run before it claims anything: the failure sensor
    fails the uploads the run was started for, naming the cause."""
    from outreach_assets.definitions import defs
    from outreach_assets.resources import DatalakeResource
    from outreach_assets.sensors import upload_sensor

    upload = land(team.team_id, csv_bytes([row("2125550189", "")]))
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    [request] = [
        r for r in upload_sensor(context).run_requests if str(team.team_id) in r.partition_key
    ]
    instance.add_dynamic_partitions("teams", [str(team.team_id)])
    run = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        resources={"datalake": DatalakeResource(url="ftp://nowhere/lake")},
        raise_on_error=False,
    )
    assert not run.success
    _fail_with_sensor(instance, run)
    failed = get_upload(team.team_id, upload.id)
    assert failed.status == "failed"
    assert "unsupported datalake URL scheme" in failed.error


def test_a_run_failing_after_it_took_its_uploads_fails_them_with_the_reason(instance, team) -> None:
    """A corrupt file in the bucket's processed folder breaks the bucket index: the run
    fails after validating, and every upload it held is failed with the reason, none left
    `processing`."""
    upload = land(team.team_id, csv_bytes([row("2125550190", "")]))
    lake = lake_for(team.team_id)
    bucket = load_catalog().get(upload.bucket_id)
    lake.put_bytes(lake.processed_key(bucket, uuid.uuid4()), b"not parquet")
    [run] = run_sensor_and_jobs(instance, {upload.id}, raise_on_error=False)
    assert not run.success
    assert get_upload(team.team_id, upload.id).status == "processing"
    _fail_with_sensor(instance, run)
    failed = get_upload(team.team_id, upload.id)
    assert failed.status == "failed" and f"run {run.run_id[:8]} failed" in failed.error
