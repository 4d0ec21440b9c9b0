"""The operators' CLI: `outreach --help`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from outreach_cli.campaigns_cli import campaign_app
from outreach_cli.console import TeamOption, console, fail
from outreach_cli.report_cli import report
from outreach_cli.workflows_cli import automation_app, workflows_app
from outreach_core.db.states import CostCategory
from outreach_core.replies.classes import Client

app = typer.Typer(help="Outreach pipeline operations.", no_args_is_help=True)
team_app = typer.Typer(help="Teams and API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
app.add_typer(team_app, name="team")
budget_app = typer.Typer(help="Spending caps and spend.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(budget_app, name="budget")
app.add_typer(campaign_app, name="campaign")
app.add_typer(workflows_app, name="workflows")
app.add_typer(automation_app, name="automation")
app.command("report")(report)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the database schema and the application role."""
    from outreach_core.db.migrate import migrate

    migrate()
    console.print("database is at the latest schema")


@team_app.command("create")
def team_create(name: str) -> None:
    """Create a team and print its id and an API key (shown once, stored hashed)."""
    from outreach_core.db.migrate import migrate
    from outreach_core.teams import create_team

    migrate()
    try:
        team = create_team(name)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"team_id: {team.team_id}")
    console.print(f"api_key: {team.api_key}")
    console.print("[dim]The key is shown once; only its hash is stored.[/dim]")


@team_app.command("settings")
def team_settings(
    team: TeamOption,
    require_consent: Annotated[
        bool | None,
        typer.Option(
            "--require-consent/--no-require-consent",
            help="Text a phone for the first time only with its recorded consent",
        ),
    ] = None,
    client: Annotated[
        Client | None, typer.Option(help="Whose reply rules and templates the team uses")
    ] = None,
    help_text: Annotated[str | None, typer.Option(help="The answer to HELP / INFO")] = None,
    voice_forward_to: Annotated[
        str | None, typer.Option(help="Forward inbound calls to this E.164 number")
    ] = None,
    notify_webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Post team notifications to this Slack-compatible incoming-webhook URL "
            '(http or https); "" removes it'
        ),
    ] = None,
) -> None:
    """Show a team's settings, or change those given."""
    from outreach_core.teams import TEAM_SETTINGS, get_team, update_team_settings

    if get_team(team) is None:
        fail(f"no team {team}")
    changes = {
        name: value
        for name, value in (
            ("require_consent", require_consent),
            ("client", client),
            ("help_text", help_text),
            ("voice_forward_to", voice_forward_to),
            ("notify_webhook_url", notify_webhook_url),
        )
        if value is not None
    }
    if notify_webhook_url == "":
        changes["notify_webhook_url"] = None
    try:
        update_team_settings(team, changes)
    except ValueError as exc:
        fail(str(exc))
    found = get_team(team)
    assert found is not None
    for name in TEAM_SETTINGS:
        console.print(f"{name}: {getattr(found, name)}")


@team_app.command("consent")
def team_consent(
    team: TeamOption,
    phone: Annotated[list[str], typer.Option(help="A phone that agreed (repeat)")],
    source: Annotated[str, typer.Option(help="Where they agreed: a form, a call, ...")],
) -> None:
    """Record phones' consent to be texted (needed for first contact when the team requires
    it)."""
    from outreach_core.messaging.consent import InvalidPhone, record_consent

    try:
        recorded, phones = record_consent(team, phone, source)
    except (InvalidPhone, ValueError) as exc:
        fail(f"{exc}; nothing was recorded")
    console.print(f"consent recorded for {recorded} phones ({phones - recorded} already)")


@team_app.command("key-create")
def key_create(team: TeamOption, name: str = "default") -> None:
    """Issue another API key for a team."""
    from outreach_core.teams import create_api_key, get_team

    if get_team(team) is None:
        fail(f"no team {team}")
    console.print(f"api_key: {create_api_key(team, name)}")


@team_app.command("key-revoke")
def key_revoke(team: TeamOption, api_key: str) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    from outreach_core.teams import revoke_api_key

    if not revoke_api_key(team, api_key):
        fail("no such live key for this team")
    console.print("revoked")


def _with_progress(path: Path) -> Iterator[bytes]:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"landing {path.name}", total=path.stat().st_size)
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                progress.advance(task, len(chunk))
                yield chunk


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    team: TeamOption,
    bucket: Annotated[
        str | None, typer.Option(help="Bucket id, e.g. ny-construction-plumbers")
    ] = None,
    sic: Annotated[str | None, typer.Option(help="SIC code to choose the bucket")] = None,
    description: str | None = None,
) -> None:
    """Land a CSV for a team's bucket; the upload sensor processes it."""
    from outreach_core.catalog import UnknownBucket
    from outreach_core.datalake import TeamLake, store_from_url
    from outreach_core.settings import get_settings
    from outreach_core.teams import get_team
    from outreach_core.uploads.landing import (
        InvalidUpload,
        UploadTooLarge,
        land_upload,
        resolve_bucket,
    )

    if get_team(team) is None:
        fail(f"no team {team}")
    try:
        target = resolve_bucket(bucket, sic)
        lake = TeamLake(store_from_url(get_settings().resolved_datalake_url), team)
        landed = land_upload(
            lake, _with_progress(file), filename=file.name, bucket=target, description=description
        )
    except UnknownBucket as exc:
        fail(f"{exc}")
    except (InvalidUpload, UploadTooLarge) as exc:
        fail(str(exc))
    console.print(f"upload_id: {landed.upload.id}  bucket: {target.id}  status: received")


