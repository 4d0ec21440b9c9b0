"""Inbound webhook benchmark: signed Twilio SMS webhooks (`POST /webhooks/twilio/sms`) at a
fixed concurrency against the real API, served as the README serves it (`uvicorn
outreach_api.main:app --workers N`, a child process), then every request checked in
PostgreSQL: stored once, processed, one inbox item, at most one answer. At concurrency 32
the workers are in a burst (more in flight than OUTREACH_WEBHOOK_INLINE_MAX_IN_FLIGHT):
each webhook stores and classifies its message and answers, and the messages it queued are
processed afterwards the way the replies run does, timed apart.

    .venv/bin/python bench/webhook.py [--requests 20000] [--concurrency 32] [--workers 2]
        [--leads 10000] [--warmup 500] [--unknown-share 0.1] [--ny-daytime] [--sms-cap USD]
        [--profile N]

Setup (a fresh team on a database that may be fresh: migrated first): `--leads` leads in
New York (zip 10001) with distinct phones, one sending number and an active campaign from
it whose messages are marked delivered two hours ago, as if the replies answered them.
Each request is a webhook as Twilio posts it (its usual ~20 form fields), with a unique
MessageSid, From a lead's phone (`--unknown-share` from phones no lead has), a Body drawn
from `tests/data/replies_labelled.yaml` in the mix `MIX`, and `X-Twilio-Signature` from the
twilio package's RequestValidator for OUTREACH_PUBLIC_BASE_URL + path.

The load generator is cheap on purpose (2 cores shared by it, the workers and PostgreSQL):
every request is pre-built as raw HTTP/1.1 bytes (signature included) before the timed
phase, and `--concurrency` keep-alive connections (asyncio streams, uvloop when installed)
each send their share one after the other. A warm-up of `--warmup` requests (other SIDs,
not counted in the figures) first opens the database pools and loads the rules.

Quiet hours use the API's real clock: while it is night in New York, answers that are not
opt-out or help confirmations become reviews; the figures say how many were answered and
how many queued. `--ny-daytime` runs the API workers with their clock at 10:00 in New York
(a winter Thursday, ticking) through `time_machine`, started by a `sitecustomize` on the
workers' PYTHONPATH, so the heavier auto-reply path is measured whatever the hour.

`--profile N` starts no server: it drives the ASGI app in this process, one request at a
time, N requests measured plainly (wall, CPU, SQL statements) then N under cProfile, and
prints where a request's time goes.

Uses OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME. The last line
printed is one JSON object with the figures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import pstats
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.send import (  # noqa: E402
    SEND_CLOCK,
    active_campaign,
    free_port,
    lead_phone,
    quantile,
    seed_leads,
)

OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
REPLIES = ROOT / "tests" / "data" / "replies_labelled.yaml"
SMS_PATH = "/webhooks/twilio/sms"
BENCH_TOKEN = "webhook-bench-auth-token"
BENCH_ACCOUNT_SID = "AC" + "be" * 16
# Share of each labelled class among the replies (cold outreach: many opt-outs and refusals).
MIX = {
    "opt-out": 0.20,
    "not-interested": 0.15,
    "interested": 0.17,
    "question": 0.15,
    "email-capture": 0.08,
    "thank-you": 0.10,
    "other": 0.15,
}
# NYC area code no seeded lead has (bench.send numbers leads in 212/646/917/347/718).
UNKNOWN_AREA = "929"
TARGET_RPS, TARGET_P99_MS = 700, 100
NY = ZoneInfo("America/New_York")
TICK = os.sysconf("SC_CLK_TCK")
# The in-process profile's public base URL (no server: only the signature needs it).
PROFILE_BASE = "http://127.0.0.1:8000"


# --------------------------------------------------------------------------- seed


@dataclass(frozen=True)
class Setup:
    team_id: uuid.UUID
    campaign_id: uuid.UUID
    number: str
    leads: int


def prepare(leads: int, analyze: bool, sms_cap: float | None = None) -> Setup:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine, tenant_session
    from outreach_core.db.migrate import migrate
    from outreach_core.teams import create_team

    started = time.perf_counter()
    migrate()
    team = create_team(f"bench-webhook-{uuid.uuid4().hex[:6]}")
    seed_leads(team.team_id, leads)
    campaign_id, number, enrolled = active_campaign(team.team_id, leads)
    if enrolled != leads:
        raise SystemExit(f"only {enrolled} of {leads} leads enrolled")
    sent_at = datetime.now(UTC) - timedelta(hours=2)
    with tenant_session(team.team_id) as session:
        # Replies answer texts that went out: the campaign's messages as the send engine and
        # the status callbacks would have left them.
        session.execute(
            text(
                "UPDATE messages SET status = 'delivered', attempts = 1, claimed_at = :at, "
                "sent_at = :at, updated_at = :at, "
                "provider_sid = 'SM' || replace(id::text, '-', '') "
                "WHERE team_id = :t AND campaign_id = :c"
            ),
            {"t": team.team_id, "c": campaign_id, "at": sent_at},
        )
    if sms_cap is not None:
        from outreach_core.costs.budget import set_monthly_cap
        from outreach_core.db.states import CostCategory

        # With a cap, every auto-reply locks the team's budget row until its commit.
        set_monthly_cap(team.team_id, CostCategory.SMS, str(sms_cap))
    if analyze:
        # A live database has statistics; fresh bulk loads have none until autovacuum runs,
        # which would otherwise change plans in the middle of the run.
        with owner_engine().begin() as conn:
            for table in ("leads", "messages", "campaigns", "sending_numbers"):
                conn.execute(text(f"ANALYZE {table}"))
    print(
        f"team {team.team_id}: {leads:,} New York leads, campaign {campaign_id} from {number} "
        f"(its {enrolled:,} messages marked delivered); setup {time.perf_counter() - started:.1f} s"
        f"{', tables analyzed' if analyze else ''}"
        f"{f', monthly SMS cap ${sms_cap:,.0f}' if sms_cap is not None else ''}"
    )
    return Setup(team.team_id, campaign_id, number, leads)


def load_replies() -> dict[str, list[tuple[str, str | None]]]:
    """The labelled SMS texts by class, with Twilio's OptOutType where it sent one."""
    import yaml

    items = yaml.safe_load(REPLIES.read_text(encoding="utf-8"))["replies"]
    by_class: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for item in items:
        if item.get("is_call") or not str(item.get("text", "")).strip():
            continue
        by_class[item["expected"]].append((str(item["text"]), item.get("opt_out_type")))
    missing = [name for name in MIX if not by_class.get(name)]
    if missing:
        raise SystemExit(f"no labelled replies of class {missing} in {REPLIES}")
    return by_class


