"""Upload latency on the deployed path: the real `outreach dev` on a fresh database, CSV
files posted over HTTP, each timed from its POST to a final status read from the API.

    .venv/bin/python bench/upload_latency.py [--uploads 10] [--rows 500] [--singles 5]

First `--singles` uploads one at a time (what one user waits for), then `--uploads`
posted at once for one bucket (what a burst waits for). Every row has its own phone, so
every upload's rows must become leads. Targets on 2 cores: a single 500-row upload final
in 15 s or less (median); ten posted at once all final within 60 s.

Uses the PostgreSQL at OUTREACH_BENCH_SERVER_URL (default postgresql://postgres@127.0.0.1:5432)
and drops the database it created. The last line printed is one JSON object."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deployed import Dev, outreach_dev  # noqa: E402

TIMEOUT_S = 300


def csv_file(index: int, rows: int) -> bytes:
    lines = ["Phone,First Name,Last Name,Company"]
    lines += [f"2125{index:02d}{n:04d},Lead,{index}-{n},Co {index}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def timed_upload(dev: Dev, data: bytes, name: str) -> tuple[float, dict]:
    started = time.perf_counter()
    upload_id = dev.post(data, name)
    state = dev.wait_final(upload_id, TIMEOUT_S)
    return time.perf_counter() - started, state


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=10, help="posted at once")
    parser.add_argument("--rows", type=int, default=500, help="rows per file")
    parser.add_argument("--singles", type=int, default=5, help="uploads one at a time first")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if args.uploads + args.singles > 99:
        parser.error("at most 99 files (each file's phones are 2125NN....)")

    with outreach_dev(keep=args.keep) as dev:
        print(f"outreach dev is up ({dev.log})", flush=True)
        singles: list[float] = []
        for i in range(args.singles):
            seconds, state = timed_upload(dev, csv_file(i, args.rows), f"single-{i}.csv")
            singles.append(seconds)
            print(f"single upload {i + 1}/{args.singles}: {state['status']} in {seconds:.1f} s")

        first = args.singles
        with ThreadPoolExecutor(args.uploads) as pool:
            results = list(
                pool.map(
                    lambda i: timed_upload(dev, csv_file(i, args.rows), f"burst-{i}.csv"),
                    range(first, first + args.uploads),
                )
            )
        latencies = [seconds for seconds, _ in results]
        states = [state for _, state in results]
        for seconds, state in sorted(results, key=lambda r: r[0]):
            print(f"burst upload {state['upload_id']}: {state['status']} in {seconds:.1f} s")
        leads = dev.lead_count()

    figures = {
        "bench": "upload_latency",
        "uploads": args.uploads,
        "rows_per_upload": args.rows,
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(percentile(latencies, 0.95), 2),
        "max_s": round(max(latencies), 2),
        "single_p50_s": round(statistics.median(singles), 2) if singles else None,
        "single_max_s": round(max(singles), 2) if singles else None,
        "all_final": all(s["status"] in ("completed", "failed") for s in states),
        "stuck": sum(s["status"] not in ("completed", "failed") for s in states),
        "failed": sum(s["status"] == "failed" for s in states),
        # The warm-up upload's one lead, then every file's rows.
        "leads": leads - 1,
        "expected_leads": (args.uploads + args.singles) * args.rows,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
