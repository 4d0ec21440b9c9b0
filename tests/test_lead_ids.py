"""Lead ids are numbered per team: a team's ids start at 1, and another team's imports never
show in them (they used to come from one sequence shared by every team)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import dagster as dg
import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outreach_core.db.engine import app_url
from outreach_core.db.migrate import alembic_config
from outreach_core.db.tables import Upload
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.sandbox.synthetic import generate
from outreach_core.settings import get_settings
from outreach_core.uploads import processing
from tests.helpers import csv_bytes, ingest, lake_for, land


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def contacts(first: int, count: int) -> bytes:
    return csv_bytes(
        [
            {"Company Name": f"Acme {i}", "Phone": f"212555{i:04d}", "Email": f"c{i}@example.com"}
            for i in range(first, first + count)
        ]
    )


def lead_ids(api_server, api_key: str, limit: int = 500) -> list[int]:  # type: ignore[no-untyped-def]
    """Every id GET /v1/leads lists for the key's team, following next_after."""
    ids: list[int] = []
    after = None
    with httpx.Client(
        base_url=api_server.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        while True:
            params = {"limit": limit, **({"after": after} if after is not None else {})}
            response = client.get("/v1/leads", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            ids += [item["id"] for item in page["items"]]
            after = page["next_after"]
            if after is None:
                return ids


def load_directly(upload: Upload) -> None:
    """The ingestion stages a run executes, without Dagster, so several can run at once."""
    lake = lake_for(upload.team_id)
    processing.validate_upload(lake, upload)
    processing.process_upload(lake, upload)
    processing.load_leads(lake, upload)


def at_once(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_teams_importing_in_turn_each_count_from_one(
    instance, api_server, team, other_team
) -> None:
    ingest(instance, land(team.team_id, contacts(0, 5)))
    ingest(instance, land(other_team.team_id, contacts(0, 3)))
    # Two of these are already the team's: merged, they take no new id.
    ingest(instance, land(team.team_id, contacts(3, 6)))
    ingest(instance, land(other_team.team_id, contacts(100, 2)))

    assert lead_ids(api_server, team.api_key) == list(range(1, 10))
    assert lead_ids(api_server, other_team.api_key) == [1, 2, 3, 4, 5]


def test_another_teams_import_does_not_move_a_teams_ids(
    instance, api_server, team, other_team
) -> None:
    """The black-box finding: B's ids went from 4 to 30 while A imported 25 leads."""
    ingest(instance, land(other_team.team_id, contacts(0, 4)))
    assert lead_ids(api_server, other_team.api_key) == [1, 2, 3, 4]
    ingest(instance, land(team.team_id, contacts(0, 25)))
    ingest(instance, land(other_team.team_id, contacts(50, 1)))
    assert lead_ids(api_server, other_team.api_key) == [1, 2, 3, 4, 5]


def test_two_sectors_of_one_team_and_another_team_load_at_once(
    api_server, team, other_team
) -> None:
    """Two runs of one team (different sectors, overlapping contacts) and a run of another
    team, all at the same time: every lead gets its own id, each team counting from 1."""
    construction = land(team.team_id, contacts(0, 80))
    hospitality = land(team.team_id, contacts(40, 80), bucket_id="fl-restaurants-bars-taverns")
    theirs = land(other_team.team_id, contacts(0, 70))
    at_once(*(lambda u=u: load_directly(u) for u in (construction, hospitality, theirs)))

    ours = lead_ids(api_server, team.api_key)
    assert ours == list(range(1, 121))  # contacts 0..119, once each
    assert lead_ids(api_server, other_team.api_key) == list(range(1, 71))
    done = [processing.get_upload(team.team_id, u.id) for u in (construction, hospitality)]
    assert sum(d.inserted_leads for d in done) == 120


def test_two_writers_over_many_batches_give_every_lead_its_own_id(
    api_server, team, monkeypatch
) -> None:
    """Small batches, each split between the load's two concurrent writers."""
    settings = get_settings()
    monkeypatch.setattr(settings, "lead_batch_rows", 400)
    monkeypatch.setattr(settings, "lead_writers", 2)
    upload = land(team.team_id, generate(3_000, seed=5).write_csv().encode())
    load_directly(upload)

    inserted = processing.get_upload(team.team_id, upload.id).inserted_leads
    assert inserted is not None and inserted > 2_000
    assert lead_ids(api_server, team.api_key) == list(range(1, inserted + 1))
    # The next import carries on after them.
    again = land(team.team_id, contacts(9_000, 3))
    load_directly(again)
    assert lead_ids(api_server, team.api_key)[-3:] == [inserted + 1, inserted + 2, inserted + 3]


def test_keyset_pagination_lists_every_lead_once(client, api_server, team, other_team) -> None:
    load_directly(land(other_team.team_id, contacts(0, 40)))
    uploads = [
        land(team.team_id, generate(700, seed=3).write_csv().encode()),
        land(team.team_id, contacts(5_000, 12)),
    ]
    for upload in uploads:
        load_directly(upload)
    total = sum(processing.get_upload(team.team_id, u.id).inserted_leads for u in uploads)

    pages: list[list[int]] = []
    after = None
    while True:
        params = {"limit": 37, **({"after": after} if after is not None else {})}
        page = client.get("/v1/leads", params=params).json()
        pages.append([item["id"] for item in page["items"]])
        after = page["next_after"]
        if after is None:
            break
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen)
    assert len(pages) == -(-total // 37)
    assert seen == lead_ids(api_server, team.api_key)


def test_reserved_ids_are_never_handed_out_twice(team) -> None:
    first = reserve_lead_ids(team.team_id, 3)
    assert reserve_lead_ids(team.team_id, 1) == first + 3
    with pytest.raises(ValueError):
        reserve_lead_ids(team.team_id, 0)
    with pytest.raises(LookupError):
        reserve_lead_ids(uuid.uuid4(), 1)


def test_migration_renumbers_existing_leads_per_team_and_downgrades(database: URL) -> None:
    """Leads numbered by the old shared sequence become 1..n per team, in their old order,
    with a migration role that is not a superuser (FORCEd RLS binds it)."""
    owner = f"owner_{uuid.uuid4().hex[:8]}"
    name = f"{database.database}_ids"
    admin = create_engine(database.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    config = alembic_config(database.set(database=name, username=owner))
    config.attributes["app_role"] = get_settings().app_db_role
    # The superuser sets the scene and looks at the result past RLS.
    superuser = create_engine(database.set(database=name))
    app = create_engine(app_url().set(database=name))
    a, b, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        command.upgrade(config, "0005")
        with superuser.begin() as conn:
            for team_id in (a, b, empty):
                conn.execute(text("INSERT INTO teams (id, name) VALUES (:t, 'x')"), {"t": team_id})
            for i, team_id in enumerate([a, b, a, a, b, a, b]):
                conn.execute(
                    text("INSERT INTO leads (team_id, phone) VALUES (:t, :p)"),
                    {"t": team_id, "p": f"+1212555{i:04d}"},
                )
            conn.execute(text("DELETE FROM leads WHERE phone = '+12125550002'"))

        command.upgrade(config, "0006")
        with superuser.connect() as conn:
            leads = conn.execute(text("SELECT team_id, id, phone FROM leads")).all()
            counters = dict(conn.execute(text("SELECT id, last_lead_id FROM teams")).all())
            forced = conn.execute(
                text(
                    "SELECT bool_and(relforcerowsecurity) FROM pg_class "
                    "WHERE relname IN ('leads', 'teams')"
                )
            ).scalar()
        assert sorted((p, i) for t, i, p in leads if t == a) == [
            ("+12125550000", 1),
            ("+12125550003", 2),
            ("+12125550005", 3),
        ]
        assert sorted((p, i) for t, i, p in leads if t == b) == [
            ("+12125550001", 1),
            ("+12125550004", 2),
            ("+12125550006", 3),
        ]
        assert counters == {a: 3, b: 3, empty: 0}
        assert forced
        # The application role reserves the next ones under RLS.
        assert reserve_lead_ids(a, 2, app) == 4
        assert reserve_lead_ids(empty, 1, app) == 1

        command.downgrade(config, "0005")
        with app.begin() as conn:
            conn.execute(text("SELECT set_config('app.team_id', :t, true)"), {"t": str(b)})
            new_id = conn.execute(
                text("INSERT INTO leads (team_id, phone) VALUES (:t, '+13135550100') RETURNING id"),
                {"t": b},
            ).scalar()
        assert new_id == 4  # above every existing id
    finally:
        superuser.dispose()
        app.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        admin.dispose()
