"""Row-level security: the second lock behind app-level scoping."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from outreach_core.db.engine import app_engine, owner_engine, system_session, tenant_session
from outreach_core.db.tables import TENANT_TABLES
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.settings import get_settings


def test_every_team_table_has_forced_rls_with_check_and_is_not_owned_by_app() -> None:
    role = get_settings().app_db_role
    with owner_engine().connect() as conn:
        tables = conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                "pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
                "JOIN information_schema.columns col ON col.table_name = c.relname "
                "AND col.column_name = 'team_id' AND col.table_schema = 'public' "
                "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
            )
        ).all()
        policies = conn.execute(
            text(
                "SELECT tablename, policyname, roles::text[] AS roles, cmd, qual, with_check "
                "FROM pg_policies WHERE schemaname = 'public'"
            )
        ).all()
        app_role = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).one()
    assert {t.relname for t in tables} == set(TENANT_TABLES)
    for t in tables:
        assert t.relrowsecurity and t.relforcerowsecurity, t.relname
        assert t.owner != role, t.relname
        isolation = [
            p for p in policies if p.tablename == t.relname and p.policyname == "tenant_isolation"
        ]
        assert len(isolation) == 1 and isolation[0].with_check, t.relname
        assert "NULLIF" in isolation[0].qual, t.relname
    # Any other policy is a read-only one for the owner (its SECURITY DEFINER lookups),
    # never one that lets the application role past the tenant check.
    for p in policies:
        if p.policyname != "tenant_isolation":
            assert p.cmd == "SELECT" and role not in p.roles and "public" not in p.roles, p
    assert app_role.rolsuper is False and app_role.rolbypassrls is False


def test_app_connects_as_non_owner_role() -> None:
    with app_engine().connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == get_settings().app_db_role


def test_other_team_rows_are_invisible_and_cannot_be_written(team, other_team) -> None:
    lead_id = reserve_lead_ids(team.team_id, 1)
    with tenant_session(team.team_id) as s:
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, phone, score) "
                "VALUES (:t, :id, '+12125550100', :score)"
            ),
            {"t": team.team_id, "id": lead_id, "score": base_score()},
        )
    with tenant_session(other_team.team_id) as s:
        assert (
            s.scalar(text("SELECT count(*) FROM leads WHERE team_id = :t"), {"t": team.team_id})
            == 0
        )
        assert s.execute(text("UPDATE leads SET city = 'x'")).rowcount == 0
    with (
        pytest.raises(DBAPIError, match="row-level security"),
        tenant_session(other_team.team_id) as s,
    ):
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, phone, score) "
                "VALUES (:t, :id, '+12125550101', :score)"
            ),
            {"t": team.team_id, "id": lead_id + 1, "score": base_score()},
        )


def test_pool_bleed_tenant_does_not_survive_the_transaction(team) -> None:
    """Pool of one connection: a tenant request, then a tenant-less job on the same
    connection, sees no rows and no error."""
    engine = create_engine(app_engine().url, pool_size=1, max_overflow=0)
    try:
        lead_id = reserve_lead_ids(team.team_id, 1, engine)
        with tenant_session(team.team_id, engine) as s:
            s.execute(
                text("INSERT INTO leads (team_id, id, email, score) VALUES (:t, :id, :e, :s)"),
                {
                    "t": team.team_id,
                    "id": lead_id,
                    "e": f"{uuid.uuid4().hex}@example.com",
                    "s": base_score(),
                },
            )
            assert s.scalar(text("SELECT count(*) FROM leads")) >= 1
        with system_session(engine) as s:
            assert s.scalar(text("SELECT current_setting('app.team_id', true)")) == ""
            assert s.scalar(text("SELECT count(*) FROM leads")) == 0
            assert s.scalar(text("SELECT count(*) FROM uploads")) == 0
    finally:
        engine.dispose()


def test_migrations_work_with_a_non_superuser_owner(database) -> None:
    """Managed PostgreSQL owners are not superusers: FORCEd RLS then binds them too, and the
    API key lookup and the sensor's pending uploads must still answer."""
    import subprocess
    import sys

    owner = f"owner_{uuid.uuid4().hex[:8]}"
    name = f"{database.database}_o"
    admin = create_engine(database.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN CREATEDB NOSUPERUSER'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    url = database.set(database=name, username=owner).render_as_string(hide_password=False)
    script = """
import uuid
from outreach_core.db.engine import tenant_session
from outreach_core.db.migrate import migrate
from outreach_core.db.tables import Upload
from outreach_core.teams import create_team, resolve_api_key
from outreach_core.uploads.queue import list_pending_uploads

migrate()
t = create_team("x")
assert resolve_api_key(t.api_key) == t.team_id
u = uuid.uuid4()
with tenant_session(t.team_id) as s:
    s.add(Upload(team_id=t.team_id, id=u, bucket_id="b", sector="construction", filename="f",
                 storage_key="k", size_bytes=1, sha256="x"))
assert [p.upload_id for p in list_pending_uploads()] == [u]
print("ok")
"""
    import os

    try:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "OUTREACH_DATABASE_URL": url},
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "ok"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        admin.dispose()


def test_serving_processes_can_be_given_only_the_app_url() -> None:
    from outreach_core.db.engine import app_url
    from outreach_core.settings import Settings

    settings = Settings(
        database_url="postgresql://owner:ownerpw@db.internal/outreach",
        app_database_url="postgresql://outreach_app:apppw@db.internal/outreach",
    )
    url = app_url(settings)
    assert (url.username, url.password) == ("outreach_app", "apppw")
    derived = app_url(Settings(database_url="postgresql://owner:pw@db.internal/outreach"))
    assert (derived.username, derived.password) == ("outreach_app", None)