@app.command("status")
def status(upload_id: uuid.UUID, team: TeamOption) -> None:
    """Show an upload's status and counts."""
    from outreach_core.uploads.processing import get_upload

    try:
        up = get_upload(team, upload_id)
    except Exception:
        fail("upload not found")
    table = Table(show_header=False)
    for field in (
        "status",
        "bucket_id",
        "filename",
        "total_rows",
        "accepted_rows",
        "rejected_rows",
        "merged_rows",
        "inserted_leads",
        "error",
    ):
        table.add_row(field, str(getattr(up, field)))
    console.print(table)


@budget_app.command("set")
def budget_set(
    team: TeamOption,
    category: Annotated[
        str,
        typer.Option(
            help=f"What the cap limits: {', '.join(CostCategory)}, or total for everything"
        ),
    ],
    monthly: Annotated[float | None, typer.Option(help="Monthly cap in dollars")] = None,
    clear: Annotated[bool, typer.Option(help="Remove the cap")] = False,
) -> None:
    """Set (or clear) a team's monthly cap for a cost category or the total; enrichment
    runs stop and campaigns pause at the cap."""
    from decimal import Decimal

    from outreach_core.costs.budget import set_monthly_cap
    from outreach_core.teams import get_team

    if get_team(team) is None:
        fail(f"no team {team}")
    if category != "total" and category not in set(CostCategory):
        fail(f"unknown category {category!r}: use {', '.join(CostCategory)} or total")
    if clear == (monthly is not None):
        fail("give either --monthly AMOUNT or --clear")
    amount = None if clear else Decimal(str(monthly))
    try:
        set_monthly_cap(team, None if category == "total" else CostCategory(category), amount)
    except ValueError as exc:
        fail(str(exc))
    console.print(
        f"{category} cap cleared" if amount is None else f"{category} cap: ${amount}/month"
    )


@budget_app.command("show")
def budget_show(team: TeamOption, period: str | None = None) -> None:
    """Show a team's caps and its spend for a month (YYYY-MM, default this month)."""
    from datetime import UTC, datetime

    from outreach_core.costs.budget import get_monthly_caps, month_spend

    period = period or datetime.now(UTC).strftime("%Y-%m")
    try:
        rows = month_spend(team, period)
    except ValueError as exc:
        fail(str(exc))
    caps = ", ".join(
        f"{k or 'total'} ${cap}" for k, cap in get_monthly_caps(team).items() if cap is not None
    )
    table = Table(title=f"Spend {period} (caps: {caps or 'none'})")
    for col in ("category", "provider", "operation", "units", "amount"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.category, r.provider, r.operation, str(r.units), f"{r.amount:.2f}")
    console.print(table)


@app.command("retry")
def retry(upload_id: uuid.UUID, team: TeamOption) -> None:
    """Queue a failed or stuck upload again (a new run key, so the sensor starts a run)."""
    from outreach_core.uploads.queue import retry_upload

    try:
        up = retry_upload(team, upload_id)
    except LookupError as exc:
        fail(str(exc))
    console.print(f"upload {up.id} queued again (attempt {up.attempt})")


@app.command("demo")
def demo() -> None:
    """Run the ingestion end to end on the embedded default and print what it did."""
    from outreach_cli.demo import run_demo

    run_demo(console)


