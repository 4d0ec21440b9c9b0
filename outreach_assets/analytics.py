"""Analytics on Dagster: the dbt project (`dbt_project/`) as assets downstream of the
pipeline's, its dbt tests as asset checks, a job and an hourly schedule that build it, and
`refresh_analytics()` for the CLI.

dbt runs as the project's venv's own `dbt`, never one found on PATH, against the project's
own database: the connection and the values the models need from the core (the application
role, the sets of states) are derived here from `outreach_core.settings` and handed to every
dbt command, which has no defaults of its own. The manifest the assets are built from is
prepared by `make` (`dbt parse`, offline); when it is missing or older than a file of the
project, importing this module parses the project first (a few seconds), so the definitions
always load, in a test run without `make` too."""

import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from packaging import version
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from outreach_assets.runs import live_runs
from outreach_core.db.engine import DATABASE_NAME, owner_engine, owner_url
from outreach_core.db.rls import CURRENT_TEAM
from outreach_core.db.states import (
    LEAD_FUNNEL,
    MESSAGE_GONE_OUT,
    CostCategory,
    MessageKind,
    MessageStatus,
)
from outreach_core.replies.classes import ReplyClass
from outreach_core.replies.stages import HOT_INTENTS, NEUTRAL_INTENTS, PUSHBACK_INTENTS
from outreach_core.settings import Settings, get_settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
# The venv's dbt: the one whose dbt-core and adapter versions the lock pins.
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
# Hourly, a quarter past: the marts are for reports and analysts, not for live decisions
# (budgets are checked in the send path against the ledger).
ANALYTICS_CRON = "15 * * * *"
# dbt's own network calls: the version check and anonymous usage statistics.
DBT_OFFLINE_ENV = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_VERSION_CHECK": "false"}

# What the funnel counts as delivered and as failed, among the provider's statuses.
MESSAGE_DELIVERED = (MessageStatus.DELIVERED, MessageStatus.READ)
MESSAGE_FAILED = (MessageStatus.UNDELIVERED, MessageStatus.FAILED)

# Files whose change makes a new manifest necessary (the Makefile lists the same).
_PROJECT_FILE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".md")


def dbt_vars(settings: Settings | None = None) -> dict[str, Any]:
    """The values the models and tests read with `var()`, each from its one home."""
    settings = settings or get_settings()
    return {
        "app_role": settings.app_db_role,
        "current_team": CURRENT_TEAM,
        "message_kinds": [str(k) for k in MessageKind],
        "campaign_message_kind": str(MessageKind.CAMPAIGN),
        "follow_up_message_kind": str(MessageKind.FOLLOW_UP),
        "message_sent_statuses": [str(s) for s in MESSAGE_GONE_OUT],
        "message_delivered_statuses": [str(s) for s in MESSAGE_DELIVERED],
        "message_failed_statuses": [str(s) for s in MESSAGE_FAILED],
        "reply_classes": [str(c) for c in ReplyClass],
        "positive_classes": sorted(HOT_INTENTS),
        "negative_classes": sorted(PUSHBACK_INTENTS),
        "neutral_classes": sorted(NEUTRAL_INTENTS),
        "opt_out_class": str(ReplyClass.OPT_OUT),
        "email_capture_class": str(ReplyClass.EMAIL_CAPTURE),
        "cost_categories": [str(c) for c in CostCategory],
        # qualified, meeting, deal: each stage counts the later ones too.
        "lead_funnel": [str(s) for s in LEAD_FUNNEL],
    }


def dbt_vars_args(settings: Settings | None = None) -> list[str]:
    return ["--vars", json.dumps(dbt_vars(settings))]


