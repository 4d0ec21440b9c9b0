"""Send benchmark: one campaign to 10,000 leads (all in New York, zip 10001) from one
sending number configured at 50 messages a second, through the real send engine
(`send_campaign`, the PostgreSQL rate limiter, the real `twilio` client) against the
sandbox Twilio on loopback, with the status callbacks posted to our real API.

    .venv/bin/python bench/send.py [--leads N] [--rate PER_S] [--analyze] [--no-breakdown]

The sandbox Twilio (throughput limit a little above the rate, so it never answers 429 at
the limit) and the API (`uvicorn`) run as child processes, so the CPU time measured here
is the send engine's alone; PostgreSQL is its own process and is not counted either. The
engine's clock is fixed at the next 15:00 UTC (10:00 in New York in winter), inside every
lead's 09:00-20:00 window (quiet hours are enforced at claim time); every sandbox-accepted
message is checked against that window again, independently, afterwards.

Uses OUTREACH_DATABASE_URL, else the embedded PostgreSQL under OUTREACH_HOME; works on a
fresh database (migrates, creates a team). The last line printed is one JSON object with
the figures."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent


def next_send_clock() -> datetime:
    """The next 15:00 UTC at or after now: 10:00 in New York in winter (11:00 in summer),
    inside every lead's 09:00-20:00 window. It must not run behind the real clock: the
    database dates each message's `not_before` with now(), and an engine clock behind it
    would find nothing due."""
    now = datetime.now(UTC)
    at = now.replace(hour=15, minute=0, second=0, microsecond=0)
    return at if at >= now else at + timedelta(days=1)


# The engine's clock, and the campaign's schedule start (so every message is due at it).
SEND_CLOCK = next_send_clock()
# NYC area codes; with exchange 555 each gives 10,000 distinct valid numbers.
AREA_CODES = ("212", "646", "917", "347", "718")
LEAD_ZIP, LEAD_STATE, LEAD_CITY = "10001", "NY", "New York"
TEMPLATE = "Hi {{firstName|there}}, a quick question about your plumbing jobs in {{city}}."
# What the seed system took for 10,000 sends.
SEED_SECONDS = (400, 1_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ sandbox child


def serve_sandbox(throughput: float, status_interval: float) -> None:
    """The child process: the sandbox Twilio, its base URL on the first stdout line, then
    one JSON answer per stdin command (`counters`, `idle SECONDS`); EOF stops it."""
    from outreach_core.sandbox.twilio import SandboxTwilio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C closes our stdin
    with SandboxTwilio(
        throughput_per_second=throughput or None, status_interval=status_interval
    ) as sandbox:
        print(sandbox.base_url, flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "idle":
                answer: dict[str, Any] = {"idle": sandbox.wait_idle(float(arg or 60))}
            elif command == "counters":
                counted = sandbox.requests
                answer = {
                    "messages_created": counted.messages_created,
                    "created_by_to": counted.created_by_to,
                    "duplicates": counted.duplicates,
                    "accepted_at": counted.accepted_at,
                    "rate_limited": counted.rate_limited,
                    "rejected": {str(k): v for k, v in counted.rejected.items()},
                    "responses": {str(k): v for k, v in counted.responses.items()},
                    "callbacks_posted": counted.callbacks_posted,
                    "callbacks_failed": counted.callbacks_failed,
                }
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)


class SandboxProcess:
    def __init__(self, throughput: float, status_interval: float) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-sandbox"]
        command += ["--throughput", str(throughput), "--status-interval", str(status_interval)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the sandbox Twilio did not start")

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def api_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`uvicorn outreach_api.main:app` on loopback, until /healthz answers."""
    import httpx

    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "send-api.log").open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "uvicorn"), "outreach_api.main:app", "--host", "127.0.0.1"]
            + ["--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"the API exited; see {OUT / 'send-api.log'}")
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the API did not start")
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def child_cpu_s(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return float(times.user + times.system)


# --------------------------------------------------------------------------- seed


def lead_phone(i: int) -> str:
    return f"+1{AREA_CODES[i % len(AREA_CODES)]}555{i // len(AREA_CODES):04d}"


def seed_leads(team_id: uuid.UUID, leads: int) -> None:
    """`leads` New York leads, each with its own valid NYC number, in one bulk INSERT."""
    import phonenumbers
    from sqlalchemy import text

    from outreach_core.db.engine import tenant_session
    from outreach_core.leads.ids import reserve_lead_ids
    from outreach_core.leads.scoring import base_score

    if leads > 10_000 * len(AREA_CODES):
        raise SystemExit(f"at most {10_000 * len(AREA_CODES):,} leads")
    first_id = reserve_lead_ids(team_id, leads)
    rows = []
    for i in range(leads):
        phone = lead_phone(i)
        if i < len(AREA_CODES) or i == leads - 1:  # one per area code, and the last
            assert phonenumbers.is_valid_number(phonenumbers.parse(phone, None)), phone
        rows.append(
            {
                "t": team_id,
                "id": first_id + i,
                "first": f"Sam{i}",
                "last": f"Lee{i}",
                "company": f"Lee {i % 97} Plumbing",
                "phone": phone,
            }
        )
    with tenant_session(team_id) as s:
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, first_name, last_name, company_name, phone, "
                "city, state, zip, sector, score) VALUES (:t, :id, :first, :last, :company, "
                f":phone, '{LEAD_CITY}', '{LEAD_STATE}', '{LEAD_ZIP}', 'construction', "
                f"{base_score()})"
            ),
            rows,
        )


