"""The Dagster instance's home: under OUTREACH_HOME, storage on the same PostgreSQL
(dagster-postgres) so runs, sensor cursors and partitions survive restarts. Written as YAML
here so core needs no Dagster import."""

from __future__ import annotations

from pathlib import Path

import yaml

from outreach_core.db.engine import dagster_storage_url, ensure_database
from outreach_core.settings import Settings, get_settings

STORAGE_URL_ENV = "OUTREACH_DAGSTER_STORAGE_URL"


def storage_url(settings: Settings | None = None) -> str:
    url = dagster_storage_url(settings).set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def storage_environment(settings: Settings | None = None) -> dict[str, str]:
    """Environment for processes that open the Dagster instance (`dagster dev`, the demo)."""
    return {STORAGE_URL_ENV: storage_url(settings)}


def write_dagster_yaml(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    url = dagster_storage_url(settings)
    ensure_database(url)
    # dagster-postgres speaks psycopg2 (SQLAlchemy 2.1 would pick psycopg 3 for a bare
    # postgresql:// URL). A password never goes into the file: the URL is then read from
    # the environment of the processes we start (see storage_environment).
    storage: object = storage_url(settings)
    if url.password:
        storage = {"env": STORAGE_URL_ENV}
    config = {
        "storage": {"postgres": {"postgres_url": storage}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 2},
        },
        # A run whose worker died is started again; every ingestion stage is idempotent.
        "run_retries": {"enabled": True, "max_retries": 2},
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home