def connection_env(url: URL) -> dict[str, str]:
    """The variables `dbt_project/profiles.yml` reads, from a SQLAlchemy URL. A URL without
    a host (the embedded server) names its socket directory in `?host=`."""
    host = url.host or url.query.get("host") or ""
    sslmode = url.query.get("sslmode") or ""
    return {
        "OUTREACH_DBT_HOST": host if isinstance(host, str) else host[0],
        "OUTREACH_DBT_PORT": str(url.port or 5432),
        "OUTREACH_DBT_USER": url.username or "",
        # dbt scrubs DBT_ENV_SECRET_* values from its logs.
        "DBT_ENV_SECRET_OUTREACH_DBT_PASSWORD": url.password or "",
        "OUTREACH_DBT_DBNAME": url.database or DATABASE_NAME,
        "OUTREACH_DBT_SSLMODE": sslmode if isinstance(sslmode, str) else sslmode[0],
    }


def export_connection(settings: Settings | None = None) -> None:
    """Put the owner connection where dbt and dagster-dbt read it: the process environment
    (dagster-dbt passes it on to the dbt process and opens its own adapter from it). Starts
    the embedded PostgreSQL when OUTREACH_DATABASE_URL is unset."""
    os.environ.update({**connection_env(owner_url(settings)), **DBT_OFFLINE_ENV})


def _parse_env(settings: Settings) -> dict[str, str]:
    """`dbt parse` connects nowhere, but renders the profile: the configured URL when there
    is one, else the embedded database's name (starting that server is not needed)."""
    if settings.database_url is not None:
        url = make_url(settings.database_url.get_secret_value())
    else:
        url = URL.create("postgresql", username="postgres", database=DATABASE_NAME)
    return {**os.environ, **connection_env(url), **DBT_OFFLINE_ENV}


def _manifest_inputs() -> Iterator[Path]:
    """The files a manifest is made from: the project's and dbt itself (a new venv)."""
    yield DBT_EXECUTABLE
    for path in DBT_PROJECT_DIR.rglob("*"):
        relative = path.relative_to(DBT_PROJECT_DIR).parts
        if relative[0] in ("target", "logs", "dbt_packages"):
            continue
        if path.suffix in _PROJECT_FILE_SUFFIXES:
            yield path


def manifest_is_stale() -> bool:
    if not MANIFEST_PATH.exists():
        return True
    built = MANIFEST_PATH.stat().st_mtime
    return any(path.stat().st_mtime > built for path in _manifest_inputs())


def prepare_manifest(settings: Settings | None = None) -> Path:
    """`dbt parse` (offline) into the project's target directory; returns the manifest. The
    artifacts are written aside and moved into place, so a process loading the definitions
    meanwhile reads the old manifest or the new one, never half of one."""
    settings = settings or get_settings()
    MANIFEST_PATH.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="parse-", dir=MANIFEST_PATH.parent) as scratch:
        command = [str(DBT_EXECUTABLE), "parse", "--no-version-check", "--quiet"]
        command += dbt_vars_args(settings)
        command += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
        command += ["--target-path", scratch, "--log-path", scratch]
        result = subprocess.run(
            command,
            env=_parse_env(settings),
            cwd=DBT_PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        parsed = Path(scratch) / MANIFEST_PATH.name
        if result.returncode != 0 or not parsed.exists():
            raise RuntimeError(
                f"dbt parse of {DBT_PROJECT_DIR} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-4000:]
            )
        # dbt's partial parsing state speeds up every later command's parse.
        for artifact in ("partial_parse.msgpack", MANIFEST_PATH.name):
            if (Path(scratch) / artifact).exists():
                os.replace(Path(scratch) / artifact, MANIFEST_PATH.parent / artifact)
    return MANIFEST_PATH


if manifest_is_stale():
    prepare_manifest()
analytics_project = DbtProject(project_dir=DBT_PROJECT_DIR)


class AnalyticsDbtResource(DbtCliResource):
    """dbt for the analytics project: the venv's executable, never the network."""

    @cached_property
    def _cli_version(self) -> version.Version:
        # dagster-dbt asks `dbt --version`, which also asks PyPI for the latest release;
        # the executable is the installed dbt-core's own.
        return version.parse(importlib.metadata.version("dbt-core"))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        export_connection()
        super().setup_for_execution(context)

    def build(
        self, context: dg.AssetExecutionContext | None = None, target_path: Path | None = None
    ) -> DbtCliInvocation:
        """`dbt build` of the selection of `context` (everything without one)."""
        return self.cli(
            ["build", *dbt_vars_args()],
            context=context,
            manifest=None if context else analytics_project.manifest_path,
            raise_on_error=context is not None,
            target_path=target_path,
        )


def default_dbt() -> AnalyticsDbtResource:
    return AnalyticsDbtResource(
        project_dir=analytics_project,
        dbt_executable=str(DBT_EXECUTABLE),
        global_config_flags=["--no-version-check", "--no-use-colors"],
    )


_translator = DagsterDbtTranslator(
    # Several sources are written by one asset (`enriched_leads` writes leads, the
    # enrichment cache and the ledger's enrichment entries).
    settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
)


_BUILD_LOCK = "SELECT pg_advisory_{}(hashtextextended('outreach.analytics', 0))"


@contextmanager
def _one_build_at_a_time() -> Iterator[None]:
    """Two builds at once would swap the same tables under each other: the second waits.
    A session lock, outside any transaction: nothing stays `idle in transaction`."""
    with owner_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(_BUILD_LOCK.format("lock")))
        try:
            yield
        finally:
            conn.execute(text(_BUILD_LOCK.format("unlock")))


