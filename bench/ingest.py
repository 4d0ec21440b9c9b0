"""Ingestion benchmark: a messy synthetic CSV (default 1,000,000 rows, ~20% duplicate
contacts, mixed phone formats, some invalid rows) from landed file to committed leads,
through the same core stages the Dagster assets run; then the same file again (every row a
duplicate); then what Dagster adds on top of the stages for a small (1,000-row) upload: in
an in-process run, and on the deployed path (the real `outreach dev`, POST to `completed`
over HTTP, on a fresh database of OUTREACH_BENCH_SERVER_URL; see bench/deployed.py).

    .venv/bin/python bench/ingest.py [--rows N] [--skip-dagster]

Uses OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME. The last line
printed is one JSON object with the figures."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth(rows: int) -> Path:
    path = OUT / f"leads-{rows}.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        # A child process, so generating the file does not count in our peak RSS.
        code = (
            "import sys; from pathlib import Path; "
            "from outreach_core.sandbox.synthetic import write_csv; "
            f"write_csv(Path({str(path)!r}), {rows})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return path


def summary(label: str, seconds: float, rows: int, timings: dict[str, float]) -> str:
    figures = ", ".join(
        f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in timings.items()
    )
    return f"{label} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s); {figures}"


def run_stages(lake, upload) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from outreach_core.catalog import load_catalog
    from outreach_core.uploads import processing

    timings: dict[str, float] = {}
    t = time.perf_counter()
    validated = processing.validate_upload(lake, upload)
    timings["validate_s"] = time.perf_counter() - t
    timings["rss_after_validate_mb"] = peak_rss_mb()
    assert validated is not None
    t = time.perf_counter()
    processing.process_upload(lake, upload)
    timings["process_s"] = time.perf_counter() - t
    timings["rss_after_process_mb"] = peak_rss_mb()
    t = time.perf_counter()
    processing.build_bucket_index(lake, load_catalog().get(upload.bucket_id))
    timings["index_s"] = time.perf_counter() - t
    timings["rss_after_index_mb"] = peak_rss_mb()
    t = time.perf_counter()
    loaded = processing.load_leads(lake, upload)
    timings["leads_s"] = time.perf_counter() - t
    timings["rss_after_leads_mb"] = peak_rss_mb()
    timings["inserted"] = loaded.inserted
    timings["merged"] = loaded.merged
    timings["rejected"] = validated.rejected
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-dagster", action="store_true")
    args = parser.parse_args()
    csv_path = synth(args.rows)

    from outreach_core.catalog import load_catalog
    from outreach_core.datalake import TeamLake, store_from_url
    from outreach_core.db.migrate import migrate
    from outreach_core.settings import get_settings
    from outreach_core.teams import create_team
    from outreach_core.uploads.landing import land_upload

    migrate()
    team = create_team(f"bench-{uuid.uuid4().hex[:6]}")
    lake = TeamLake(store_from_url(get_settings().resolved_datalake_url), team.team_id)
    bucket = load_catalog().get("ny-construction-plumbers")

    def land():  # type: ignore[no-untyped-def]
        with csv_path.open("rb") as handle:
            chunks = iter(lambda: handle.read(1 << 20), b"")
            return land_upload(lake, chunks, filename=csv_path.name, bucket=bucket).upload

    t = time.perf_counter()
    upload = land()
    land_s = time.perf_counter() - t
    t = time.perf_counter()
    first = run_stages(lake, upload)
    first_s = time.perf_counter() - t
    print(
        summary(f"new rows:  {args.rows:,}", first_s, args.rows, first) + f"; land {land_s:.1f} s"
    )
    for stage in ("validate_s", "process_s", "index_s", "leads_s"):
        print(f"  {stage[:-2]:<9} {args.rows / first[stage]:>12,.0f} rows/s")

    again = land()
    t = time.perf_counter()
    second = run_stages(lake, again)
    second_s = time.perf_counter() - t
    print(summary(f"duplicates: {args.rows:,}", second_s, args.rows, second))

    dagster_overhead_s = deployed_overhead_s = None
    if not args.skip_dagster:
        direct_s, in_process_s = dagster_overhead(lake, team.team_id)
        dagster_overhead_s = in_process_s - direct_s
        deployed_overhead_s = deployed_upload_s() - direct_s
        print(
            f"dagster overhead on top of the stages ({SMALL_ROWS:,} rows, {direct_s:.2f} s): "
            f"{dagster_overhead_s:.2f} s in process, {deployed_overhead_s:.2f} s deployed "
            f"(POST to completed under `outreach dev`, median of {DEPLOYED_UPLOADS})"
        )

    figures = {
        "bench": "ingest",
        "rows": args.rows,
        "end_to_end_s": round(first_s, 2),
        "end_to_end_rows_per_s": round(args.rows / first_s),
        "duplicates_end_to_end_s": round(second_s, 2),
        "duplicates_rows_per_s": round(args.rows / second_s),
        "land_s": round(land_s, 2),
        **{f"new_{k}": round(v, 2) for k, v in first.items()},
        "dagster_overhead_s": None if dagster_overhead_s is None else round(dagster_overhead_s, 2),
        "deployed_overhead_s": (
            None if deployed_overhead_s is None else round(deployed_overhead_s, 2)
        ),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    print(json.dumps(figures))


SMALL_ROWS = 1_000


def small_csv() -> bytes:
    from outreach_core.sandbox.synthetic import generate

    return generate(SMALL_ROWS, seed=99).write_csv().encode()


def dagster_overhead(lake, team_id: uuid.UUID) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """A small upload's stages called directly, and through a real in-process run: seconds."""
    import dagster as dg

    from outreach_assets.definitions import defs
    from outreach_assets.partitions import partition_key, teams_partitions
    from outreach_core.catalog import load_catalog
    from outreach_core.uploads.landing import land_upload

    bucket = load_catalog().get("ny-construction-plumbers")
    small = small_csv()
    direct = land_upload(lake, [small], filename="small.csv", bucket=bucket).upload
    t = time.perf_counter()
    run_stages(lake, direct)
    direct_s = time.perf_counter() - t
    via = land_upload(lake, [small], filename="small.csv", bucket=bucket).upload
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(teams_partitions.name, [str(team_id)])
        t = time.perf_counter()
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance,
            partition_key=partition_key(team_id, "construction"),
            run_config={
                "ops": {"validated_records": {"config": {"uploads": [{"id": str(via.id)}]}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
        dagster_s = time.perf_counter() - t
    assert result.success
    return direct_s, dagster_s


DEPLOYED_UPLOADS = 5


def deployed_upload_s() -> float:
    """The same small file (other phones each time, so every row is new) posted to a running
    `outreach dev` one at a time: the median seconds to `completed`."""
    from bench.deployed import outreach_dev
    from outreach_core.sandbox.synthetic import generate

    seconds = []
    with outreach_dev() as dev:
        for seed in range(DEPLOYED_UPLOADS):
            data = generate(SMALL_ROWS, seed=1_000 + seed).write_csv().encode()
            t = time.perf_counter()
            state = dev.wait_final(dev.post(data, f"small-{seed}.csv"), 300)
            seconds.append(time.perf_counter() - t)
            assert state["status"] == "completed", state
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
