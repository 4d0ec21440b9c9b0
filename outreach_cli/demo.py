"""`make demo`: land the bundled sample CSVs for a demo team, let the upload sensor turn them
into runs, execute those runs in-process on the real Dagster instance (PostgreSQL storage
under OUTREACH_HOME), enrich the leads against the sandbox Apollo, and print what
happened. Safe to run again: the same contacts merge
into the same leads."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import dagster as dg
from rich.console import Console
from sqlalchemy import func, select

from outreach_assets.definitions import defs
from outreach_assets.enrichment import enriched_leads
from outreach_assets.partitions import partition_key
from outreach_assets.resources import ApolloResource
from outreach_assets.sensors import upload_sensor
from outreach_cli.demo_campaign import run_campaign
from outreach_cli.demo_report import run_report
from outreach_cli.instance import storage_environment, write_dagster_yaml
from outreach_core.catalog import load_catalog
from outreach_core.costs import budget
from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.db.engine import tenant_session
from outreach_core.db.migrate import migrate
from outreach_core.db.tables import BucketIndex, Lead, Upload
from outreach_core.enrich.defaults import PRICE_PER_CREDIT
from outreach_core.sandbox.apollo import DEFAULT_RATE_LIMIT_PER_MINUTE, SandboxApollo
from outreach_core.settings import get_settings
from outreach_core.teams import create_team, get_team
from outreach_core.uploads.landing import land_upload

DEMO_TEAM_FILE = "demo_team_id"


def _demo_team(console: Console) -> uuid.UUID:
    marker = get_settings().home / DEMO_TEAM_FILE
    if marker.exists():
        team_id = uuid.UUID(marker.read_text().strip())
        if get_team(team_id) is not None:
            console.print(f"reusing demo team {team_id}")
            return team_id
    team = create_team("Demo team")
    marker.write_text(str(team.team_id))
    console.print(f"created demo team {team.team_id} (API key, shown once: {team.api_key})")
    return team.team_id


def _samples() -> list[Path]:
    folder = files("outreach_cli") / "demo_data"
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".csv"))


def run_demo(console: Console) -> None:
    started = time.perf_counter()
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    console.rule("Outreach demo")
    console.print(f"home: {settings.home.resolve()}  datalake: {settings.resolved_datalake_url}")
    migrate()
    os.environ["DAGSTER_HOME"] = str(write_dagster_yaml())
    os.environ.update(storage_environment())
    instance = dg.DagsterInstance.get()
    team_id = _demo_team(console)
    lake = TeamLake(store_from_url(settings.resolved_datalake_url), team_id)

    upload_ids: list[uuid.UUID] = []
    for path in _samples():
        bucket = load_catalog().get(path.stem)
        with path.open("rb") as handle:
            landed = land_upload(
                lake,
                iter(lambda h=handle: h.read(1 << 20), b""),
                filename=path.name,
                bucket=bucket,
                description="bundled demo sample",
            )
        upload_ids.append(landed.upload.id)
        console.print(f"landed {path.name} -> {bucket.id} as upload {landed.upload.id}")

    # The sensor asks for at most a few runs per team at a time (the teams take turns), as
    # under `make dev`; each round's runs finish before the next evaluation.
    partitions: set[str] = set()
    while requests := _ingest_requests(instance, team_id):
        console.print(f"upload sensor requested {len(requests)} runs")
        for request in requests:
            _ingest(console, instance, request)
            partitions.add(str(request.partition_key))

    _report(console, team_id, upload_ids)
    _enrich(console, instance, team_id, sorted(partitions))
    run_campaign(console, team_id)
    run_report(console, team_id)
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s")


def _ingest_requests(instance: dg.DagsterInstance, team_id: uuid.UUID) -> list[dg.RunRequest]:
    """The upload sensor's run requests for the demo team's received uploads (including any
    an interrupted demo left behind), its new partitions added."""
    result = upload_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return [
        r
        for r in result.run_requests or []
        if isinstance(r.partition_key, dg.MultiPartitionKey)
        and r.partition_key.keys_by_dimension["team"] == str(team_id)
    ]


def _ingest(console: Console, instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    run = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config={
            **request.run_config,
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        tags=request.tags,
        raise_on_error=False,
    )
    state = "succeeded" if run.success else "FAILED"
    console.print(f"run {run.run_id[:8]} for partition {request.partition_key}: {state}")


def _enrich(
    console: Console, instance: dg.DagsterInstance, team_id: uuid.UUID, partitions: list[str]
) -> None:
    """Enrich the demo team's partitions against the sandbox Apollo on loopback."""
    console.rule("Enrichment (sandbox Apollo on loopback)")
    if not partitions:
        partitions = [
            str(partition_key(team_id, sector))
            for sector in sorted({load_catalog().get(p.stem).sector for p in _samples()})
        ]
    with SandboxApollo(
        latency=0.05, rate_limit_per_minute=DEFAULT_RATE_LIMIT_PER_MINUTE
    ) as sandbox:
        apollo = ApolloResource(
            base_url=sandbox.base_url,
            api_key="sandbox-demo-key",
            requests_per_minute=DEFAULT_RATE_LIMIT_PER_MINUTE,
            requests_per_hour=None,
            requests_per_day=None,
        )
        for key in partitions:
            result = dg.materialize(
                [enriched_leads],
                partition_key=key,
                instance=instance,
                resources={"apollo": apollo},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
            if not result.success:
                console.print(f"[red]enrichment of {key} FAILED[/red]")
                continue
            m = {
                k: v.value
                for k, v in result.asset_materializations_for_node("enriched_leads")[
                    0
                ].metadata.items()
            }
            console.print(
                f"[bold]{key}[/bold]: {m['leads']} open leads, {m['insufficient_data']} skipped "
                f"(insufficient data), {m['identities']} people: {m['matched']} matched, "
                f"{m['no_match']} no match, {m['cache_hits']} from cache; {m['requests']} "
                f"requests, {m['http_429']} answered 429; {m['credits']} credits, "
                f"${m['spend']:.2f}"
            )
        counted = sandbox.requests.snapshot()
    spend = budget.month_spend(team_id, datetime.now(UTC).strftime("%Y-%m"))
    total = sum((row.amount for row in spend), Decimal(0))
    console.print(
        f"sandbox Apollo counted {counted.total} requests and {counted.credits_charged} credits; "
        f"the demo team's ledger this month: ${total:.2f} at ${PRICE_PER_CREDIT} a credit"
    )


def _report(console: Console, team_id: uuid.UUID, upload_ids: list[uuid.UUID]) -> None:
    with tenant_session(team_id) as session:
        uploads = list(session.scalars(select(Upload).where(Upload.id.in_(upload_ids))))
        indexes = list(session.scalars(select(BucketIndex).order_by(BucketIndex.bucket_id)))
        lead_count = session.scalar(select(func.count()).select_from(Lead))
    console.rule("Uploads")
    for up in sorted(uploads, key=lambda u: u.filename):
        console.print(
            f"[bold]{up.filename}[/bold] -> {up.bucket_id}: {up.status}"
            + (f" ({up.error})" if up.error else "")
        )
        if up.total_rows is None:
            continue
        console.print(
            f"  rows {up.total_rows}, accepted {up.accepted_rows}, rejected {up.rejected_rows}, "
            f"duplicates merged {up.merged_rows}, new leads {up.inserted_leads}"
        )
        if up.top_rejection_reasons:
            reasons = ", ".join(f"{k} ({v})" for k, v in up.top_rejection_reasons.items())
            console.print(f"  top rejection reasons: {reasons}")
    console.rule("Bucket index")
    for idx in indexes:
        totals = idx.index["totals"]
        console.print(
            f"[bold]{idx.bucket_id}[/bold]: {totals['leads']} leads, {totals['with_phone']} with "
            f"phone, {totals['with_email']} with email, {totals['needs_skip_trace']} need skip "
            f"trace; {len(idx.index['byCity'])} cities, {len(idx.index['byCounty'])} counties"
        )
        states = ", ".join(f"{k} {v}" for k, v in idx.index["byState"].items())
        console.print(f"  by state: {states}")
    console.print(f"the demo team has {lead_count} leads")
