"""The upload queue: fair turns across teams, one run per partition at a time with its
uploads batched, claims that keep overlapping runs apart, and the watchdog that leaves no
upload `received` or `processing` for good."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import text

from outreach_assets.definitions import defs
from outreach_assets.sensors import upload_watchdog_sensor
from outreach_core.db.engine import owner_engine
from outreach_core.db.states import UploadStatus
from outreach_core.settings import get_settings
from outreach_core.uploads import processing
from outreach_core.uploads.queue import (
    PendingUpload,
    RunQueueState,
    list_pending_uploads,
    plan_ingest_runs,
)
from tests.helpers import csv_bytes, ingest, land, run_sensor_and_jobs


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def rows(first: int, n: int) -> bytes:
    return csv_bytes([{"Phone": f"212555{first + i:04d}", "Name": f"N{i}"} for i in range(n)])


def pending(team: uuid.UUID, sector: str = "construction", attempt: int = 0) -> PendingUpload:
    return PendingUpload(team, uuid.uuid4(), sector, attempt)


# ------------------------------------------------------------------ planning runs


def test_one_run_per_partition_with_its_uploads_oldest_first_up_to_the_cap() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    waiting = [pending(a), pending(b), pending(a), pending(a, "restaurants"), pending(a)]
    batches = plan_ingest_runs(waiting, RunQueueState(), uploads_per_run=2, runs_per_team=5)
    assert [(x.team_id, x.sector, x.uploads) for x in batches] == [
        (a, "construction", (waiting[0], waiting[2])),
        (b, "construction", (waiting[1],)),
        (a, "restaurants", (waiting[3],)),
    ]


def test_a_partition_with_a_run_waiting_gets_none_and_named_uploads_are_not_asked_twice() -> None:
    a = uuid.uuid4()
    first, second, third = pending(a), pending(a), pending(a, "restaurants")
    queue = RunQueueState(
        assigned=frozenset({first.upload_id}), waiting=frozenset({(a, "restaurants")})
    )
    [batch] = plan_ingest_runs([first, second, third], queue, uploads_per_run=20, runs_per_team=5)
    assert batch.uploads == (second,)


def test_a_team_at_its_run_cap_waits_and_others_go_ahead() -> None:
    flood, small = uuid.uuid4(), uuid.uuid4()
    sectors = ["construction", "restaurants", "healthcare"]
    waiting = [pending(flood, s) for s in sectors] + [pending(small)]
    queue = RunQueueState(live_per_team={flood: 1})
    batches = plan_ingest_runs(waiting, queue, uploads_per_run=20, runs_per_team=2)
    assert [(x.team_id, x.sector) for x in batches] == [
        (flood, "construction"),
        (small, "construction"),
    ]


def test_the_same_batch_has_the_same_run_key_and_a_new_attempt_a_new_one() -> None:
    team = uuid.uuid4()
    one, two = pending(team), pending(team)
    plan = dict(uploads_per_run=20, runs_per_team=2)
    [first] = plan_ingest_runs([one, two], RunQueueState(), **plan)
    [reordered] = plan_ingest_runs([two, one], RunQueueState(), **plan)
    retried = PendingUpload(team, two.upload_id, two.sector, attempt=1)
    [later] = plan_ingest_runs([one, retried], RunQueueState(), **plan)
    assert first.run_key == reordered.run_key != later.run_key


def test_pending_uploads_take_turns_across_teams(team, other_team) -> None:
    """Team A lands twelve files, then team B one: B's file is in A's first turn, not
    behind A's twelve."""
    flood = [land(team.team_id, rows(i * 10, 1)) for i in range(12)]
    single = land(other_team.team_id, rows(500, 1))
    ours = {team.team_id, other_team.team_id}
    order = [p.upload_id for p in list_pending_uploads() if p.team_id in ours]
    assert order.index(single.id) <= 1
    assert [u for u in order if u != single.id] == [u.id for u in flood]


# ------------------------------------------------------------------ claims


def test_an_upload_is_processed_by_one_run_group_only(team) -> None:
    """Two runs naming the same upload (a sensor repeating a request after a crash, or a
    UI launch beside the sensor's run): the second takes nothing."""
    upload = land(team.team_id, rows(600, 2))
    taken = processing.claim_uploads(team.team_id, "construction", "run-a", [upload.id])
    assert [u.id for u in taken] == [upload.id]
    assert processing.claim_uploads(team.team_id, "construction", "run-b", [upload.id]) == []
    assert processing.claim_uploads(team.team_id, "construction", "run-b") == []
    # A retry of run-a (same run group) resumes it.
    again = processing.claim_uploads(team.team_id, "construction", "run-a", [upload.id])
    assert [u.id for u in again] == [upload.id]
    assert [u.id for u in processing.owned_uploads(team.team_id, "construction", "run-a")] == [
        upload.id
    ]
    assert processing.owned_uploads(team.team_id, "construction", "run-b") == []


def test_a_ui_run_with_no_uploads_named_takes_the_partitions_received_ones(instance, team) -> None:
    first, second = land(team.team_id, rows(700, 3)), land(team.team_id, rows(710, 2))
    instance.add_dynamic_partitions("teams", [str(team.team_id)])
    run = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, partition_key=f"construction|{team.team_id}"
    )
    assert run.success
    done = [processing.get_upload(team.team_id, u.id) for u in (first, second)]
    assert [u.status for u in done] == ["completed", "completed"]
    assert sum(u.inserted_leads or 0 for u in done) == 5


