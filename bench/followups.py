"""Follow-up benchmark: 100,000 inbox items with a follow-up due (interested contacts who
gave no email 3 h ago, so the default `ask-for-email` workflow fires), half in New York and
half in Los Angeles, every phone with its consent recorded.

1. One tick of the real workflow sensor (`workflow_sensor`, evaluated in process with the
   clock fixed) evaluates every item: the set-based INSERT ... SELECT of its executions.
2. A second tick overlapping a third (two threads at once) adds nothing.
3. The executor runs the due executions at the configured team-wide rate for a while
   (`--execute-seconds`): the New York ones run (their window is open at the fixed
   clock), the Los Angeles ones are rescheduled to 09:00 there, not run.

    .venv/bin/python bench/followups.py [--items N] [--rate PER_MINUTE] [--execute-seconds S]

The clock is fixed at 10:00 in New York (07:00 in Los Angeles) on a winter Thursday. Every
follow-up queued is checked against its recipient's window again, independently, at the
moment it was queued (`outside_window`); `duplicates` counts executions of one (workflow,
item, step) past the first, follow-up messages of one execution past the first, and
contacts with more than one follow-up.

Uses OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME; works on a
fresh database (migrates, creates a team; removes it at the end unless --keep). Other
teams' inbox items are evaluated by the tick too: use a database of its own. The last line
printed is one JSON object with the figures."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# 15:00 UTC on a winter Thursday: 10:00 in New York, 07:00 in Los Angeles.
CLOCK = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
# The contacts wrote this long before the clock: the 2 h follow-up is due.
REPLIED_BEFORE = timedelta(hours=3)
# (area codes, ZIP, state): with exchange 555 each area code gives 10,000 valid numbers.
PLACES = (
    (("212", "646", "917", "347", "718"), "10001", "NY"),
    (("213", "310", "323", "424", "818"), "90001", "CA"),
)
WORKFLOW = "ask-for-email"


def phone(i: int) -> tuple[str, str, str]:
    """The i-th contact's phone, ZIP and state: even ones in New York, odd in Los Angeles."""
    codes, zip_code, state = PLACES[i % 2]
    n = i // 2
    return f"+1{codes[n // 10_000]}555{n % 10_000:04d}", zip_code, state


