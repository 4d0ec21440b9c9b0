"""The dbt project parses offline (no connection, no version check, no usage stats), with the
project's own connection settings and nothing else, into the marts the analytics contract
names, each a table with its tests, its unit test and the tenant policy post-hook."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from outreach_assets.analytics import (
    DBT_EXECUTABLE,
    DBT_OFFLINE_ENV,
    DBT_PROJECT_DIR,
    connection_env,
    dbt_vars_args,
)

MARTS = {
    "fct_campaign_daily",
    "fct_campaign_classifications",
    "fct_campaign_costs",
    "dim_leads",
    "fct_team_spend",
}


def parse(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(DBT_EXECUTABLE),
            "parse",
            "--no-version-check",
            *dbt_vars_args(),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def project_env() -> dict[str, str]:
    url = make_url(os.environ["OUTREACH_DATABASE_URL"])
    return {**os.environ, **connection_env(url), **DBT_OFFLINE_ENV}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("dbt")
    result = parse(tmp_path, project_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(json.loads((tmp_path / "target" / "manifest.json").read_text()))


def test_dbt_parse(manifest: dict[str, Any]) -> None:
    models = {k: v for k, v in manifest["nodes"].items() if k.startswith("model.")}
    assert {f"model.outreach.{m}" for m in MARTS | {"stg_leads", "fct_upload_quality"}} <= set(
        models
    )
    # `+schema: analytics` with the profile's `analytics` builds into `analytics`, not the
    # `analytics_analytics` dbt's default naming would make.
    assert {m["schema"] for m in models.values()} == {"analytics"}
    # The project's own database, from OUTREACH_DATABASE_URL.
    assert {m["database"] for m in models.values()} == {
        make_url(os.environ["OUTREACH_DATABASE_URL"]).database
    }


def test_every_mart_is_a_tenant_isolated_table_with_its_tests(manifest: dict[str, Any]) -> None:
    marts = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] == "marts"
    }
    assert set(marts) >= MARTS
    tests_of: dict[str, set[str]] = {name: set() for name in marts}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "test" and node.get("attached_node"):
            model = node["attached_node"].split(".")[-1]
            if model in tests_of:
                tests_of[model].add(node["test_metadata"]["name"])
    unit_tested = {u["model"] for u in manifest["unit_tests"].values()}
    for name, node in marts.items():
        assert node["config"]["materialized"] == "table", name
        hooks = [hook["sql"] for hook in node["config"]["post-hook"]]
        assert any("tenant_isolation()" in hook for hook in hooks), name
        assert "unique_combination" in tests_of[name], name
        assert "not_null" in tests_of[name], name
        assert name in unit_tested, name
    kinds = set().union(*(tests_of[m] for m in MARTS))
    assert {"unique_combination", "not_null", "relationships", "accepted_values"} <= kinds


def test_the_profile_has_no_connection_of_its_own(tmp_path: Path) -> None:
    """Without the variables derived from the project's settings dbt does not fall back to
    some other server: it stops, naming what is missing."""
    env = {k: v for k, v in project_env().items() if k != "OUTREACH_DBT_HOST"}
    result = parse(tmp_path, env)
    assert result.returncode != 0
    assert "OUTREACH_DBT_HOST" in result.stdout + result.stderr
