"""The schema and the code agree, and the layers hold: every set of states is enforced by
the database exactly as its enum spells it, and the domain layer imports neither Dagster
nor FastAPI."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import outreach_core
from outreach_core.db.engine import owner_engine, tenant_session
from outreach_core.db.states import (
    CacheStatus,
    CampaignStatus,
    CampaignType,
    EnrichmentStatus,
    NumberStatus,
    UploadStatus,
)
from outreach_core.db.tables import Upload
from tests.helpers import csv_bytes, land


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [
        ("uploads", "status", UploadStatus),
        ("leads", "enrichment_status", EnrichmentStatus),
        ("enrichment_cache", "status", CacheStatus),
        ("campaigns", "status", CampaignStatus),
        ("campaigns", "type", CampaignType),
        ("sending_numbers", "status", NumberStatus),
    ],
)
def test_each_state_column_accepts_exactly_its_enum(table: str, column: str, enum: type) -> None:
    with owner_engine().connect() as conn:
        definition = conn.scalar(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype = 'c' AND conname = :n"
            ),
            {"t": table, "n": f"ck_{table}_{column}"},
        )
    assert definition is not None, f"no CHECK constraint on {table}.{column}"
    allowed = {part.split("'")[1] for part in definition.split("ARRAY[")[1].split(",")}
    assert allowed == {m.value for m in enum}


def test_a_status_outside_the_enum_is_refused_by_the_database(team) -> None:
    upload = land(team.team_id, csv_bytes([{"phone": "2125550100", "name": "Ann"}]))
    with pytest.raises(IntegrityError), tenant_session(team.team_id) as s:
        s.execute(
            text("UPDATE uploads SET status = 'done' WHERE team_id = :t AND id = :i"),
            {"t": team.team_id, "i": upload.id},
        )
    with pytest.raises(IntegrityError), tenant_session(team.team_id) as s:
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, phone, enrichment_status, score) "
                "VALUES (:t, 1, '+12125550100', 'maybe', 50)"
            ),
            {"t": team.team_id},
        )


def test_states_load_as_their_enums(team) -> None:
    upload = land(team.team_id, csv_bytes([{"phone": "2125550101", "name": "Bo"}]))
    with tenant_session(team.team_id) as s:
        loaded = s.get_one(Upload, (team.team_id, upload.id))
        assert loaded.status is UploadStatus.RECEIVED


def test_importing_every_core_module_imports_neither_dagster_nor_fastapi() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages(outreach_core.__path__, "outreach_core.")
        if ".migrations" not in m.name
    ]
    assert "outreach_core.uploads.processing" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dagster', 'fastapi', 'starlette', 'outreach_assets', 'outreach_api', 'outreach_cli'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_the_tables_in_code_and_the_migrated_schema_agree() -> None:
    """Alembic's autogenerate finds nothing to do: every table, column, index and constraint
    in tables.py is what the migrations built, and nothing more."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from outreach_core.db.tables import Base

    with owner_engine().connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
