"""Row-level security: the second lock behind app-level scoping."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from outreach_core.db.engine import app_engine, owner_engine, system_session, tenant_session
from outreach_core.db.tables import TENANT_TABLES
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
        policies = {
            r.tablename: r
            for r in conn.execute(
                text(
                    "SELECT tablename, qual, with_check FROM pg_policies WHERE schemaname='public'"
                )
            )
        }
        app_role = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).one()
    assert {t.relname for t in tables} == set(TENANT_TABLES)
    for t in tables:
        assert t.relrowsecurity and t.relforcerowsecurity, t.relname
        assert t.owner != role, t.relname
        assert policies[t.relname].with_check, t.relname
        assert "NULLIF" in policies[t.relname].qual, t.relname
    assert app_role.rolsuper is False and app_role.rolbypassrls is False


def test_app_connects_as_non_owner_role() -> None:
    with app_engine().connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == get_settings().app_db_role


def test_other_team_rows_are_invisible_and_cannot_be_written(team, other_team) -> None:
    with tenant_session(team.team_id) as s:
        s.execute(
            text("INSERT INTO leads (team_id, phone) VALUES (:t, '+12125550100')"),
            {"t": team.team_id},
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
            text("INSERT INTO leads (team_id, phone) VALUES (:t, '+12125550101')"),
            {"t": team.team_id},
        )


def test_pool_bleed_tenant_does_not_survive_the_transaction(team) -> None:
    """Pool of one connection: a tenant request, then a tenant-less job on the same
    connection, sees no rows and no error."""
    engine = create_engine(app_engine().url, pool_size=1, max_overflow=0)
    try:
        with tenant_session(team.team_id, engine) as s:
            s.execute(
                text("INSERT INTO leads (team_id, email) VALUES (:t, :e)"),
                {"t": team.team_id, "e": f"{uuid.uuid4().hex}@example.com"},
            )
            assert s.scalar(text("SELECT count(*) FROM leads")) >= 1
        with system_session(engine) as s:
            assert s.scalar(text("SELECT current_setting('app.team_id', true)")) == ""
            assert s.scalar(text("SELECT count(*) FROM leads")) == 0
            assert s.scalar(text("SELECT count(*) FROM uploads")) == 0
    finally:
        engine.dispose()