@app.command("dev")
def dev(
    api_port: int = 8000,
    dagster_port: int = 3000,
    webhook_port: Annotated[
        int,
        typer.Option(
            help="The sandbox incoming webhook's port: fixed, so the teams' notification "
            "URLs pointing at it keep working across restarts"
        ),
    ] = 8099,
) -> None:
    """Start the Dagster UI on this code location and the API, both on loopback."""
    from outreach_cli.instance import storage_environment, write_dagster_yaml
    from outreach_core.db.migrate import migrate

    # Ctrl-C, and SIGTERM from a service manager, stop everything, children first. Set
    # before any child starts: a shell starting us in the background ignores SIGINT, the
    # children would inherit that, and `dagster dev` (which maps SIGTERM to its SIGINT
    # handler) could then only be killed, leaving its run workers behind.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    children: list[tuple[subprocess.Popen[Any], float]] = []
    try:
        migrate()
        home = write_dagster_yaml()
        env = {**os.environ, **storage_environment(), "DAGSTER_HOME": str(home)}
        sandboxes = (
            _start_sandbox_apollo(env),
            _start_sandbox_twilio(env, api_port),
            _start_sandbox_smtp(env),
            _start_sandbox_webhook(webhook_port),
        )
        for sandbox in sandboxes:
            if sandbox is not None:
                children.append((sandbox, 10))
        bin_dir = Path(sys.executable).parent
        api = [str(bin_dir / "uvicorn"), "outreach_api.main:app", "--host", "127.0.0.1"]
        children.append((subprocess.Popen([*api, "--port", str(api_port)], env=env), 10))
        console.print(
            f"API on http://127.0.0.1:{api_port}/docs, Dagster on http://127.0.0.1:{dagster_port}"
        )
        dagster = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml"]
            + ["-h", "127.0.0.1", "-p", str(dagster_port)],
            env=env,
        )
        # `dagster dev` stops its webserver, daemon and code server on SIGINT; give it time,
        # so no run worker is left behind.
        children.insert(0, (dagster, 60))
        # Polled, not a blocking wait: the kernel may hand SIGINT/SIGTERM to another thread
        # (polars and jemalloc start some), and a main thread blocked in waitpid would then
        # never run the handler.
        while dagster.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        for child, grace in children:
            if child.poll() is not None:
                continue
            child.send_signal(signal.SIGINT)
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _start_sandbox_twilio(env: dict[str, str], api_port: int) -> subprocess.Popen[str] | None:
    """In sandbox mode texts go to a fake Twilio on loopback, which posts its signed status
    callbacks to our API; its account and token go into `env` for the API and the runs."""
    from outreach_core.sandbox.twilio import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
    from outreach_core.settings import get_settings

    if get_settings().provider_mode != "sandbox":
        return None
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.twilio", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sandbox.stdout is not None
    env["TWILIO_BASE_URL"] = sandbox.stdout.readline().strip()
    env["TWILIO_ACCOUNT_SID"] = SANDBOX_ACCOUNT_SID
    env["TWILIO_AUTH_TOKEN"] = SANDBOX_AUTH_TOKEN
    env["OUTREACH_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{api_port}"
    console.print(f"sandbox Twilio on {env['TWILIO_BASE_URL']}")
    return sandbox


def _start_sandbox_smtp(env: dict[str, str]) -> subprocess.Popen[str] | None:
    """In sandbox mode email deliverables go to a local SMTP server that keeps them (and
    logs one line each); its port goes into `env`."""
    from outreach_core.settings import get_settings

    if get_settings().provider_mode != "sandbox":
        return None
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.smtp"], stdout=subprocess.PIPE, text=True
    )
    assert sandbox.stdout is not None
    url = sandbox.stdout.readline().strip()  # smtp://127.0.0.1:PORT
    env["OUTREACH_SMTP_HOST"], port = url.removeprefix("smtp://").rsplit(":", 1)
    env["OUTREACH_SMTP_PORT"] = port
    console.print(f"sandbox SMTP on {url}")
    return sandbox


def _start_sandbox_webhook(port: int) -> subprocess.Popen[str] | None:
    """In sandbox mode a local Slack-compatible incoming webhook takes team notifications
    (and logs one line each); a team posts there once its URL points at it."""
    from outreach_core.settings import get_settings

    if get_settings().provider_mode != "sandbox":
        return None
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.incoming_webhook", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sandbox.stdout is not None
    url = sandbox.stdout.readline().strip()
    if not url:
        sandbox.wait()
        console.print(
            f"[yellow]sandbox incoming webhook not started: port {port} is taken? "
            "(--webhook-port)[/yellow]"
        )
        return None
    console.print(
        f"sandbox incoming webhook on {url}: point a team at it with `outreach team settings "
        f"--team ID --notify-webhook-url {url}/NAME`"
    )
    return sandbox


def _start_sandbox_apollo(env: dict[str, str]) -> subprocess.Popen[str] | None:
    """In sandbox mode enrichment runs talk to a fake Apollo on loopback, never to the real
    one; its address goes into `env`."""
    from outreach_core.sandbox.apollo import DEFAULT_RATE_LIMIT_PER_MINUTE
    from outreach_core.settings import get_settings

    if get_settings().provider_mode != "sandbox":
        return None
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.apollo", "--port", "0"]
        + ["--latency", "0.05", "--rate-limit", str(DEFAULT_RATE_LIMIT_PER_MINUTE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sandbox.stdout is not None
    env["APOLLO_BASE_URL"] = sandbox.stdout.readline().strip()
    env.setdefault("APOLLO_API_KEY", "sandbox-key")
    console.print(f"sandbox Apollo on {env['APOLLO_BASE_URL']}")
    return sandbox


if __name__ == "__main__":
    app()