@dbt_assets(
    manifest=analytics_project.manifest_path,
    project=analytics_project,
    dagster_dbt_translator=_translator,
)
def analytics_dbt_assets(
    context: dg.AssetExecutionContext, dbt: AnalyticsDbtResource
) -> Iterator[Any]:
    with _one_build_at_a_time(), tempfile.TemporaryDirectory(prefix="dbt-") as target:
        # Artifacts of one run only: the events are in Dagster's log.
        yield from dbt.build(context, Path(target)).stream()


analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.assets(analytics_dbt_assets),
    description="Build the dbt models in `analytics` and run their tests.",
    executor_def=dg.in_process_executor,
)


@dg.schedule(
    job=analytics_job,
    cron_schedule=ANALYTICS_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def analytics_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Every hour, unless the previous build is still running."""
    if live_runs(context.instance, analytics_job.name):
        return dg.SkipReason("the previous analytics build is still running")
    return dg.RunRequest()


class AnalyticsBuildError(RuntimeError):
    """dbt build failed: the message names the failed models and tests."""


def refresh_analytics() -> None:
    """Build the analytics models and run their tests, outside Dagster (the report CLI does
    this before reading the marts), printing dbt's progress lines to stderr (stdout stays
    the caller's); raises AnalyticsBuildError naming what failed."""
    export_connection()
    dbt = default_dbt()
    errors: list[str] = []
    with (
        _one_build_at_a_time(),
        tempfile.TemporaryDirectory(prefix="dbt-") as target,
        # dagster-dbt echoes every dbt log line to stdout.
        redirect_stdout(sys.stderr),
    ):
        invocation = dbt.build(target_path=Path(target))
        for event in invocation.stream_raw_events():
            if event.raw_event["info"].get("level") == "error":
                errors.append(str(event).strip())
        if invocation.is_successful():
            return
        results_path = Path(target) / "run_results.json"
        results = json.loads(results_path.read_text())["results"] if results_path.exists() else []
    failed = [
        f"{r['unique_id']} ({r['status']}: {(r.get('message') or '').strip()})"
        for r in results
        if r.get("status") in ("error", "fail", "runtime error")
    ]
    raise AnalyticsBuildError(
        "dbt build failed: " + "; ".join(failed or [e for e in errors if e] or ["see its log"])
    )


if __name__ == "__main__":
    # `make` runs this when a project file changed: importing above parsed the project.
    print(f"dbt manifest: {MANIFEST_PATH}")