def test_ten_uploads_of_one_partition_in_one_run_all_balance(instance, team) -> None:
    uploads = [land(team.team_id, rows(1000 + 50 * i, 50)) for i in range(10)]
    [run] = run_sensor_and_jobs(instance, {u.id for u in uploads})
    assert run.success
    checks = run.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    done = [processing.get_upload(team.team_id, u.id) for u in uploads]
    assert {u.status for u in done} == {UploadStatus.COMPLETED}
    assert sum(u.inserted_leads for u in done) == 500
    assert all(u.accepted_rows == u.inserted_leads + u.merged_rows for u in done)


# ------------------------------------------------------------------ the watchdog


def _age(upload_id: uuid.UUID, minutes: int) -> None:
    """Make an upload look as if nothing touched it for `minutes`."""
    with owner_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE uploads SET queued_at = now() - make_interval(mins => :m), "
                "heartbeat_at = now() - make_interval(mins => :m) WHERE id = :u"
            ),
            {"m": minutes, "u": upload_id},
        )


def _watchdog(instance: dg.DagsterInstance) -> None:
    upload_watchdog_sensor(dg.build_sensor_context(instance=instance, definitions=defs))


def test_a_processing_upload_whose_run_is_gone_is_requeued_with_the_reason_then_completes(
    instance, team
) -> None:
    upload = land(team.team_id, rows(2000, 3))
    processing.claim_uploads(team.team_id, "construction", str(uuid.uuid4()), [upload.id])
    _watchdog(instance)
    assert processing.get_upload(team.team_id, upload.id).status == "processing"  # lease fresh

    _age(upload.id, 10)
    _watchdog(instance)
    requeued = processing.get_upload(team.team_id, upload.id)
    assert requeued.status == "received" and requeued.attempt == 1
    assert "no longer exists" in requeued.error
    [done] = ingest(instance, requeued)
    assert done.status == "completed" and done.inserted_leads == 3 and done.error is None


def test_an_upload_a_finished_run_left_processing_is_requeued_naming_the_run(
    instance, team
) -> None:
    """The lost-upload bug: a run that succeeded without finishing its upload."""
    other = land(team.team_id, rows(2100, 1))
    [run] = run_sensor_and_jobs(instance, {other.id})
    upload = land(team.team_id, rows(2200, 2))
    processing.claim_uploads(team.team_id, "construction", run.run_id, [upload.id])
    _age(upload.id, 10)
    _watchdog(instance)
    requeued = processing.get_upload(team.team_id, upload.id)
    assert requeued.status == "received"
    assert f"its run {run.run_id[:8]} ended SUCCESS without finishing it" in requeued.error


def test_a_processing_upload_is_failed_once_it_had_its_attempts(instance, team) -> None:
    upload = land(team.team_id, rows(2300, 1))
    last = get_settings().upload_max_attempts - 1
    with owner_engine().begin() as conn:
        conn.execute(
            text("UPDATE uploads SET attempt = :a WHERE id = :u"), {"a": last, "u": upload.id}
        )
    processing.claim_uploads(team.team_id, "construction", str(uuid.uuid4()), [upload.id])
    _age(upload.id, 10)
    _watchdog(instance)
    failed = processing.get_upload(team.team_id, upload.id)
    assert failed.status == "failed"
    assert failed.error.endswith(f"gave up after {last + 1} attempts")


def test_a_received_upload_no_run_took_is_requeued_and_never_failed_for_waiting(
    instance, team
) -> None:
    upload = land(team.team_id, rows(2400, 1))
    with owner_engine().begin() as conn:
        conn.execute(text("UPDATE uploads SET attempt = 50 WHERE id = :u"), {"u": upload.id})
    _age(upload.id, 10)
    _watchdog(instance)
    requeued = processing.get_upload(team.team_id, upload.id)
    assert (requeued.status, requeued.attempt) == ("received", 51)
    assert requeued.error.startswith("requeued: no run picked it up")


def test_the_watchdog_leaves_recent_uploads_alone(instance, team) -> None:
    received = land(team.team_id, rows(2500, 1))
    taken = land(team.team_id, rows(2510, 1))
    processing.claim_uploads(team.team_id, "construction", str(uuid.uuid4()), [taken.id])
    _watchdog(instance)
    assert processing.get_upload(team.team_id, received.id).attempt == 0
    assert processing.get_upload(team.team_id, taken.id).status == "processing"


def test_the_lease_is_renewed_while_a_run_works(team) -> None:
    upload = land(team.team_id, rows(2600, 1))
    owner = str(uuid.uuid4())
    processing.claim_uploads(team.team_id, "construction", owner, [upload.id])
    _age(upload.id, 10)
    with processing.keep_alive(team.team_id, owner, every=0.05):
        time.sleep(0.3)
    renewed = processing.get_upload(team.team_id, upload.id).heartbeat_at
    assert datetime.now(UTC) - renewed < timedelta(seconds=5)