def seed(team_id: uuid.UUID, items: int) -> str:
    """Leads, their consent, their inbound replies, conversations and inbox items, in bulk;
    returns the team's sending number."""
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session
    from outreach_core.db.tables import SendingNumber
    from outreach_core.leads.ids import reserve_lead_ids
    from outreach_core.leads.scoring import base_score

    if items > 10_000 * 10:
        raise SystemExit("at most 100,000 items")
    first = reserve_lead_ids(team_id, items)
    contacts = [phone(i) for i in range(items)]
    replied = CLOCK - REPLIED_BEFORE
    number = "+12125559000"
    with tenant_session(team_id) as s:
        number_id = uuid.uuid4()
        s.add(SendingNumber(team_id=team_id, id=number_id, phone_number=number))
        s.flush()
        params = {
            "t": team_id,
            "first": first,
            "phones": [c[0] for c in contacts],
            "zips": [c[1] for c in contacts],
            "states": [c[2] for c in contacts],
            "at": replied,
            "number": number,
            "number_id": number_id,
            "score": base_score(),
        }
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, first_name, phone, zip, state, score) "
                "SELECT :t, :first + n - 1, 'Sam' || n, p, z, st, :score "
                "FROM unnest(CAST(:phones AS text[]), CAST(:zips AS text[]), "
                "CAST(:states AS text[])) WITH ORDINALITY AS u(p, z, st, n)"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO phone_flags (team_id, phone, flag, reason, source) "
                "SELECT :t, p, 'consented', 'consent recorded', 'bench' "
                "FROM unnest(CAST(:phones AS text[])) p"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO inbound_messages (team_id, id, provider_sid, channel, from_phone, "
                "to_phone, body, sending_number_id, status, attempts, received_at, processed_at) "
                "SELECT :t, gen_random_uuid(), 'SMbench' || md5(p || :t), 'sms', p, :number, "
                "'yes I''m interested', :number_id, 'processed', 1, :at, :at "
                "FROM unnest(CAST(:phones AS text[])) p"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO conversations (team_id, contact_phone, lead_id, inbound_count, "
                "last_intent, stage, first_name, last_message_at, last_inbound_at) "
                "SELECT :t, l.phone, l.id, 1, 'interested', 'hot_response', l.first_name, :at, :at "
                "FROM leads l WHERE l.team_id = :t"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO inbox_items (team_id, id, inbound_id, lead_id, contact_phone, "
                "channel, body, classification, classification_name, confidence, priority, "
                "bucket, handling, created_at, updated_at) "
                "SELECT :t, gen_random_uuid(), m.id, l.id, m.from_phone, 'sms', m.body, "
                "'interested', 'Interested', 90, 'warm', 'hot-responses', 'auto_reply', :at, :at "
                "FROM inbound_messages m JOIN leads l ON l.team_id = m.team_id "
                "AND l.phone = m.from_phone WHERE m.team_id = :t"
            ),
            params,
        )
    return number


def analyze() -> None:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().begin() as conn:
        for table in (
            "leads",
            "phone_flags",
            "inbound_messages",
            "conversations",
            "inbox_items",
            "workflows",
            "workflow_executions",
            "messages",
        ):
            conn.execute(text(f"ANALYZE {table}"))


def sensor_tick() -> tuple[float, int]:
    """One evaluation of the real sensor at the fixed clock: (seconds, run requests)."""
    import dagster as dg
    import time_machine

    from outreach_assets.definitions import defs
    from outreach_assets.workflows import workflow_sensor

    with dg.instance_for_test() as instance, time_machine.travel(CLOCK, tick=True):
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        started = time.perf_counter()
        result = workflow_sensor(context)
        seconds = time.perf_counter() - started
    assert isinstance(result, dg.SensorResult)
    return seconds, len(result.run_requests or [])


def counts(team_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session

    with tenant_session(team_id) as s:
        row = s.execute(
            text("""
            SELECT
              (SELECT count(*) FROM workflow_executions) AS executions,
              (SELECT count(*) FROM workflow_executions WHERE status = 'completed') AS completed,
              (SELECT count(*) FROM workflow_executions
                WHERE status = 'pending' AND reason = 'quiet_hours') AS rescheduled,
              (SELECT coalesce(sum(c - 1), 0) FROM (
                 SELECT count(*) c FROM workflow_executions
                  GROUP BY workflow_id, inbox_item_id, step HAVING count(*) > 1) d)
              + (SELECT coalesce(sum(c - 1), 0) FROM (
                 SELECT count(*) c FROM messages WHERE kind = 'follow_up'
                  GROUP BY workflow_execution_id HAVING count(*) > 1) d)
              + (SELECT coalesce(sum(c - 1), 0) FROM (
                 SELECT count(*) c FROM messages WHERE kind = 'follow_up'
                  GROUP BY to_phone HAVING count(*) > 1) d) AS duplicates
            """)
        ).one()
    return dict(row._mapping)


def outside_window(team_id: uuid.UUID) -> int:
    """Follow-ups queued outside their recipient's window, checked again independently."""
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session
    from outreach_core.guardrails.quiet_hours import check_quiet_hours

    with tenant_session(team_id) as s:
        rows = s.execute(
            text(
                "SELECT e.claimed_at, l.zip, l.state, e.contact_phone FROM workflow_executions e "
                "JOIN leads l ON l.team_id = e.team_id AND l.id = e.lead_id "
                "WHERE e.status = 'completed' AND e.action = 'send_sms'"
            )
        ).all()
    return sum(
        not check_quiet_hours(now_utc=at, zip_code=z, state=st, phone=p).allowed
        for at, z, st, p in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--rate", type=int, default=1_200, help="workflow executions a minute, team-wide"
    )
    parser.add_argument("--execute-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the team and its rows")
    args = parser.parse_args()

    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session
    from outreach_core.db.migrate import migrate
    from outreach_core.settings import get_settings
    from outreach_core.teams import create_team
    from outreach_core.workflows.executor import run_due
    from outreach_core.workflows.tick import tick

    migrate()
    team = create_team(f"bench-{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    seed(team.team_id, args.items)
    analyze()
    print(
        f"seeded {args.items:,} interested contacts (half New York, half Los Angeles) who "
        f"wrote 3 h before {CLOCK:%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    tick_s, requests = sensor_tick()
    after_first = counts(team.team_id)
    print(
        f"sensor tick: {after_first['executions']:,} executions created in {tick_s:.2f} s "
        f"(the team's defaults installed first); {requests} run requested",
        flush=True,
    )
    analyze()
    overlapping: list[float] = []

    def again() -> None:
        t = time.perf_counter()
        tick(CLOCK)
        overlapping.append(time.perf_counter() - t)

    threads = [threading.Thread(target=again) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after_overlap = counts(team.team_id)
    print(
        f"two more ticks at once ({', '.join(f'{s:.2f} s' for s in overlapping)}): "
        f"{after_overlap['executions'] - after_first['executions']} executions added",
        flush=True,
    )

    settings = get_settings()
    settings.followups_per_team_per_minute = args.rate
    execution_started = time.perf_counter()

    def clock() -> datetime:
        return CLOCK + timedelta(seconds=time.perf_counter() - execution_started)

    deadline = execution_started + args.execute_seconds
    completed = rescheduled = 0
    while time.perf_counter() < deadline:
        stats = run_due(team.team_id, clock=clock, max_executions=max(1, args.rate // 60))
        completed += stats.completed
        rescheduled += sum(stats.rescheduled.values())
        if stats.stopped:
            print(f"run stopped: {stats.stopped}", flush=True)
        elapsed = time.perf_counter() - execution_started
        print(
            f"{elapsed:5.1f} s: {completed:,} follow-ups queued, {rescheduled:,} rescheduled "
            "to their window",
            flush=True,
        )
    elapsed = time.perf_counter() - execution_started
    rate = completed / elapsed * 60
    print(
        f"executed {completed:,} in {elapsed:.1f} s: {rate:,.0f}/min against the configured "
        f"{args.rate:,}/min ({rate / args.rate:.1%}); {rescheduled:,} Los Angeles ones "
        "rescheduled to 09:00 there",
        flush=True,
    )
    final = counts(team.team_id)
    figures = {
        "bench": "followups",
        "items": args.items,
        "tick_s": round(tick_s, 2),
        "executions": final["executions"],
        "duplicates": int(final["duplicates"]),
        "outside_window": outside_window(team.team_id),
    }
    if not args.keep:
        with tenant_session(team.team_id) as s:
            for table in ("messages", "workflow_executions", "inbox_items", "inbound_messages"):
                s.execute(text(f"DELETE FROM {table}"))
            s.execute(text("DELETE FROM teams WHERE id = :t"), {"t": team.team_id})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
