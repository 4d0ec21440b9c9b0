"""The Dagster instance's home: under OUTREACH_HOME, storage on PostgreSQL (dagster-postgres)
so runs, sensor cursors and partitions survive restarts, in a database of this deployment
only (see `dagster_storage_url`). The run queue's limits are written here: ingestion and
enrichment have their own slots, and one run per partition and job at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from outreach_assets.jobs import (
    ENRICH_PARTITION_TAG,
    ENRICH_POOL,
    INGEST_PARTITION_TAG,
    INGEST_POOL,
    POOL_TAG,
    REPLIES_TEAM_TAG,
    SEND_CAMPAIGN_TAG,
    SEND_POOL,
)
from outreach_assets.notify import NOTIFY_POOL, NOTIFY_TEAM_TAG
from outreach_assets.workflows import WORKFLOWS_TEAM_TAG
from outreach_core.db.engine import dagster_storage_url, ensure_database
from outreach_core.settings import Settings, get_settings

STORAGE_URL_ENV = "OUTREACH_DAGSTER_STORAGE_URL"
# How often the daemon looks at the run queue (Dagster's default is 5 s): most of an
# upload's wait under `make dev` is this and the sensor's interval.
DEQUEUE_INTERVAL_SECONDS = 1
# One per sensor of the code location (definitions.py; a test holds them equal).
SENSOR_THREADS = 8


def storage_url(settings: Settings | None = None) -> str:
    url = dagster_storage_url(settings).set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def storage_environment(settings: Settings | None = None) -> dict[str, str]:
    """Environment for processes that open the Dagster instance (`dagster dev`, the demo)."""
    return {STORAGE_URL_ENV: storage_url(settings)}


def run_queue(settings: Settings) -> dict[str, Any]:
    one_per_value = {"applyLimitPerUniqueValue": True}
    return {
        "max_concurrent_runs": (
            settings.ingest_concurrency
            + settings.enrich_concurrency
            + settings.send_concurrency
            + settings.notify_concurrency
        ),
        "dequeue_interval_seconds": DEQUEUE_INTERVAL_SECONDS,
        "tag_concurrency_limits": [
            {"key": POOL_TAG, "value": INGEST_POOL, "limit": settings.ingest_concurrency},
            {"key": POOL_TAG, "value": ENRICH_POOL, "limit": settings.enrich_concurrency},
            {"key": POOL_TAG, "value": SEND_POOL, "limit": settings.send_concurrency},
            {"key": POOL_TAG, "value": NOTIFY_POOL, "limit": settings.notify_concurrency},
            # Runs of one partition take turns (they would only wait on each other's locks).
            {"key": INGEST_PARTITION_TAG, "value": one_per_value, "limit": 1},
            {"key": ENRICH_PARTITION_TAG, "value": one_per_value, "limit": 1},
            {"key": SEND_CAMPAIGN_TAG, "value": one_per_value, "limit": 1},
            {"key": REPLIES_TEAM_TAG, "value": one_per_value, "limit": 1},
            {"key": NOTIFY_TEAM_TAG, "value": one_per_value, "limit": 1},
            {"key": WORKFLOWS_TEAM_TAG, "value": one_per_value, "limit": 1},
        ],
    }


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
            "config": run_queue(settings),
        },
        # Each sensor is evaluated in its own thread: the daemon's 5 s loop then never waits
        # for a slow tick (the enrich sensor's, the watchdog's) before the upload sensor's.
        "sensors": {"use_threads": True, "num_workers": SENSOR_THREADS},
        # A run whose worker died is started again, from the failed step; every ingestion
        # stage is idempotent and the retry resumes the uploads its first attempt claimed.
        "run_retries": {"enabled": True, "max_retries": 2},
        # A run that never got its worker started is failed (and so retried).
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 180},
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home
