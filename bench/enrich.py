"""Enrichment benchmark: 10,000 leads (about 10% of them the same person again under
another phone) enriched through a real Dagster run of `enriched_leads` against the
sandbox Apollo on loopback, with 150 ms latency and the sandbox's default per-minute rate
limit, which both sides know. Bulk calls of 10 people, 10 in flight, at the default price.

    .venv/bin/python bench/enrich.py [--leads N] [--latency S] [--limit PER_MIN]

Uses OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME; start from an
empty database (the rate limiter's windows are provider-wide). The last line printed is
one JSON object with the figures."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTOR = "construction"


def seed(team_id: uuid.UUID, leads: int) -> int:
    """``leads`` leads; every tenth is an earlier person under a new phone. Returns the
    number of distinct people."""
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session
    from outreach_core.leads.ids import reserve_lead_ids
    from outreach_core.leads.scoring import base_score

    first_id = reserve_lead_ids(team_id, leads)
    rows = []
    people = 0
    for i in range(leads):
        n = i - 5 if i % 10 == 9 else i  # same name and company as five leads earlier
        people += n == i
        rows.append(
            {
                "t": team_id,
                "id": first_id + i,
                "first": f"Alex{n}",
                "last": f"Rivera{n}",
                "company": f"Rivera {n % 97} Builders",
                "website": f"rivera{n % 97}builders.com",
                "phone": f"+1{2000000000 + i}",
            }
        )
    with tenant_session(team_id) as s:
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, first_name, last_name, company_name, website, "
                "phone, sector, score) VALUES (:t, :id, :first, :last, :company, :website, "
                f":phone, '{SECTOR}', {base_score()})"
            ),
            rows,
        )
    return people


def main() -> None:
    from outreach_core.enrich.defaults import PRICE_PER_CREDIT as PRICE
    from outreach_core.sandbox.apollo import DEFAULT_RATE_LIMIT_PER_MINUTE

    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_RATE_LIMIT_PER_MINUTE, help="requests per minute"
    )
    args = parser.parse_args()

    import dagster as dg

    from outreach_assets.enrichment import enriched_leads
    from outreach_assets.partitions import partition_key, teams_partitions
    from outreach_assets.resources import ApolloResource
    from outreach_core.costs import budget
    from outreach_core.db.migrate import migrate
    from outreach_core.sandbox.apollo import SandboxApollo
    from outreach_core.teams import create_team

    migrate()
    team = create_team(f"bench-{uuid.uuid4().hex[:6]}")
    people = seed(team.team_id, args.leads)
    print(f"seeded {args.leads:,} leads ({people:,} distinct people)")

    with (
        SandboxApollo(latency=args.latency, rate_limit_per_minute=args.limit) as sandbox,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        instance.add_dynamic_partitions(teams_partitions.name, [str(team.team_id)])
        apollo = ApolloResource(
            base_url=sandbox.base_url,
            api_key="bench-key",
            requests_per_minute=args.limit,
            requests_per_hour=None,
            requests_per_day=None,
            price_per_credit=str(PRICE),
        )
        started = time.perf_counter()
        result = dg.materialize(
            [enriched_leads],
            partition_key=partition_key(team.team_id, SECTOR),
            instance=instance,
            resources={"apollo": apollo},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        seconds = time.perf_counter() - started
        counted = sandbox.requests
        meta = {
            k: v.value
            for k, v in result.asset_materializations_for_node("enriched_leads")[0].metadata.items()
        }
        requests = counted.endpoint("/api/v1/people/bulk_match")
        http_429 = counted.rate_limited
        duplicates = counted.duplicate_paid_matches
        credits = counted.credits_charged

    period = time.strftime("%Y-%m", time.gmtime())
    rows = budget.month_spend(team.team_id, period)
    ledger_units = sum(r.units for r in rows)
    ledger_amount = sum((r.amount for r in rows), Decimal(0))
    throughput = requests / (seconds / 60) / args.limit
    print(
        f"{args.leads:,} leads in {seconds:.1f} s: {requests} requests "
        f"({requests / seconds * 60:.0f}/min against a limit of {args.limit}/min, "
        f"{throughput:.1%}), {meta['matched']} matched, {meta['cache_hits']} from cache, "
        f"{http_429} answered 429, {duplicates} paid twice; ledger {ledger_units} credits "
        f"${ledger_amount:.2f}, sandbox {credits} credits"
    )
    print(
        f"the seed system took 1,000-2,000 s for 10,000 records one call at a time; "
        f"this run: {seconds:.0f} s"
    )
    print(
        json.dumps(
            {
                "bench": "enrich",
                "leads": args.leads,
                "seconds": round(seconds, 1),
                "requests": requests,
                "throughput_vs_limit": round(throughput, 3),
                "http_429": http_429,
                "duplicate_paid_calls": duplicates,
                "ledger_matches_sandbox": ledger_units == credits
                and ledger_amount == credits * PRICE,
            }
        )
    )


if __name__ == "__main__":
    main()
