"""The Dagster instance's home: under OUTREACH_HOME, storage on the same PostgreSQL
(dagster-postgres) so runs, sensor cursors and partitions survive restarts. Written as YAML
here so core needs no Dagster import."""

from __future__ import annotations

from pathlib import Path

import yaml

from outreach_core.db.engine import dagster_storage_url, ensure_database
from outreach_core.settings import Settings, get_settings


def write_dagster_yaml(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    url = dagster_storage_url(settings)
    ensure_database(url)
    # dagster-postgres speaks psycopg2 (SQLAlchemy 2.1 would pick psycopg 3 for a bare
    # postgresql:// URL). The password stays in the environment, not in this file.
    storage_url = url.set(drivername="postgresql+psycopg2", password=None).render_as_string()
    config = {
        "storage": {"postgres": {"postgres_url": storage_url}},
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