def active_campaign(team_id: uuid.UUID, leads: int) -> tuple[uuid.UUID, str, int]:
    """A sending number and an active campaign for every lead of the team: (campaign id,
    sending number, messages enrolled)."""
    from outreach_core.db.engine import tenant_session
    from outreach_core.db.states import CampaignStatus, CampaignType
    from outreach_core.db.tables import SendingNumber
    from outreach_core.messaging.campaigns import (
        NewCampaign,
        create_campaign,
        schedule_campaign,
        transition,
    )
    from outreach_core.messaging.enrolment import LeadSelection

    number_id = uuid.uuid4()
    sender = f"+1332555{uuid.uuid4().int % 10_000:04d}"  # 332: no lead has it
    with tenant_session(team_id) as session:
        session.add(SendingNumber(team_id=team_id, id=number_id, phone_number=sender))
    new = NewCampaign(
        name="bench-send",
        type=CampaignType.SMS,
        selection=LeadSelection(),
        template=TEMPLATE,
        schedule_start=SEND_CLOCK,
        daily_limit=leads,
        sending_number_id=number_id,
    )
    created = create_campaign(team_id, new, "bench")
    schedule_campaign(team_id, created.campaign.id, "bench")
    transition(team_id, created.campaign.id, CampaignStatus.ACTIVE, "bench")
    return created.campaign.id, sender, created.added


# ---------------------------------------------------------------------- measuring