@dataclass(frozen=True)
class Webhook:
    sid: str
    body: bytes  # the urlencoded form
    signature: str
    kind: str  # the labelled class of its text
    known: bool  # From is a lead's phone


def build_webhooks(
    count: int, setup: Setup, public_url: str, unknown_share: float, rng: random.Random
) -> list[Webhook]:
    """`count` signed webhooks, as Twilio posts an inbound SMS."""
    from twilio.request_validator import RequestValidator

    replies = load_replies()
    validator = RequestValidator(BENCH_TOKEN)
    kinds, weights = list(MIX), list(MIX.values())
    hooks = []
    for kind in rng.choices(kinds, weights, k=count):
        text, opt_out_type = rng.choice(replies[kind])
        known = rng.random() >= unknown_share
        sender = (
            lead_phone(rng.randrange(setup.leads))
            if known
            else f"+1{UNKNOWN_AREA}555{rng.randrange(10_000):04d}"
        )
        sid = f"SM{uuid.uuid4().hex}"
        params = {
            "ToCountry": "US",
            "ToState": "NY",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "NEW YORK",
            "FromZip": "10001",
            "SmsSid": sid,
            "FromState": "NY",
            "SmsStatus": "received",
            "FromCity": "NEW YORK",
            "Body": text,
            "FromCountry": "US",
            "To": setup.number,
            "ToZip": "10001",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": BENCH_ACCOUNT_SID,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        if opt_out_type:
            params["OptOutType"] = opt_out_type
        signature = validator.compute_signature(public_url, params)
        hooks.append(Webhook(sid, urlencode(params).encode(), signature, kind, known))
    return hooks


def raw_request(hook: Webhook, host: str) -> bytes:
    head = (
        f"POST {SMS_PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: TwilioProxy/1.1\r\n"
        "Accept: */*\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(hook.body)}\r\n"
        f"X-Twilio-Signature: {hook.signature}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + hook.body


# ----------------------------------------------------------------- load generator


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    answered: int = 0  # TwiML carrying a <Message>: an SMS goes back at once
    reconnects: int = 0
    # (seconds into the phase, seconds after its request was sent) of each failure.
    failed_at: list[tuple[float, float]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + sum(
            self.failures.values()
        )


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_streams(port: int, count: int) -> list[Stream]:
    """Opened one at a time, each used once before the next opens: a worker accepts every
    connection already pending when it wakes, so opening them all at once can hand most
    of them to one worker."""
    streams = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(content_length(head))
        streams.append((reader, writer))
    return streams


def content_length(head: bytes) -> int:
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        raise ValueError("answer without Content-Length")
    return int(head[start + 17 : head.index(b"\r\n", start + 2)])


async def drive(
    port: int, streams: list[Stream], requests: list[bytes]
) -> tuple[Tally, float, float]:
    """Every connection sends its share sequentially; (tally, start, wall seconds)."""
    tally = Tally()
    perf = time.perf_counter
    latencies, done_at, statuses = tally.latencies, tally.done_at, tally.statuses

    async def connection(index: int) -> None:
        reader, writer = streams[index]
        for request in requests[index :: len(streams)]:
            sent = perf()
            try:
                # No drain(): a request is ~1 KB and the answer is awaited before the next
                # one, so the transport's buffer never builds up.
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(content_length(head))
            except (
                OSError,
                ValueError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ) as exc:
                tally.failures[type(exc).__name__] += 1
                tally.failed_at.append((sent - started, perf() - sent))
                writer.close()
                reader, writer = streams[index] = await asyncio.open_connection("127.0.0.1", port)
                tally.reconnects += 1
                continue
            ended = perf()
            latencies.append(ended - sent)
            done_at.append(ended)
            statuses[int(head[9:12])] += 1
            if b"<Message>" in body:
                tally.answered += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = streams[index] = await asyncio.open_connection("127.0.0.1", port)
                tally.reconnects += 1

    started = perf()
    await asyncio.gather(*(connection(i) for i in range(len(streams))))
    return tally, started, perf() - started


def run_load(
    port: int,
    concurrency: int,
    warmup: list[bytes],
    timed: list[bytes],
    before_timed: Callable[[], None],
) -> tuple[Tally, Tally, float, float]:
    """(warm-up tally, timed tally, timed start, timed wall seconds); `before_timed` runs
    between the two, connections open."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> tuple[Tally, Tally, float, float]:
        streams = await open_streams(port, concurrency)
        warm, _, _ = await drive(port, streams, warmup)
        before_timed()
        tally, started, wall = await drive(port, streams, timed)
        for _, writer in streams:
            writer.close()
        return warm, tally, started, wall

    return asyncio.run(main())


# ------------------------------------------------------------------------- the API


def clock_shim(moment: datetime) -> Path:
    """A directory holding a `sitecustomize` that starts the API workers' clock at `moment`
    (ticking): uvicorn spawns its workers, so patching this process would not reach them."""
    shim = Path(tempfile.mkdtemp(prefix="bench-webhook-clock-"))
    (shim / "sitecustomize.py").write_text(
        "import datetime, time_machine\n"
        f"time_machine.travel(datetime.datetime.fromisoformat({moment.isoformat()!r}), "
        "tick=True).start()\n",
        encoding="utf-8",
    )
    return shim


@contextlib.contextmanager
def api_process(env: dict[str, str], port: int, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    """`uvicorn outreach_api.main:app --workers N` on loopback, as the README serves it
    (uvicorn's defaults: access log on, into bench/out/webhook-api.log), until every worker
    has started (counted in its log: /healthz alone would only prove one)."""
    import httpx

    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / "webhook-api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "uvicorn"), "outreach_api.main:app", "--workers", str(workers)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the API exited; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {log_path}")
                started = log_path.read_text(errors="replace").count("Application startup complete")
                if started >= workers:
                    with contextlib.suppress(httpx.TransportError):
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success:
                            break
                time.sleep(0.1)
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# ----------------------------------------------------------------------------- CPU


@dataclass(frozen=True)
class ProcTimes:
    comm: str
    ppid: int
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: its children that exited and were waited for


def proc_table() -> dict[int, ProcTimes]:
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        left, right = raw.index(b"("), raw.rindex(b")")
        rest = raw[right + 2 :].split()
        table[int(entry.name)] = ProcTimes(
            raw[left + 1 : right].decode(errors="replace"),
            int(rest[1]),
            (int(rest[11]) + int(rest[12])) / TICK,
            (int(rest[13]) + int(rest[14])) / TICK,
        )
    return table


def tree(table: dict[int, ProcTimes], root: int) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, times in table.items():
        children[times.ppid].append(pid)
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in table and pid not in found:
            found.add(pid)
            stack.extend(children[pid])
    return found


def cpu_between(before: dict[int, ProcTimes], after: dict[int, ProcTimes], pids: set[int]) -> float:
    """CPU seconds the processes `pids` (as of `after`) used in between, with the children
    they reaped meanwhile."""
    total = 0.0
    for pid in pids:
        now, then = after[pid], before.get(pid)
        if then is None or then.comm != now.comm:
            total += now.own + now.reaped
        else:
            total += now.own - then.own + now.reaped - then.reaped
    return total


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (not idle, not waiting for I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK


def connections_by_pid(pids: set[int], port: int) -> dict[int, int]:
    """Established connections to `port` each of `pids` holds (from /proc/net/tcp)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(name).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    counts = {}
    for pid in pids:
        n = 0
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    n += os.readlink(fd.path) in inodes
        counts[pid] = n
    return counts


# ------------------------------------------------------------------------ database


def scalar(sql: str, **params: Any) -> Any:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().connect() as conn:
        return conn.scalar(text(sql), params)


def server_counters() -> dict[str, float]:
    """The database's sessions and transactions, and the server's WAL flushes."""
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().connect() as conn:
        db = conn.execute(
            text(
                "SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one()
    with owner_engine().connect() as conn:
        try:
            wal = conn.execute(text("SELECT wal_bytes, wal_sync FROM pg_stat_wal")).one()
        except Exception:  # noqa: BLE001 - PostgreSQL < 14 or >= 18: the WAL figures are optional
            wal = None
    return {
        "sessions": db.sessions,
        "commits": db.xact_commit,
        "rollbacks": db.xact_rollback,
        "wal_bytes": float(wal.wal_bytes) if wal else 0.0,
        "wal_syncs": wal.wal_sync if wal else 0,
    }


def postmaster_pid() -> int | None:
    """None when the server runs on another machine (or in another PID namespace)."""
    backend = proc_table().get(int(scalar("SELECT pg_backend_pid()")))
    return backend.ppid if backend is not None and backend.comm.startswith("postgres") else None


def server_processes(table: dict[int, ProcTimes], postmaster: int, database: str) -> set[int]:
    """The server's backends for `database` and its shared processes (WAL writer,
    checkpointer...), not other databases' backends: tests may share the server."""
    ours = set()
    for pid in tree(table, postmaster) - {postmaster}:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # A backend's title: "postgres: 15/main: <user> <database> <client> <state>".
        if f" {database} " in title:
            ours.add(pid)
        elif not any(mark in title for mark in ("(", "[local]", "autovacuum worker", "parallel")):
            ours.add(pid)  # not another database's: WAL writer, checkpointer, ...
    return ours


@dataclass
class Stored:
    inbound: dict[str, int]  # by status
    sids: set[str]
    duplicate_sids: int
    inbox_items: int
    inbox_twice: int
    handling: dict[str, int]
    answers: dict[str, int]  # outbound messages answering an inbound, by kind/status
    answered_twice: int
    reviews: dict[str, int]  # by reason, numbers blanked
    failures: dict[str, int]  # processing errors


def stored(team_id: uuid.UUID) -> Stored:
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session

    def grouped(session: Any, sql: str) -> dict[str, int]:
        rows = session.execute(text(sql), {"t": team_id}).all()
        return {str(key): int(n) for key, n in sorted(rows, key=lambda r: -r[1])}

    with tenant_session(team_id) as s:
        t = {"t": team_id}
        sids = set(
            s.scalars(text("SELECT provider_sid FROM inbound_messages WHERE team_id = :t"), t)
        )
        return Stored(
            inbound=grouped(
                s, "SELECT status, count(*) FROM inbound_messages WHERE team_id = :t GROUP BY 1"
            ),
            sids=sids,
            duplicate_sids=int(
                s.scalar(
                    text(
                        "SELECT count(*) - count(DISTINCT provider_sid) FROM inbound_messages "
                        "WHERE team_id = :t"
                    ),
                    t,
                )
            ),
            inbox_items=int(
                s.scalar(text("SELECT count(*) FROM inbox_items WHERE team_id = :t"), t)
            ),
            inbox_twice=int(
                s.scalar(
                    text(
                        "SELECT count(*) - count(DISTINCT inbound_id) FROM inbox_items "
                        "WHERE team_id = :t"
                    ),
                    t,
                )
            ),
            handling=grouped(
                s, "SELECT handling, count(*) FROM inbox_items WHERE team_id = :t GROUP BY 1"
            ),
            answers=grouped(
                s,
                "SELECT kind || '/' || status, count(*) FROM messages "
                "WHERE team_id = :t AND reply_to IS NOT NULL GROUP BY 1",
            ),
            answered_twice=int(
                s.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT reply_to FROM messages WHERE team_id = :t "
                        "AND reply_to IS NOT NULL GROUP BY reply_to HAVING count(*) > 1) twice"
                    ),
                    t,
                )
            ),
            reviews=grouped(
                s,
                "SELECT split_part(regexp_replace(reason, '[0-9]+', 'N', 'g'), ' (', 1), count(*) "
                "FROM reviews WHERE team_id = :t GROUP BY 1",
            ),
            failures=grouped(
                s,
                "SELECT left(error, 160), count(*) FROM inbound_messages WHERE team_id = :t "
                "AND status = 'processing_failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            ),
        )


# --------------------------------------------------------------------------- bench


def finite(value: float, digits: int) -> float | None:
    """For the JSON line: NaN (not measured) is not JSON."""
    return None if math.isnan(value) else round(value, digits)


def longest_pause(done_at: list[float], started: float) -> tuple[float, float]:
    """The longest time no request was answered: (seconds, when it began, into the phase)."""
    stamps = [started, *sorted(done_at)]
    gap, at = max((b - a, a) for a, b in zip(stamps, stamps[1:], strict=False))
    return gap, at - started


def per_second(done_at: list[float], started: float) -> tuple[int, int]:
    """The slowest and fastest whole second of the timed phase (requests answered)."""
    buckets = Counter(int(t - started) for t in done_at)
    whole = [buckets[s] for s in range(max(buckets, default=0))]  # the last one is partial
    return (min(whole), max(whole)) if whole else (len(done_at), len(done_at))


def bench(args: argparse.Namespace, setup: Setup) -> None:
    from outreach_core.db.engine import owner_url

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    started = time.perf_counter()
    hooks = build_webhooks(
        args.warmup + args.requests, setup, base + SMS_PATH, args.unknown_share, rng
    )
    host = f"127.0.0.1:{port}"
    requests = [raw_request(hook, host) for hook in hooks]
    warmup, timed = requests[: args.warmup], requests[args.warmup :]
    mix = Counter(hook.kind for hook in hooks[args.warmup :])
    unknown = sum(not hook.known for hook in hooks[args.warmup :])
    print(
        f"{len(requests):,} signed webhooks built in {time.perf_counter() - started:.1f} s "
        f"({sum(map(len, timed)) / len(timed):.0f} bytes each on average); timed mix "
        + ", ".join(f"{k} {n / len(timed):.0%}" for k, n in mix.most_common())
        + f"; {unknown / len(timed):.0%} from unknown senders"
    )
    # The request list is never freed during the run: keep the collector from rescanning it.
    gc.collect()
    gc.freeze()

    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": owner_url().render_as_string(hide_password=False),
        "TWILIO_ACCOUNT_SID": BENCH_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": BENCH_TOKEN,
        "OUTREACH_PUBLIC_BASE_URL": base,
        "OUTREACH_PROVIDER_MODE": "sandbox",
    }
    # Templates only: an LLM endpoint left in the environment would put its latency in ours.
    env.pop("OUTREACH_LLM_BASE_URL", None)
    shim = None
    if args.ny_daytime:
        shim = clock_shim(SEND_CLOCK)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    postmaster = postmaster_pid()
    database = str(scalar("SELECT current_database()"))
    snapshot: dict[str, Any] = {}
    try:
        with api_process(env, port, args.workers) as api:
            print(
                f"API {base} (uvicorn pid {api.pid}, {args.workers} workers, "
                f"clock {'10:00 in New York (time_machine)' if shim else 'real'}); "
                f"{args.warmup:,} warm-up then {args.requests:,} requests over "
                f"{args.concurrency} connections"
            )

            def before_timed() -> None:
                snapshot["server"] = server_counters()
                snapshot["procs"] = procs = proc_table()
                snapshot["connections"] = connections_by_pid(tree(procs, api.pid), port)
                snapshot["busy"] = machine_busy()
                snapshot["load"] = os.getloadavg()[0]
                snapshot["cpu"] = time.process_time()  # last: the generator alone from here

            warm, tally, start, wall = run_load(port, args.concurrency, warmup, timed, before_timed)
            generator_cpu = time.process_time() - snapshot["cpu"]
            after = proc_table()
            busy = machine_busy() - snapshot["busy"]
            load_after = os.getloadavg()[0]
            server = server_counters()
            api_pids = tree(after, api.pid)
            api_cpu = {pid: cpu_between(snapshot["procs"], after, {pid}) for pid in api_pids}
            connections: dict[int, int] = snapshot["connections"]
            pg_cpu = (
                cpu_between(snapshot["procs"], after, server_processes(after, postmaster, database))
                if postmaster is not None
                else float("nan")
            )
    finally:
        if shim is not None:
            for path in shim.iterdir():
                path.unlink()
            shim.rmdir()
    gc.unfreeze()

    queued, drain_s = drain(setup.team_id, SEND_CLOCK if shim else None)
    db = stored(setup.team_id)
    sent_sids = {hook.sid for hook in hooks}
    missing, foreign = len(sent_sids - db.sids), len(db.sids - sent_sids)
    stored_rows = sum(db.inbound.values())
    duplicates = db.duplicate_sids + db.answered_twice
    answers_sent = sum(n for key, n in db.answers.items() if key.endswith("/sent"))
    n = len(tally.latencies)
    ms = sorted(x * 1000 for x in tally.latencies)
    rps = n / wall
    p50, p90, p99 = (quantile(ms, q) for q in (0.5, 0.9, 0.99))
    slowest_s, fastest_s = per_second(tally.done_at, start)
    pause_s, pause_at = longest_pause(tally.done_at, start)
    api_total = sum(api_cpu.values())
    delta = {k: server[k] - snapshot["server"][k] for k in server}
    other_cpu = busy - api_total - generator_cpu - pg_cpu
    ny_now = (SEND_CLOCK if shim else datetime.now(UTC)).astimezone(NY)

    print(
        f"\n{n:,} requests in {wall:.2f} s: {rps:,.0f}/s (whole seconds {slowest_s:,}-"
        f"{fastest_s:,}/s); latency p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, "
        f"max {ms[-1]:.1f} ms, mean {sum(ms) / n:.1f} ms"
    )
    print(
        f"longest pause with no answer {pause_s * 1000:.0f} ms ({pause_at:.1f} s into the phase)"
        + "".join(
            f"; failure {at:.1f} s into the phase, {after * 1000:.0f} ms after its request"
            for at, after in tally.failed_at[:5]
        )
    )
    print(
        f"answers: {dict(tally.statuses)}; transport failures {dict(tally.failures) or 0}; "
        f"reconnects {tally.reconnects}; warm-up {dict(warm.statuses)}"
        + (f" and failures {dict(warm.failures)}" if warm.failures else "")
    )
    if tally.statuses.get(429) or warm.statuses.get(429):
        print("THROTTLED: the API answered 429 (outreach_api/limits.py); the figures are not valid")
    print(
        f"CPU during the timed phase ({busy:.1f} s busy of {wall * (os.cpu_count() or 1):.1f} "
        f"s on {os.cpu_count()} cores): API {api_total:.1f} s ({api_total * 1000 / n:.2f} ms a "
        f"request), PostgreSQL {pg_cpu:.1f} s ({pg_cpu * 1000 / n:.2f} ms a request: this "
        f"database's backends and the shared processes), "
        f"generator {generator_cpu:.1f} s ({generator_cpu * 1e6 / n:.0f} us a request), "
        f"other {other_cpu:.1f} s; load average {snapshot['load']:.1f} -> {load_after:.1f}"
    )
    print(
        "  API processes (pid: CPU s, connections): "
        + ", ".join(
            f"{pid}{' (supervisor)' if pid == api.pid else ''}: {api_cpu[pid]:.1f} s, "
            f"{connections.get(pid, 0)}"
            for pid in sorted(api_cpu)
        )
    )
    print(
        f"PostgreSQL during the timed phase: {delta['commits'] / n:.2f} commits and "
        f"{delta['rollbacks'] / n:.2f} rollbacks a request, {delta['wal_syncs'] / n:.2f} WAL "
        f"flushes a request ({delta['wal_syncs'] / wall:,.0f}/s), "
        f"{delta['wal_bytes'] / n / 1024:.1f} KiB of WAL a request, "
        f"{int(delta['sessions']):,} new sessions"
    )
    print(
        f"stored: {stored_rows:,} inbound rows for {len(sent_sids):,} SIDs sent (warm-up "
        f"included); {missing} missing, {foreign} unexpected, {db.duplicate_sids} duplicate "
        f"SIDs; by status {db.inbound}"
    )
    print(
        f"inbox: {db.inbox_items:,} items ({db.inbox_twice} twice for one message), by handling "
        f"{db.handling}"
    )
    print(
        f"answers: {warm.answered + tally.answered:,} TwiML replies carried a message "
        f"({answers_sent:,} answers recorded sent); outbound answers by kind/status "
        f"{db.answers}; {db.answered_twice} inbound messages answered twice"
    )
    print(f"reviews (queued for a person) by reason: {db.reviews}")
    print(
        f"queued by the webhook in the burst, processed afterwards as the replies run does "
        f"(process_pending, one process): {queued:,} in {drain_s:.1f} s"
        + (f" ({queued / drain_s:,.0f}/s)" if queued else "")
    )
    if db.failures:
        print(f"processing failures: {db.failures}")
    print(f"New York time for the API's quiet hours: {ny_now:%Y-%m-%d %H:%M %a}")
    target_met = rps >= TARGET_RPS and p99 < TARGET_P99_MS and tally.errors == 0
    print(
        f"target {TARGET_RPS}/s with p99 under {TARGET_P99_MS} ms at concurrency 32: "
        f"{'met' if target_met else 'NOT met'}"
    )
    figures = {
        "bench": "webhook",
        "requests": n,
        "rps": round(rps, 1),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "errors": tally.errors,
        "stored": stored_rows,
        "duplicates": duplicates,
        "p90_ms": round(p90, 1),
        "max_ms": round(ms[-1], 1),
        "seconds": round(wall, 2),
        "slowest_second_rps": slowest_s,
        "longest_pause_ms": round(pause_s * 1000),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "leads": setup.leads,
        "warmup": args.warmup,
        "warmup_errors": warm.errors,
        "http_429": tally.statuses.get(429, 0) + warm.statuses.get(429, 0),
        "expected_stored": len(sent_sids),
        "missing": missing,
        "processed": db.inbound.get("processed", 0),
        "processing_failed": db.inbound.get("processing_failed", 0),
        "inbox_items": db.inbox_items,
        "answered": warm.answered + tally.answered,
        "auto_replies": db.handling.get("auto_reply", 0),
        "reviews": sum(db.reviews.values()),
        "opt_outs": db.handling.get("opt_out", 0),
        "suppressed": db.handling.get("suppressed", 0),
        "queued": queued,
        "queued_processed_per_s": round(queued / drain_s, 1) if queued else None,
        "api_cpu_ms_per_request": round(api_total * 1000 / n, 2),
        "pg_cpu_ms_per_request": finite(pg_cpu * 1000 / n, 2),
        "generator_cpu_us_per_request": round(generator_cpu * 1e6 / n),
        "api_cpu_s": round(api_total, 1),
        "pg_cpu_s": finite(pg_cpu, 1),
        "generator_cpu_s": round(generator_cpu, 1),
        "other_cpu_s": finite(other_cpu, 1),
        "machine_busy_s": round(busy, 1),
        "commits_per_request": round(delta["commits"] / n, 2),
        "wal_syncs_per_request": round(delta["wal_syncs"] / n, 2),
        "new_sessions": int(delta["sessions"]),
        "clock": "ny-daytime" if shim else "real",
        "sms_cap": args.sms_cap,
        "ny_time": f"{ny_now:%H:%M}",
        "cpus": os.cpu_count(),
        "target_met": target_met,
    }
    print(json.dumps(figures))


def drain(team_id: uuid.UUID, clock: datetime | None) -> tuple[int, float]:
    """Process what the webhook queued during the burst, as the replies run would (on the
    API's clock); how many were queued, and the seconds it took."""
    import time_machine

    from outreach_core.inbox.retry import process_pending

    queued = int(
        scalar(
            "SELECT count(*) FROM inbound_messages WHERE team_id = :t AND status = 'queued'",
            t=team_id,
        )
    )
    started = time.perf_counter()
    with time_machine.travel(clock, tick=True) if clock else contextlib.nullcontext():
        while process_pending(team_id, log_progress=lambda _: None):
            pass
    return queued, time.perf_counter() - started


# ------------------------------------------------------------------------- profile


async def call_asgi(app: Callable[..., Awaitable[None]], hook: Webhook) -> int:
    """One webhook through the ASGI app, as uvicorn would hand it over; the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": SMS_PATH,
        "raw_path": SMS_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(hook.body)).encode()),
            (b"x-twilio-signature", hook.signature.encode()),
        ],
        "client": ("127.0.0.1", 50_000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": hook.body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client waits for its answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


class Statements:
    """SQL statements and their wall time, pool check-outs (each one a pre-ping round trip)
    and new connections, from the engine's events."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.checkouts = 0
        self.connects = 0
        self.on = False

    def install(self) -> None:
        from sqlalchemy import event

        from outreach_core.db.engine import app_engine

        engine = app_engine()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, _c: Any, statement: str, *_: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, _c: Any, statement: str, *_: Any) -> None:
            if self.on:
                key = shape(statement)
                self.count[key] += 1
                self.seconds[key] += time.perf_counter() - conn.info.pop("bench_started")

        @event.listens_for(engine, "checkout")
        def _checkout(*_: Any) -> None:
            self.checkouts += self.on

        @event.listens_for(engine, "connect")
        def _connect(*_: Any) -> None:
            self.connects += self.on


def shape(statement: str) -> str:
    """A statement's kind and table, for grouping: `SELECT leads`, `INSERT inbox_items`."""
    flat = " ".join(statement.split())
    verb = flat.split(" ", 1)[0].upper()
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([a-z_]+)", flat, re.IGNORECASE)
    lock = " FOR UPDATE" if flat.endswith("FOR UPDATE") else ""
    if "set_config" in flat:
        return "SELECT set_config (tenant)"
    if "outreach_number_team" in flat:
        return "SELECT outreach_number_team() (route)"
    return f"{verb} {table.group(1) if table else flat[:40]}{lock}"


class PhaseClock:
    """CPU (this thread) and wall time spent inside chosen functions, inclusive of what they
    call, by wrapping them where the webhook looks them up: a few wrapped calls a request,
    so unlike cProfile it does not inflate call-heavy code."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()
        self.wall: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.labels: list[str] = []
        self._undo: list[tuple[Any, str, Any]] = []

    def _timed(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        cpu, wall, calls = self.cpu, self.wall, self.calls

        if asyncio.iscoroutinefunction(func):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                c, w = time.thread_time(), time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    cpu[label] += time.thread_time() - c
                    wall[label] += time.perf_counter() - w
                    calls[label] += 1

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            c, w = time.thread_time(), time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                cpu[label] += time.thread_time() - c
                wall[label] += time.perf_counter() - w
                calls[label] += 1

        return timed

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        if isinstance(original, classmethod):
            wrapped: Any = classmethod(self._timed(label, original.__func__))
        else:
            wrapped = self._timed(label, original)
        setattr(owner, name, wrapped)
        self._undo.append((owner, name, original))
        self.labels.append(label)

    def unwrap(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def install_phases(clock: PhaseClock) -> None:
    from sqlalchemy.orm import Session
    from twilio.request_validator import RequestValidator

    from outreach_api.routes import webhooks
    from outreach_core.inbox import processing
    from outreach_core.replies.classify import ReplyClassifier

    clock.wrap(webhooks, "signed_form", "signed_form: form parsing + signature")
    clock.wrap(RequestValidator, "validate", "  RequestValidator.validate (2 HMAC-SHA1)")
    clock.wrap(webhooks, "receive", "receive(): store, then process or queue")
    clock.wrap(processing, "store", "  store (route + insert, one statement)")
    clock.wrap(processing, "queue", "  queue (classify, one statement)")
    clock.wrap(processing, "process", "  process (one transaction)")
    clock.wrap(processing._Context, "load", "    _Context.load (team, lead, flags, ...)")
    clock.wrap(processing, "_handle", "    _handle")
    clock.wrap(processing, "keyword_intent", "      keyword_intent")
    clock.wrap(ReplyClassifier, "classify", "      ReplyClassifier.classify")
    clock.wrap(processing, "_record", "      _record (inbox item, conversation)")
    clock.wrap(processing, "_draft", "      _draft (template reply)")
    clock.wrap(processing, "check_quiet_hours", "      check_quiet_hours")
    clock.wrap(processing, "_why_not_automatic", "      _why_not_automatic")
    clock.wrap(processing, "_answer", "      _answer (outbound row, ledger)")
    clock.wrap(Session, "commit", "Session.commit, all (flush + COMMIT)")
    clock.wrap(Session, "flush", "Session.flush, all (ORM unit of work)")
    clock.wrap(Session, "get", "Session.get, all")
    clock.wrap(Session, "close", "Session.close, all (connection back to the pool)")


def package_of(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
    for ours in ("outreach_core", "outreach_api"):
        if f"/{ours}/" in path:
            return ours
    return "builtins/C" if path == "~" else "stdlib"


def profile(args: argparse.Namespace, setup: Setup) -> None:
    from pydantic import SecretStr

    from outreach_core.settings import get_settings

    settings = get_settings()
    settings.twilio_auth_token = SecretStr(BENCH_TOKEN)
    settings.public_base_url = PROFILE_BASE
    settings.llm_base_url = None
    from outreach_api.main import app
    from outreach_api.routes import webhooks

    async def inline(func: Callable[..., Any], *a: Any, **k: Any) -> Any:
        return func(*a, **k)

    # Everything on this thread (cProfile and thread_time see only their own): processing
    # runs here, not in the thread pool; the pool's hop is not measured.
    webhooks.run_in_threadpool = inline  # type: ignore[assignment]
    n = args.profile
    rng = random.Random(args.seed)
    hooks = build_webhooks(
        args.warmup + 3 * n, setup, PROFILE_BASE + SMS_PATH, args.unknown_share, rng
    )
    warm = hooks[: args.warmup]
    plain, phased, profiled = (
        hooks[args.warmup + i * n : args.warmup + (i + 1) * n] for i in range(3)
    )
    statements = Statements()
    statements.install()
    phases = PhaseClock()
    clock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if args.ny_daytime:
        import time_machine

        clock = time_machine.travel(SEND_CLOCK, tick=True)

    async def run(batch: list[Webhook]) -> Counter[int]:
        return Counter([await call_asgi(app, hook) for hook in batch])

    with clock:
        ny_now = datetime.now(UTC).astimezone(NY)
        asyncio.run(run(warm))
        statements.on = True
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        statuses = asyncio.run(run(plain))
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
        statements.on = False
        install_phases(phases)
        statuses += asyncio.run(run(phased))
        phases.unwrap()
        # A CPU timer, not wall: the question is where the 2 cores go; the wait for
        # PostgreSQL is measured apart (the statements' times).
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        statuses += asyncio.run(run(profiled))
        profiler.disable()

    db_s = sum(statements.seconds.values())
    print(
        f"\nin-process, one request at a time, New York time {ny_now:%H:%M}: "
        f"{wall * 1000 / n:.2f} ms wall and {cpu * 1000 / n:.2f} ms CPU a request (Python and "
        f"libpq); {db_s * 1000 / n:.2f} ms inside cursor.execute (round trips, PostgreSQL's "
        f"time included); answers {dict(statuses)}"
    )
    print(
        f"per request: {sum(statements.count.values()) / n:.1f} SQL statements, "
        f"{statements.checkouts / n:.1f} pool check-outs (each pings first: pool_pre_ping), "
        f"{statements.connects / n:.2f} new connections; psycopg adds a BEGIN before each "
        "transaction's first statement and the COMMIT, each its own round trip"
    )
    print(f"  {'statement':<45} {'a request':>9} {'ms each':>8}")
    for key, count in statements.count.most_common():
        print(f"  {key:<45} {count / n:>9.2f} {statements.seconds[key] * 1000 / count:>8.3f}")

    print(f"\ntime inside functions, inclusive (second batch of {n:,}, wrapped):")
    print(f"  {'':<48} {'calls':>6} {'CPU ms':>7} {'wall ms':>8}")
    for label in phases.labels:
        if phases.calls[label]:
            print(
                f"  {label:<48} {phases.calls[label] / n:>6.2f} "
                f"{phases.cpu[label] * 1000 / n:>7.3f} {phases.wall[label] * 1000 / n:>8.3f}"
            )

    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    calls = sum(v[1] for v in raw.values())
    by_package: Counter[str] = Counter()
    for (path, _, _), (_, _, own, _, _) in raw.items():
        by_package[package_of(path)] += own
    total_own = sum(by_package.values())
    waits = sum(v[1] for (path, _, name), v in raw.items() if name == "wait" and "psycopg" in path)
    print(
        f"\ncProfile, CPU timer (third batch): {calls / n:,.0f} Python function calls and "
        f"{waits / n:.1f} psycopg waits (round trips) a request; the profiler inflates "
        f"call-heavy code, so read shares, not milliseconds. Own CPU by package: "
        + ", ".join(f"{pkg} {own / total_own:.0%}" for pkg, own in by_package.most_common(10))
    )
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(r"outreach_|sqlalchemy/orm/session", 30)
    figures = {
        "bench": "webhook-profile",
        "requests": n,
        "wall_ms": round(wall * 1000 / n, 2),
        "cpu_ms": round(cpu * 1000 / n, 2),
        "sql_ms": round(db_s * 1000 / n, 2),
        "statements": round(sum(statements.count.values()) / n, 1),
        "checkouts": round(statements.checkouts / n, 1),
        "round_trips": round(waits / n, 1),
        "python_calls": round(calls / n),
        "ny_time": f"{ny_now:%H:%M}",
        "errors": sum(c for s, c in statuses.items() if s != 200),
    }
    print(json.dumps(figures))


# -------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500, help="requests not counted")
    parser.add_argument("--unknown-share", type=float, default=0.1, help="From no lead has")
    parser.add_argument("--seed", type=int, default=7, help="of the request mix")
    parser.add_argument(
        "--ny-daytime",
        action="store_true",
        help="the API's clock at 10:00 in New York (ticking), so replies may auto-answer",
    )
    parser.add_argument("--no-analyze", action="store_true", help="skip ANALYZE after seeding")
    parser.add_argument(
        "--sms-cap",
        type=float,
        default=None,
        metavar="USD",
        help="give the team a monthly SMS budget (auto-replies then check it, locking its row)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="no server: profile N requests through the ASGI app in this process",
    )
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.leads < 1:
        parser.error("--requests, --concurrency and --leads must be positive")
    setup = prepare(args.leads, analyze=not args.no_analyze, sms_cap=args.sms_cap)
    if args.profile:
        profile(args, setup)
    else:
        bench(args, setup)


if __name__ == "__main__":
    main()
