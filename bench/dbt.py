"""dbt benchmark: `dbt build` of the analytics project (every model, data test and unit test,
through `outreach_assets.analytics.refresh_analytics`, as the report CLI runs it) over a
throwaway database seeded with 1,000,000 outbound messages.

    .venv/bin/python bench/dbt.py [--messages 1000000] [--teams 10] [--campaigns 10]
        [--keep]

The database is new (named after the configured one, with a `_bench_dbt_<hex>` suffix, on
the same server: OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME),
migrated, and dropped at the end unless `--keep`. Teams are created with the project's own
`create_team`; the rest is seeded set-wise as the owner (generate_series, INSERT ... SELECT),
in the proportions of a running deployment: per team `--campaigns` SMS campaigns, each lead
texted by two of them (so leads = messages / 2), 90% of messages delivered, 4% undelivered,
2% failed, 3% still `sent`, 1% blocked; every message that went out priced in the cost
ledger; a reply to 8% of the delivered ones (an inbound message and its classified inbox
item, in a realistic mix of classes); 60% of leads enriched (a cache entry and one
enrichment ledger row per bulk call of 10); 1% of leads qualified, some with a meeting or a
deal; monthly caps for every team. The tables are ANALYZEd before the build, as autovacuum
would have done.

The last line printed is one JSON object with the figures."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is `dbt.py`: its directory first on the path would shadow the dbt package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

SEED_SQL = [
    (
        "campaigns",
        """
        CREATE TEMP TABLE bench_campaigns AS
        SELECT t.id AS team_id, t.n AS team_n, c, gen_random_uuid() AS id
        FROM unnest(CAST(:teams AS uuid[])) WITH ORDINALITY AS t(id, n),
             generate_series(0, :campaigns - 1) AS c;
        INSERT INTO campaigns (team_id, id, name, type, status, selection, template,
                               schedule_start, daily_limit, budget, persona, created_by,
                               created_at)
        SELECT team_id, id, 'bench campaign ' || c, 'sms', 'completed', '{}'::jsonb,
               'Hi {{firstName|there}}, a quick question.', '2026-10-25T00:00:00Z', 100000,
               CASE WHEN c % 2 = 0 THEN 400 END, 'sabrina_default', 'bench',
               '2026-10-25T00:00:00Z'
        FROM bench_campaigns;
        """,
    ),
    (
        "leads",
        """
        INSERT INTO leads (team_id, id, first_name, last_name, company_name, phone, city,
                           state, zip, sector, bucket_id, enrichment_status, enrichment_key,
                           score, status)
        SELECT t.id, i, 'Sam', 'Lee ' || i, 'Lee ' || (i % 997) || ' Plumbing',
               '+1' || (200 + t.n) || lpad(i::text, 7, '0'), 'New York', 'NY', '10001',
               'construction', 'ny-construction-plumbers',
               CASE WHEN i % 10 < 6 THEN 'enriched' END,
               CASE WHEN i % 10 < 6 THEN 'bench:' || i END,
               50 + i % 50,
               CASE WHEN i % 500 = 0 THEN 'deal' WHEN i % 250 = 0 THEN 'meeting'
                    WHEN i % 100 = 0 THEN 'qualified' ELSE 'new' END
        FROM unnest(CAST(:teams AS uuid[])) WITH ORDINALITY AS t(id, n),
             generate_series(1, :leads) AS i;
        UPDATE teams SET last_lead_id = :leads WHERE id = ANY(CAST(:teams AS uuid[]));
        """,
    ),
    (
        "enrichment",
        """
        INSERT INTO enrichment_cache (team_id, identity_key, status, credits, claimed_at,
                                      expires_at)
        SELECT team_id, enrichment_key, 'matched', 1, '2026-10-20T00:00:00Z',
               '2026-11-19T00:00:00Z'
        FROM leads WHERE team_id = ANY(CAST(:teams AS uuid[])) AND enrichment_key IS NOT NULL;
        INSERT INTO cost_ledger (team_id, category, provider, operation, units, unit_cost,
                                 amount, reference, created_at)
        SELECT t.id, 'enrichment', 'apollo', 'people_bulk_match', 10, 0.02, 0.20,
               'bench-enrich', '2026-10-20T00:00:00Z'::timestamptz + b * interval '1 second'
        FROM unnest(CAST(:teams AS uuid[])) AS t(id),
             generate_series(1, (:leads * 6 / 10) / 10) AS b;
        """,
    ),
    (
        "messages and their prices",
        """
        WITH sent AS (
            INSERT INTO messages (team_id, id, kind, campaign_id, lead_id, step, to_phone,
                                  body, segments, status, not_before, provider_sid, price,
                                  price_unit, sent_at, created_at, updated_at)
            SELECT l.team_id, gen_random_uuid(), 'campaign', c.id, l.id, 0, l.phone,
                   'Hi Sam, a quick question.', 1, s.status, s.at,
                   CASE WHEN s.status <> 'blocked' THEN 'SM' || md5(c.id::text || l.id) END,
                   CASE WHEN s.status <> 'blocked' THEN -0.0079 END, 'USD',
                   CASE WHEN s.status <> 'blocked' THEN s.at END, s.at, s.at
            FROM leads AS l
            JOIN bench_campaigns AS c
              ON c.team_id = l.team_id AND c.c IN (l.id % :campaigns, (l.id + 1) % :campaigns)
            CROSS JOIN LATERAL (
                SELECT CASE
                           WHEN h < 90 THEN 'delivered' WHEN h < 94 THEN 'undelivered'
                           WHEN h < 96 THEN 'failed' WHEN h < 99 THEN 'sent'
                           ELSE 'blocked'
                       END AS status,
                       '2026-11-01T14:00:00Z'::timestamptz
                           + (c.c * 3 + l.id % 3) * interval '1 day'
                           + (l.id % 28800) * interval '1 second' AS at
                FROM (SELECT (l.id * 7919 + c.c * 104729) % 100 AS h) AS hashed
            ) AS s
            WHERE l.team_id = ANY(CAST(:teams AS uuid[]))
            RETURNING team_id, id, campaign_id, status, provider_sid, sent_at
        )
        INSERT INTO cost_ledger (team_id, category, provider, operation, units, unit_cost,
                                 amount, campaign_id, reference, created_at)
        SELECT team_id, 'sms', 'twilio', 'sms', 1, 0.0079, 0.0079, campaign_id,
               'message:' || id || ':' || provider_sid, sent_at + interval '1 minute'
        FROM sent WHERE status <> 'blocked';
        """,
    ),
    (
        "replies",
        """
        CREATE TEMP TABLE bench_replies AS
        SELECT m.team_id, m.campaign_id, m.lead_id, m.to_phone, gen_random_uuid() AS inbound_id,
               gen_random_uuid() AS item_id, m.sent_at + interval '2 hours' AS at,
               CASE
                   WHEN k < 25 THEN 'interested' WHEN k < 35 THEN 'email-capture'
                   WHEN k < 50 THEN 'question' WHEN k < 70 THEN 'not-interested'
                   WHEN k < 85 THEN 'opt-out' WHEN k < 90 THEN 'thank-you'
                   WHEN k < 98 THEN 'other' ELSE 'called-phone-line'
               END AS classification
        FROM messages AS m
        CROSS JOIN LATERAL (SELECT abs(hashtext(m.id::text)) % 100 AS k) AS hashed
        WHERE m.team_id = ANY(CAST(:teams AS uuid[])) AND m.status = 'delivered'
          AND abs(m.lead_id * 7 + hashtext(m.campaign_id::text)) % 100 < 8;
        INSERT INTO inbound_messages (team_id, id, provider_sid, channel, from_phone, to_phone,
                                      body, status, received_at, processed_at)
        SELECT team_id, inbound_id, 'SMin' || replace(inbound_id::text, '-', ''),
               CASE WHEN classification = 'called-phone-line' THEN 'voice' ELSE 'sms' END,
               to_phone, '+13325550100', 'a reply', 'processed', at, at
        FROM bench_replies;
        INSERT INTO inbox_items (team_id, id, inbound_id, lead_id, campaign_id, contact_phone,
                                 channel, body, classification, classification_name,
                                 confidence, priority, bucket, created_at, updated_at)
        SELECT team_id, item_id, inbound_id, lead_id, campaign_id, to_phone,
               CASE WHEN classification = 'called-phone-line' THEN 'voice' ELSE 'sms' END,
               'a reply', classification, classification, 90,
               CASE WHEN classification IN ('interested', 'email-capture', 'called-phone-line')
                    THEN 'hot' ELSE 'cold' END,
               CASE classification
                   WHEN 'email-capture' THEN 'email-captures'
                   WHEN 'interested' THEN 'hot-responses'
                   WHEN 'called-phone-line' THEN 'hot-responses'
                   WHEN 'not-interested' THEN 'objections'
                   WHEN 'opt-out' THEN 'dnc'
                   ELSE 'other'
               END,
               at, at
        FROM bench_replies;
        """,
    ),
    (
        "budgets",
        """
        INSERT INTO team_budgets (team_id, enrichment_monthly_cap, sms_monthly_cap,
                                  total_monthly_cap)
        SELECT id, 2000, 1000, 2500 FROM unnest(CAST(:teams AS uuid[])) AS t(id)
        ON CONFLICT (team_id) DO UPDATE SET sms_monthly_cap = EXCLUDED.sms_monthly_cap;
        """,
    ),
]

ANALYZED = (
    "leads",
    "campaigns",
    "messages",
    "cost_ledger",
    "inbound_messages",
    "inbox_items",
    "enrichment_cache",
    "team_budgets",
)


def throwaway_database() -> str:
    """Point OUTREACH_DATABASE_URL at a new database next to the configured one."""
    from outreach_core.db.engine import ensure_database, owner_url
    from outreach_core.settings import get_settings

    server = owner_url()
    url = server.set(database=f"{server.database}_bench_dbt_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    os.environ["OUTREACH_DATABASE_URL"] = url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    return str(url.database)


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    from outreach_core.db.engine import app_engine, owner_engine, owner_url

    app_engine().dispose()
    owner_engine().dispose()
    admin = create_engine(owner_url().set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(teams: list[uuid.UUID], leads: int, campaigns: int) -> None:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    params = {"teams": [str(t) for t in teams], "leads": leads, "campaigns": campaigns}
    for name, sql in SEED_SQL:
        started = time.perf_counter()
        with owner_engine().begin() as conn:
            for statement in (s for s in sql.split(";") if s.strip()):
                stmt = text(statement)
                wanted = {k: v for k, v in params.items() if f":{k}" in statement}
                conn.execute(stmt, wanted)
        print(f"  seeded {name} in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    with owner_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ANALYZE " + ", ".join(ANALYZED))
        )
    print(f"  analyzed in {time.perf_counter() - started:.1f} s", flush=True)


def counts() -> dict[str, int]:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().connect() as conn:
        return {
            table: int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            for table in ("messages", "leads", "campaigns", "inbox_items", "cost_ledger")
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--campaigns", type=int, default=10, help="per team")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()
    if args.campaigns < 2:
        raise SystemExit("--campaigns must be at least 2 (each lead is texted by two)")
    leads = args.messages // (2 * args.teams)

    database = throwaway_database()
    print(f"database {database}", flush=True)
    try:
        from outreach_core.db.migrate import migrate
        from outreach_core.teams import create_team

        migrate()
        teams = [create_team(f"bench-dbt-{i}").team_id for i in range(args.teams)]
        started = time.perf_counter()
        print(f"seeding {args.teams} teams x {leads:,} leads x 2 campaign texts", flush=True)
        seed(teams, leads, args.campaigns)
        seeded = counts()
        print(
            f"seeded in {time.perf_counter() - started:.1f} s: "
            + ", ".join(f"{n:,} {table}" for table, n in seeded.items()),
            flush=True,
        )

        from outreach_assets.analytics import refresh_analytics

        print("dbt build (its log on stderr)", flush=True)
        started = time.perf_counter()
        refresh_analytics()
        build_s = time.perf_counter() - started
        print(f"dbt build took {build_s:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept database {database}", flush=True)
        else:
            drop_database(database)
    figures = {"bench": "dbt", "messages": seeded["messages"], "build_s": round(build_s, 1)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