class Phases:
    """Wall time, CPU time (the thread's) and SQL statements by phase of the send loop
    (claim, limiter, the send transaction, the provider call), from wrappers around the
    engine's own functions. Thread-safe: the phase is per thread, should the engine send
    from several."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.seconds: Counter[str] = Counter()
        self.cpu_seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()

    @property
    def current(self) -> str:
        return getattr(self._local, "phase", "other")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        previous, self._local.phase = self.current, name
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            cpu = time.thread_time() - cpu_started
            self._local.phase = previous
            with self._lock:
                self.seconds[name] += elapsed
                self.cpu_seconds[name] += cpu
                self.calls[name] += 1

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return func(*args, **kwargs)

        return wrapped

    def install(self) -> None:
        from sqlalchemy import event

        from outreach_core.db.engine import app_engine
        from outreach_core.messaging import sender

        @event.listens_for(app_engine(), "before_cursor_execute")
        def _count(*_: Any) -> None:
            phase = self.current
            with self._lock:
                self.statements[phase] += 1

        sender._claim = self.wrap("claim", sender._claim)  # type: ignore[assignment]
        sender._send_one = self.wrap("send_txn", sender._send_one)  # type: ignore[assignment]
        make_limiter = sender._limiter

        def limiter(*args: Any) -> Any:
            made = make_limiter(*args)
            if not getattr(made, "_bench_wrapped", False):
                made.sleep = self.wrap("limiter_sleep", made.sleep)
                made._take = self.wrap("limiter_take", made._take)
                made._bench_wrapped = True
            return made

        sender._limiter = limiter  # type: ignore[assignment]


class TimedGateway:
    """The real gateway; times each provider call and prints progress."""

    def __init__(self, inner: Any, phases: Phases | None, total: int, every: int) -> None:
        self.inner = inner
        self.phases = phases
        self.total = total
        self.every = every
        self.sent = 0
        self.done_at: list[float] = []  # time.monotonic() as each provider call returned
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.last = (0, self.started)

    def send(self, sms: Any) -> Any:
        if self.phases is None:
            answer = self.inner.send(sms)
        else:
            with self.phases.phase("provider_call"):
                answer = self.inner.send(sms)
        with self._lock:
            self.done_at.append(time.monotonic())
            self.sent += 1
            sent = self.sent
            if sent % self.every == 0 or sent == self.total:
                now = time.perf_counter()
                done, then = self.last
                print(
                    f"  {sent:>7,} / {self.total:,} sent  {now - self.started:7.1f} s  "
                    f"{sent / (now - self.started):6.1f}/s overall  "
                    f"{(sent - done) / (now - then):6.1f}/s last {sent - done:,}",
                    flush=True,
                )
                self.last = (sent, now)
        return answer

    def find_sent(self, sms: Any, since: datetime) -> Any:
        return self.inner.find_sent(sms, since)


def outside_window(team_id: uuid.UUID, campaign_id: uuid.UUID, accepted: dict[str, int]) -> int:
    """Messages the sandbox accepted whose lead was outside its window at the time the engine
    says it sent them (or that no lead of ours explains)."""
    from sqlalchemy import select

    from outreach_core.db.engine import tenant_session
    from outreach_core.db.tables import Lead, Message
    from outreach_core.guardrails.quiet_hours import check_quiet_hours

    with tenant_session(team_id) as session:
        rows = session.execute(
            select(Message.to_phone, Message.sent_at, Message.claimed_at, Lead.zip, Lead.state)
            .join(Lead, (Lead.team_id == Message.team_id) & (Lead.id == Message.lead_id))
            .where(Message.campaign_id == campaign_id)
        ).all()
    by_phone = {row.to_phone: row for row in rows}
    outside = 0
    for phone, count in accepted.items():
        row = by_phone.get(phone)
        at = row and (row.sent_at or row.claimed_at)
        if row is None or at is None:
            outside += count
            continue
        decision = check_quiet_hours(now_utc=at, zip_code=row.zip, state=row.state, phone=phone)
        outside += 0 if decision.allowed else count
    return outside


def database_setting(name: str) -> str:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().connect() as conn:
        return str(conn.scalar(text("SELECT current_setting(:n)"), {"n": name}))


def analyze(*tables: str) -> None:
    from sqlalchemy import text

    from outreach_core.db.engine import owner_engine

    with owner_engine().begin() as conn:
        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))


def outbox_counts(team_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import func, select

    from outreach_core.db.engine import tenant_session
    from outreach_core.db.tables import Message

    with tenant_session(team_id) as session:
        rows = session.execute(
            select(Message.status, func.count())
            .where(Message.campaign_id == campaign_id)
            .group_by(Message.status)
        ).all()
    return {str(status): int(n) for status, n in sorted(rows, key=lambda r: str(r[0]))}


def ledger_rows(team_id: uuid.UUID, campaign_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from outreach_core.db.engine import tenant_session
    from outreach_core.db.tables import CostLedger

    with tenant_session(team_id) as session:
        query = select(func.count()).where(CostLedger.campaign_id == campaign_id)
        return int(session.scalar(query) or 0)


def wait_delivered(team_id: uuid.UUID, campaign_id: uuid.UUID, sent: int, timeout: float) -> float:
    """Seconds until every sent message is in a final status (callbacks processed)."""
    started = time.perf_counter()
    final = ("delivered", "undelivered", "failed")
    while time.perf_counter() - started < timeout:
        counts = outbox_counts(team_id, campaign_id)
        if sum(counts.get(s, 0) for s in final) >= sent:
            break
        time.sleep(0.25)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="messages a second per number")
    parser.add_argument(
        "--sandbox-throughput",
        type=float,
        default=None,
        help="the sandbox's account-wide creates a second (default: 1.2 x rate)",
    )
    parser.add_argument("--status-interval", type=float, default=0.05)
    parser.add_argument("--progress-every", type=int, default=1_000)
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="do not wrap the engine's functions to time its phases and count statements",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE leads and messages before sending (what autovacuum would have done)",
    )
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--throughput", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.throughput, args.status_interval)
        return

    from pydantic import SecretStr

    from outreach_core.db.engine import owner_url
    from outreach_core.db.migrate import migrate
    from outreach_core.messaging.sender import send_campaign
    from outreach_core.messaging.twilio_gateway import TwilioGateway
    from outreach_core.sandbox.twilio import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
    from outreach_core.settings import get_settings
    from outreach_core.teams import create_team

    migrate()
    team = create_team(f"bench-{uuid.uuid4().hex[:6]}")
    t = time.perf_counter()
    seed_leads(team.team_id, args.leads)
    seed_s = time.perf_counter() - t
    t = time.perf_counter()
    campaign_id, sender_number, enrolled = active_campaign(team.team_id, args.leads)
    enrol_s = time.perf_counter() - t
    print(
        f"seeded {args.leads:,} leads in {seed_s:.1f} s; campaign enrolled {enrolled:,} "
        f"in {enrol_s:.1f} s; sending from {sender_number} at {args.rate:g}/s"
    )
    if enrolled != args.leads:
        raise SystemExit(f"only {enrolled} of {args.leads} leads enrolled")
    autovacuum = database_setting("autovacuum")
    if args.analyze:
        analyze("leads", "messages")
    print(
        f"server autovacuum {autovacuum}; tables "
        f"{'analyzed' if args.analyze else 'as loaded (no ANALYZE)'} before sending"
    )

    throughput = args.sandbox_throughput or round(args.rate * 1.2, 1)
    sandbox = SandboxProcess(throughput, args.status_interval)
    api_port = free_port()
    api_base = f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": owner_url().render_as_string(hide_password=False),
        "TWILIO_ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "TWILIO_BASE_URL": sandbox.base_url,
        "OUTREACH_PUBLIC_BASE_URL": api_base,
        "OUTREACH_PROVIDER_MODE": "sandbox",
    }
    try:
        with api_process(env, api_port) as api:
            settings = get_settings()
            settings.twilio_account_sid = SecretStr(SANDBOX_ACCOUNT_SID)
            settings.twilio_auth_token = SecretStr(SANDBOX_AUTH_TOKEN)
            settings.twilio_base_url = sandbox.base_url
            settings.public_base_url = api_base
            settings.sms_per_number_per_second = args.rate
            # The limiter's day window for the number must not be what stops the run.
            settings.sms_number_daily_limit = max(settings.sms_number_daily_limit, args.leads)
            print(
                f"sandbox Twilio {sandbox.base_url} (throughput {throughput:g}/s, pid "
                f"{sandbox.process.pid}); API {api_base} (pid {api.pid}); batch "
                f"{settings.sms_batch_size}, clock fixed at {SEND_CLOCK:%Y-%m-%d %H:%M} UTC"
            )

            phases = None if args.no_breakdown else Phases()
            if phases is not None:
                phases.install()
            gateway = TimedGateway(
                TwilioGateway.from_settings(), phases, args.leads, args.progress_every
            )
            load_before = os.getloadavg()[0]
            sandbox_cpu0, api_cpu0 = child_cpu_s(sandbox.process.pid), child_cpu_s(api.pid)
            cpu0, thread_cpu0 = time.process_time(), time.thread_time()
            wall_offset0 = time.time() - time.monotonic()
            gateway.started = started = time.perf_counter()
            gateway.last = (0, started)
            stats = send_campaign(
                team.team_id,
                campaign_id,
                gateway,
                f"bench-{uuid.uuid4().hex[:8]}",
                clock=lambda: SEND_CLOCK,
                log_progress=lambda _: None,
            )
            seconds = time.perf_counter() - started
            cpu_s = time.process_time() - cpu0
            thread_cpu_s = time.thread_time() - thread_cpu0
            sandbox_cpu = child_cpu_s(sandbox.process.pid) - sandbox_cpu0
            api_cpu_during = child_cpu_s(api.pid) - api_cpu0
            load_after = os.getloadavg()[0]
            # The sandbox stamps accepts with the wall clock; a VM's clock can be stepped.
            wall_step_s = time.time() - time.monotonic() - wall_offset0

            print(f"send phase done in {seconds:.1f} s: {stats}")
            drained_s = wait_delivered(team.team_id, campaign_id, stats.sent, 120)
            sandbox.ask("idle 60")
            time.sleep(0.3)  # the last callbacks' requests finish in the API
            api_cpu_total = child_cpu_s(api.pid) - api_cpu0
            counted = sandbox.ask("counters")
            outbox = outbox_counts(team.team_id, campaign_id)
            ledger = ledger_rows(team.team_id, campaign_id)
    finally:
        sandbox.close()

    created_by_to: dict[str, int] = counted["created_by_to"]
    messages = int(counted["messages_created"])
    outside = outside_window(team.team_id, campaign_id, created_by_to)
    phones_twice = sum(1 for n in created_by_to.values() if n > 1)
    duplicates = int(counted["duplicates"]) + phones_twice
    # Gaps between sends from our monotonic clock (each provider call's return); the
    # sandbox's wall-clock accept times are only the cross-check.
    done_at = gateway.done_at
    gaps_ms = [(b - a) * 1000 for a, b in zip(done_at, done_at[1:], strict=False)]
    span_s = done_at[-1] - done_at[0] if len(done_at) > 1 else 0.0
    accepted_at = [float(a) for a in counted["accepted_at"]]
    sandbox_span_s = accepted_at[-1] - accepted_at[0] if len(accepted_at) > 1 else 0.0
    achieved = messages / seconds
    rate_vs_limit = achieved / args.rate
    cpu_ms = cpu_s * 1000 / max(messages, 1)

    print(
        f"{messages:,} messages in {seconds:.1f} s: {achieved:.1f}/s against a limit of "
        f"{args.rate:g}/s ({rate_vs_limit:.1%}); steady rate between the first and the last "
        f"send {(len(done_at) - 1) / span_s if span_s else 0:.1f}/s"
    )
    print(
        f"gap between sends: p50 {quantile(gaps_ms, 0.5):.1f} ms, "
        f"p99 {quantile(gaps_ms, 0.99):.1f} ms, max {max(gaps_ms, default=0):.1f} ms "
        f"(the limit's interval is {1000 / args.rate:.1f} ms)"
    )
    print(
        f"first to last send {span_s:.1f} s by our clock, {sandbox_span_s:.1f} s by the "
        f"sandbox's accept stamps (wall clock; it was stepped {wall_step_s:+.2f} s during the send)"
    )
    print(
        f"our CPU: {cpu_s:.1f} s process ({cpu_ms:.2f} ms a message), of which the main "
        f"thread {thread_cpu_s:.1f} s; not ours: sandbox Twilio {sandbox_cpu:.1f} s, API "
        f"{api_cpu_during:.1f} s during the send ({api_cpu_total:.1f} s with the callback "
        f"tail), PostgreSQL's own processes not counted; machine: {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before the send, {load_after:.1f} after"
    )
    if phases is not None:
        per = max(messages, 1)
        wall = {k: round(v, 2) for k, v in sorted(phases.seconds.items())}
        statements = {k: round(v / per, 2) for k, v in sorted(phases.statements.items())}
        phase_cpu = {k: round(v * 1000 / per, 2) for k, v in sorted(phases.cpu_seconds.items())}
        print(f"time by phase, s (nested: provider_call in send_txn, limiter_* in acquire): {wall}")
        print(f"CPU by phase, ms a message (nested the same way): {phase_cpu}")
        print(
            f"SQL statements a message: {sum(phases.statements.values()) / per:.1f} in all, "
            f"by phase {statements}"
        )
    print(
        f"callbacks: {counted['callbacks_posted']:,} posted, {counted['callbacks_failed']} "
        f"failed; all final {drained_s:.1f} s after the last send; outbox {outbox}; "
        f"{ledger:,} ledger rows"
    )
    print(
        f"sandbox: {counted['rate_limited']} answered 429, rejected {counted['rejected']}, "
        f"{counted['duplicates']} duplicate To+Body, {phones_twice} phones texted twice; "
        f"{outside} sent outside the recipient's window"
    )
    per_10k = seconds * 10_000 / max(messages, 1)
    print(
        f"the seed system took {SEED_SECONDS[0]:,}-{SEED_SECONDS[1]:,} s for 10,000 sends "
        f"({10_000 / SEED_SECONDS[1]:.0f}-{10_000 / SEED_SECONDS[0]:.0f}/s); this run: "
        f"{seconds:.0f} s for {messages:,} ({per_10k:.0f} s per 10,000)"
    )
    figures: dict[str, Any] = {
        "bench": "send",
        "messages": messages,
        "seconds": round(seconds, 1),
        "rate_vs_limit": round(rate_vs_limit, 3),
        "cpu_ms_per_message": round(cpu_ms, 2),
        "outside_window": outside,
        "duplicates": duplicates,
        "achieved_per_second": round(achieved, 1),
        "limit_per_second": args.rate,
        "gap_p50_ms": round(quantile(gaps_ms, 0.5), 1),
        "gap_p99_ms": round(quantile(gaps_ms, 0.99), 1),
        "gap_max_ms": round(max(gaps_ms, default=0), 1),
        "http_429": counted["rate_limited"],
        "engine_sent": stats.sent,
        "engine_stopped": stats.stopped,
        "callbacks_posted": counted["callbacks_posted"],
        "callbacks_failed": counted["callbacks_failed"],
        "delivered": outbox.get("delivered", 0),
        "callback_tail_s": round(drained_s, 1),
        "sandbox_cpu_s": round(sandbox_cpu, 1),
        "api_cpu_s": round(api_cpu_total, 1),
        "seed_system_s": list(SEED_SECONDS),
        "cpus": os.cpu_count(),
        "load_avg_1m": [round(load_before, 1), round(load_after, 1)],
        "wall_clock_step_s": round(wall_step_s, 2),
        "autovacuum": autovacuum,
        "analyzed": args.analyze,
        "seconds_per_10k": round(per_10k),
    }
    if phases is not None:
        figures["sql_per_message"] = round(sum(phases.statements.values()) / max(messages, 1), 1)
        figures["phase_s"] = {k: round(v, 1) for k, v in sorted(phases.seconds.items())}
        figures["phase_cpu_ms_per_message"] = {
            k: round(v * 1000 / max(messages, 1), 2) for k, v in sorted(phases.cpu_seconds.items())
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
