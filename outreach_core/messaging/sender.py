"""The send engine: one run sends one campaign's due messages from the outbox.

For each batch:
1. **Claim** (one transaction, the campaign row share-locked and `active`): due `pending`
   messages pass the guardrails or are rescheduled / blocked with the reason; those that
   pass become `claimed`. The claim is committed before any provider call, so a crash can
   never produce a second message: recovery (`recover_claims`) asks the provider whether a
   claimed message went out before sending it again.
2. **Send** each claimed message in its own transaction that share-locks the campaign row
   for the length of the call: a pause (which takes the row's update lock) waits for the
   call in flight, and once the pause is committed nothing more is sent. Suppression and
   the team's kill switch are checked again right before the call, so a STOP that lands
   mid-batch stops the next send. Pacing per sending number goes through the shared
   PostgreSQL limiter.

The send is the hot path (50 a second per number): the limiter's request is one round
trip on a connection the run holds, and the send transaction is two statements before the
provider call (the tenant and the kill switch's lock; then every check, with the message
and campaign rows locked) and one after it, in plain SQL on a second held connection.

Provider errors are per recipient (`provider_errors.yaml`): one bad number never halts a
campaign."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, text, true, update
from sqlalchemy.orm import Session

from outreach_core.costs import alerts, budget
from outreach_core.crashpoints import crashpoint
from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.db.states import (
    MESSAGE_GONE_OUT,
    MESSAGE_UNSENT,
    CampaignStatus,
    CostCategory,
    MessageKind,
    MessageStatus,
    NumberStatus,
    PhoneFlag,
)
from outreach_core.db.tables import Campaign, Lead, Message, PhoneFlagRow, SendingNumber, Team
from outreach_core.guardrails import kill_switch
from outreach_core.guardrails.kill_switch import HELD_KINDS, automation_paused
from outreach_core.guardrails.quiet_hours import check_quiet_hours
from outreach_core.guardrails.reasons import BlockReason
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import transition_in
from outreach_core.messaging.consent import contacted_phones
from outreach_core.messaging.provider_errors import ErrorAction, action_for
from outreach_core.ratelimit import PgRateLimiter, RateLimitReached
from outreach_core.settings import get_settings

log = logging.getLogger(__name__)

DAY = timedelta(hours=24)
# Paced a little under the number's rate (no 60 s span over its per-minute count), making
# up a second of delay from the database work between sends.
SMS_PACE_MARGIN = 0.02
SMS_PACE_CATCH_UP = timedelta(seconds=1)
# Longer than this until the number's next slot (its daily quota is spent): stop, and hold
# its messages until then.
MAX_PACING_WAIT = timedelta(minutes=1)
# How far the provider's clock may be behind ours when recovery compares creation times.
PROVIDER_CLOCK_SKEW = timedelta(minutes=5)
# Retry backoff after a retryable provider error: base * 4^(attempt-1).
RETRY_BACKOFF = timedelta(seconds=30)


@dataclass(frozen=True)
class OutboundSms:
    message_id: uuid.UUID
    to: str
    from_number: str | None
    messaging_service_sid: str | None
    body: str
    validity_period_s: int | None
    team_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ProviderAnswer:
    sid: str
    status: str
    error_code: int | None = None
    price: Decimal | None = None
    price_unit: str | None = None


class ProviderRefused(Exception):
    """The provider did not take the message (or the call timed out: `http_status` None)."""

    def __init__(self, message: str, code: int | None, http_status: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class SmsGateway(Protocol):
    def send(self, sms: OutboundSms) -> ProviderAnswer: ...

    def find_sent(self, sms: OutboundSms, since: datetime) -> ProviderAnswer | None:
        """The provider's record of this message if it went out after `since`."""
        ...


@dataclass
class SendStats:
    sent: int = 0
    rescheduled: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    failed: int = 0
    recovered: int = 0
    stopped: str | None = None

    def count(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1


class _Stop(Exception):
    """The campaign is no longer active (paused, cancelled) or must pause now."""


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    kind: MessageKind
    to: str
    body: str
    segments: int
    sending_number_id: uuid.UUID | None
    # Resolved with the claim (the guardrails loaded the number), not once per send.
    from_number: str | None
    validity_period_s: int | None


def send_campaign(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    gateway: SmsGateway,
    run_id: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_messages: int | None = None,
    log_progress: Callable[[str], None] = log.info,
) -> SendStats:
    """Send what is due now, batch by batch, until nothing is due, the campaign stops being
    active, or `max_messages` went out."""
    return _run(team_id, campaign_id, gateway, run_id, clock, max_messages, log_progress)


def send_replies(
    team_id: uuid.UUID,
    gateway: SmsGateway,
    run_id: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    log_progress: Callable[[str], None] = log.info,
) -> SendStats:
    """Send the team's due replies (approved drafts, and answers decided after the webhook
    had returned) through the same outbox, guardrails, budget and pacing as a campaign."""
    return _run(team_id, None, gateway, run_id, clock, None, log_progress)


def _run(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    gateway: SmsGateway,
    run_id: str,
    clock: Callable[[], datetime],
    max_messages: int | None,
    log_progress: Callable[[str], None],
) -> SendStats:
    stats = SendStats()
    with _sole_sender(team_id, campaign_id) as pace:
        if pace is None:
            # Its run sends what is due, this one's too (or the sensor's next run does).
            stats.stopped = f"another run is sending {_what(campaign_id)}"
            return stats
        return _send_all(
            team_id, campaign_id, gateway, run_id, clock, max_messages, stats, log_progress, pace
        )


@contextmanager
def _sole_sender(team_id: uuid.UUID, campaign_id: uuid.UUID | None) -> Iterator[Connection | None]:
    """While this is the only run sending for the team's campaign (or its replies): the
    connection holding the lock, in autocommit mode (the run's limiter requests use it);
    else None. Recovery treats every claim not its own as a dead run's: a second live
    sender (the review-approve route beside a replies run) would put the first one's
    in-flight message back in the queue and send it again. A session lock, so a killed
    run's goes with its connection."""
    key = f"sender:{team_id}:{campaign_id or 'replies'}"
    with app_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        taken = conn.scalar(
            text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key}
        )
        try:
            yield conn if taken else None
        finally:
            if taken:
                conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key})


def _send_all(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    gateway: SmsGateway,
    run_id: str,
    clock: Callable[[], datetime],
    max_messages: int | None,
    stats: SendStats,
    log_progress: Callable[[str], None],
    pace: Connection,
) -> SendStats:
    """`pace`: the run's connection for the limiter's requests (autocommit). The send
    transactions go through a second connection held for the run: the hot path never
    checks one out of the pool (nor pings it)."""
    stats.recovered = recover_claims(team_id, campaign_id, gateway, run_id)
    limiters: dict[uuid.UUID | None, PgRateLimiter] = {}
    # Claims whose provider call started: never released to the queue, whatever happens
    # next (a later run's recovery asks the provider about them).
    called: set[uuid.UUID] = set()
    send = app_engine().connect()
    try:
        while max_messages is None or stats.sent < max_messages:
            batch, pause_reason = _claim(team_id, campaign_id, run_id, clock(), stats)
            for message in batch:
                try:
                    _limiter(limiters, team_id, message.sending_number_id).acquire(pace)
                except RateLimitReached as full:
                    # The number's daily quota is spent: its messages wait for the next
                    # slot instead of a run sleeping (or the sensor relaunching) until then.
                    _hold_number(team_id, campaign_id, message, clock(), full.retry_after)
                    raise _Stop(str(full)) from full
                _send_one(
                    send, team_id, campaign_id, message, gateway, clock, stats, called, run_id
                )
            if pause_reason is not None:
                if campaign_id is not None:
                    _pause(team_id, campaign_id, pause_reason)
                raise _Stop(pause_reason)
            if not batch:
                break
            log_progress(f"{_what(campaign_id)}: {stats.sent} sent")
    except _Stop as stop:
        stats.stopped = str(stop)
    finally:
        send.close()
        # Whatever this run claimed and did not call the provider for goes back.
        _release(team_id, campaign_id, run_id, called)
    return stats


# ---------------------------------------------------------------------------- claim


def worst_case_price(segments: int) -> Decimal:
    """What a message of `segments` may cost at most: reserved until the provider prices it."""
    return segments * get_settings().sms_worst_case_price_per_segment


def _what(campaign_id: uuid.UUID | None) -> str:
    return f"campaign {campaign_id}" if campaign_id else "replies"


def _scope(campaign_id: uuid.UUID | None) -> ColumnElement[bool]:
    """A campaign's messages, or (None) the team's replies."""
    if campaign_id is not None:
        return Message.campaign_id == campaign_id
    return and_(Message.campaign_id.is_(None), Message.kind != MessageKind.CAMPAIGN)


def _active_campaign(session: Session, campaign_id: uuid.UUID | None) -> Campaign | None:
    """The campaign, share-locked: a pause (which takes the row's update lock) waits until
    this transaction ends. _Stop when it is no longer active; None for replies."""
    if campaign_id is None:
        return None
    campaign = session.scalar(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update(read=True)
    )
    if campaign is None or campaign.status is not CampaignStatus.ACTIVE:
        raise _Stop(f"campaign is {campaign.status if campaign else 'gone'}")
    return campaign


def _claim(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    run_id: str,
    now: datetime,
    stats: SendStats,
) -> tuple[list[_Claimed], str | None]:
    """The next batch, and the reason to stop after sending it (a budget cannot pay for the
    next message). Each claimed message reserves its worst-case price."""
    settings = get_settings()
    pause_reason: str | None = None
    claimed: list[tuple[Message, _Claimed]] = []
    with tenant_session(team_id) as session:
        campaign = _active_campaign(session, campaign_id)
        # The team's kill switch: campaign messages and follow-ups wait while it is on.
        paused = automation_paused(session, team_id)
        if paused is not None and campaign_id is not None:
            raise _Stop(paused)
        may_go = Message.kind.not_in(HELD_KINDS) if paused is not None else true()
        due = session.execute(
            select(Message, Lead.zip, Lead.state)
            .outerjoin(Lead, and_(Lead.team_id == Message.team_id, Lead.id == Message.lead_id))
            .where(_scope(campaign_id), may_go)
            .where(Message.status == MessageStatus.PENDING)
            .where(Message.not_before <= now)
            .order_by(Message.not_before, Message.lead_id, Message.step)
            .limit(settings.sms_batch_size)
            .with_for_update(of=Message, skip_locked=True)
        ).all()
        if not due:
            return [], None
        phones = sorted({m.to_phone for m, _, _ in due})
        # Two campaigns of the team texting one phone at once count each other's messages.
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS keys"
            ),
            {"keys": [f"sms:{team_id}:{phone}" for phone in phones]},
        )
        facts = _PhoneFacts.load(session, team_id, phones, now)
        room = budget.room(
            session,
            team_id,
            CostCategory.SMS,
            campaign_id=campaign_id,
            campaign_budget=campaign.budget if campaign else None,
        )
        reserved = Decimal(0)
        sent_today, oldest_today = _sent_since(session, campaign_id, now - DAY)
        daily_limit = campaign.daily_limit if campaign else None
        for message, zip_code, state in due:
            verdict = _guardrails(message, zip_code, state, now, facts)
            if verdict.block is not None:
                _block(message, verdict.block, stats)
                continue
            if verdict.retry_at is not None:
                _reschedule(message, verdict.retry_at, verdict.reason, stats)
                continue
            if daily_limit is not None and sent_today >= daily_limit:
                _reschedule(message, (oldest_today or now) + DAY, BlockReason.DAILY_LIMIT, stats)
                continue
            worst_case = worst_case_price(message.segments)
            if not room.fits(reserved + worst_case):
                if reserved > 0 or room.held > 0:
                    # Worst cases are held for messages in flight; their real prices, known
                    # in seconds and usually far lower, give the room back. Send what is
                    # claimed; the next run pauses only if spend itself leaves no room.
                    stats.stopped = f"{room.limit}: waiting for the prices of messages in flight"
                    break
                pause_reason = f"{room.limit} reached"
                alerts.budget_exhausted(session, team_id, room)
                break
            reserved += worst_case
            sent_today += 1
            facts.claimed(message.to_phone, now)
            message.status = MessageStatus.CLAIMED
            message.claimed_by = run_id
            message.claimed_at = now
            message.block_reason = None
            message.updated_at = now
            number = facts.numbers.get(message.sending_number_id)
            claimed.append(
                (
                    message,
                    _Claimed(
                        message.id,
                        message.kind,
                        message.to_phone,
                        message.body,
                        message.segments,
                        message.sending_number_id,
                        number.phone_number if number is not None else None,
                        verdict.validity_period_s,
                    ),
                )
            )
        held = budget.hold(
            session,
            team_id,
            [worst_case_price(c.segments) for _, c in claimed],
            category=CostCategory.SMS,
            provider=defaults.SMS_PROVIDER,
            campaign_id=campaign_id,
            ttl=defaults.SMS_RESERVATION_TTL,
        )
        for (message, _), reservation in zip(claimed, held, strict=True):
            message.reservation_id = reservation.id
    return [c for _, c in claimed], pause_reason


@dataclass
class _PhoneFacts:
    """What the guardrails need about a batch's phones, loaded in a few queries for the whole
    batch and kept up to date as the batch is claimed."""

    flags: dict[str, set[PhoneFlag]]
    # Messages that went out to the phone in the last 24 h, and the oldest one's claim time.
    recent: dict[str, tuple[int, datetime | None]]
    # Phones the team has texted before (None: the team does not require consent).
    contacted: set[str] | None
    numbers: dict[uuid.UUID | None, SendingNumber]

    @classmethod
    def load(
        cls, session: Session, team_id: uuid.UUID, phones: list[str], now: datetime
    ) -> _PhoneFacts:
        flags: dict[str, set[PhoneFlag]] = {}
        for phone, flag in session.execute(
            select(PhoneFlagRow.phone, PhoneFlagRow.flag).where(PhoneFlagRow.phone.in_(phones))
        ):
            flags.setdefault(phone, set()).add(flag)
        recent = {
            phone: (count, oldest)
            for phone, count, oldest in session.execute(
                select(Message.to_phone, func.count(), func.min(Message.claimed_at))
                .where(Message.to_phone.in_(phones))
                .where(Message.status.in_(MESSAGE_GONE_OUT), Message.claimed_at >= now - DAY)
                .group_by(Message.to_phone)
            )
        }
        contacted = None
        if session.scalar(select(Team.require_consent).where(Team.id == team_id)):
            contacted = contacted_phones(session, phones)
        numbers = {n.id: n for n in session.scalars(select(SendingNumber))}
        return cls(flags, recent, contacted, numbers)

    def claimed(self, phone: str, now: datetime) -> None:
        count, oldest = self.recent.get(phone, (0, None))
        self.recent[phone] = (count + 1, oldest or now)
        if self.contacted is not None:
            self.contacted.add(phone)


@dataclass(frozen=True)
class _Verdict:
    block: BlockReason | None = None
    retry_at: datetime | None = None
    reason: BlockReason | None = None
    validity_period_s: int | None = None


def _guardrails(
    message: Message, zip_code: str | None, state: str | None, now: datetime, facts: _PhoneFacts
) -> _Verdict:
    """May this message go out now? Final blocks, then reschedules, in that order."""
    flags = facts.flags.get(message.to_phone, set())
    if message.kind is MessageKind.SERVICE:
        # An opt-out's confirmation, the help text: answers the contact just asked for,
        # at whatever hour, and the one message allowed past suppression.
        return _service_verdict(message, flags, facts)
    if PhoneFlag.SUPPRESSED in flags:
        return _Verdict(block=BlockReason.SUPPRESSED)
    if PhoneFlag.INVALID in flags:
        return _Verdict(block=BlockReason.INVALID_PHONE)
    if PhoneFlag.LANDLINE in flags:
        return _Verdict(block=BlockReason.LANDLINE)
    if (
        facts.contacted is not None
        and PhoneFlag.CONSENTED not in flags
        and message.to_phone not in facts.contacted
    ):
        return _Verdict(block=BlockReason.NO_CONSENT)
    number = facts.numbers.get(message.sending_number_id)
    if number is not None and number.status is NumberStatus.HALTED:
        return _Verdict(block=BlockReason.NUMBER_HALTED)
    quiet = check_quiet_hours(now_utc=now, zip_code=zip_code, state=state, phone=message.to_phone)
    if not quiet.allowed:
        if quiet.retry_at is None:
            return _Verdict(block=quiet.reason or BlockReason.UNKNOWN_TIMEZONE)
        return _Verdict(retry_at=quiet.retry_at, reason=BlockReason.QUIET_HOURS)
    cap = min(get_settings().sms_per_lead_per_24h, quiet.max_messages_per_24h or 10**9)
    sent, oldest = facts.recent.get(message.to_phone, (0, None))
    if sent >= cap:
        return _Verdict(retry_at=(oldest or now) + DAY, reason=BlockReason.LEAD_CAP)
    return _Verdict(validity_period_s=quiet.validity_period_s)


def _service_verdict(message: Message, flags: set[PhoneFlag], facts: _PhoneFacts) -> _Verdict:
    if PhoneFlag.INVALID in flags:
        return _Verdict(block=BlockReason.INVALID_PHONE)
    if PhoneFlag.LANDLINE in flags:
        return _Verdict(block=BlockReason.LANDLINE)
    number = facts.numbers.get(message.sending_number_id)
    if number is not None and number.status is NumberStatus.HALTED:
        return _Verdict(block=BlockReason.NUMBER_HALTED)
    return _Verdict()


def _sent_since(
    session: Session, campaign_id: uuid.UUID | None, since: datetime
) -> tuple[int, datetime | None]:
    """The messages that went out since `since` (the campaign's, or the team's replies), and
    the oldest one's claim time."""
    count, oldest = session.execute(
        select(func.count(), func.min(Message.claimed_at)).where(
            _scope(campaign_id),
            Message.status.in_(MESSAGE_GONE_OUT),
            Message.claimed_at >= since,
        )
    ).one()
    return int(count), oldest


def phone_flags(session: Session, phone: str) -> set[PhoneFlag]:
    """The phone's flags in the session's team (suppressed, consented, ...)."""
    return set(session.scalars(select(PhoneFlagRow.flag).where(PhoneFlagRow.phone == phone)))


def drop_reservation(session: Session, message: Message) -> None:
    """The message will not be billed for this attempt: its reserved price goes back."""
    if message.reservation_id is not None:
        budget.release_ids(session, message.team_id, [message.reservation_id])
        message.reservation_id = None


def _block(message: Message, reason: BlockReason, stats: SendStats) -> None:
    message.status = MessageStatus.BLOCKED
    message.block_reason = reason
    message.updated_at = func.now()
    stats.count(stats.blocked, reason)


def _reschedule(
    message: Message, at: datetime, reason: BlockReason | None, stats: SendStats
) -> None:
    message.not_before = at
    message.block_reason = reason
    message.updated_at = func.now()
    stats.count(stats.rescheduled, str(reason))


def _pause(team_id: uuid.UUID, campaign_id: uuid.UUID, reason: str) -> None:
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id))
        if campaign is not None and campaign.status is CampaignStatus.ACTIVE:
            transition_in(
                session, campaign_id, CampaignStatus.PAUSED, defaults.SYSTEM_ACTOR, reason
            )


# ----------------------------------------------------------------------------- send


# The send transaction's first statement: the tenant for RLS and, for a message the team's
# kill switch holds, the switch's lock shared (kill_switch's docstring: the switch is read
# in the next statement, whose snapshot has any pause committed before the lock was ours).
_SEND_BEGIN = text(
    "SELECT set_config('app.team_id', :t, true), "
    f"CASE WHEN :held THEN {kill_switch.SHARED_LOCK} END"
)
# Every check before the call in one statement: the message locked (a status callback for it
# waits until the call's answer is recorded, so the answer never overwrites a later status),
# the campaign share-locked (a pause waits for the call in flight; a pause committed first
# is read here, locking re-reads the row), a suppression, the kill switch.
_SEND_CHECKS = """
    SELECT m.status, m.claimed_by, {campaign} AS campaign_status,
           {service_sid} AS messaging_service_sid,
           EXISTS (SELECT 1 FROM phone_flags f WHERE f.team_id = m.team_id
                   AND f.phone = m.to_phone AND f.flag = '{suppressed}') AS suppressed,
           t.automation_paused_at, t.automation_paused_by, t.automation_paused_reason
    FROM {tables}
    JOIN teams t ON t.id = m.team_id
    WHERE m.team_id = :t AND m.id = :id
    {locks}
"""
_SEND_CHECKS_CAMPAIGN = text(
    _SEND_CHECKS.format(
        campaign="c.status",
        service_sid="c.messaging_service_sid",
        suppressed=PhoneFlag.SUPPRESSED.value,
        tables="campaigns c JOIN messages m ON m.team_id = c.team_id AND m.campaign_id = c.id",
        locks="FOR SHARE OF c FOR UPDATE OF m",
    )
)
_SEND_CHECKS_REPLY = text(
    _SEND_CHECKS.format(
        campaign="NULL",
        service_sid="NULL",
        suppressed=PhoneFlag.SUPPRESSED.value,
        tables="messages m",
        locks="FOR UPDATE OF m",
    )
)
_SENT = text(
    "UPDATE messages SET provider_sid = :sid, status = :status, sent_at = :sent_at, "
    "attempts = attempts + 1, updated_at = now() WHERE team_id = :t AND id = :id"
)


def _send_one(
    conn: Connection,
    team_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    claimed: _Claimed,
    gateway: SmsGateway,
    clock: Callable[[], datetime],
    stats: SendStats,
    called: set[uuid.UUID],
    run_id: str,
) -> None:
    with conn.begin():
        held = claimed.kind in HELD_KINDS
        conn.execute(
            _SEND_BEGIN,
            {"t": str(team_id), "held": held, "automation_key": kill_switch.lock_key(team_id)},
        )
        checks = _SEND_CHECKS_CAMPAIGN if campaign_id is not None else _SEND_CHECKS_REPLY
        row = conn.execute(checks, {"t": team_id, "id": claimed.id}).one_or_none()
        if row is None:
            # The campaign (and its messages with it) was deleted.
            raise _Stop(f"{_what(campaign_id)}: message {claimed.id} is gone")
        if campaign_id is not None and row.campaign_status != CampaignStatus.ACTIVE:
            raise _Stop(f"campaign is {row.campaign_status}")
        if row.status != MessageStatus.CLAIMED or row.claimed_by != run_id:
            # Recovered by another run while this one waited for its slot: it is theirs now.
            log.warning("message %s is no longer this run's claim; not sent", claimed.id)
            return
        if claimed.kind is not MessageKind.SERVICE and row.suppressed:
            with _orm(conn) as session:
                message = _message(session, team_id, claimed.id)
                _block(message, BlockReason.SUPPRESSED, stats)
                drop_reservation(session, message)
            return
        if held and (
            paused := kill_switch.AutomationSwitch(
                row.automation_paused_at, row.automation_paused_by, row.automation_paused_reason
            ).why_paused()
        ):
            # Paused since the claim: this and the rest of the batch go back (_release).
            raise _Stop(paused)
        sms = OutboundSms(
            message_id=claimed.id,
            to=claimed.to,
            from_number=claimed.from_number,
            messaging_service_sid=row.messaging_service_sid,
            body=claimed.body,
            validity_period_s=claimed.validity_period_s,
            team_id=team_id,
        )
        crashpoint("send.before_call")
        called.add(claimed.id)
        try:
            answer = gateway.send(sms)
        except ProviderRefused as refused:
            with _orm(conn) as session:
                message = _message(session, team_id, claimed.id)
                message.attempts += 1
                if refused.http_status is None:
                    # A timeout: it may have gone out. Left claimed for recovery to ask the
                    # provider, never sent again blindly.
                    message.claimed_by = None
                    message.error_message = str(refused)[:500]
                    stats.retried += 1
                else:
                    _refused(session, team_id, message, refused, clock(), stats)
            return
        crashpoint("send.after_call")
        conn.execute(
            _SENT,
            {
                "t": team_id,
                "id": claimed.id,
                "sid": answer.sid,
                "status": _provider_status(answer.status).value,
                "sent_at": clock(),
            },
        )
        stats.sent += 1
    crashpoint("send.after_commit")


@contextmanager
def _orm(conn: Connection) -> Iterator[Session]:
    """A session in the send transaction on `conn`, for the paths that are not the hot one
    (a block, a refusal); its changes are flushed when the block ends and committed with
    the transaction."""
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        yield session
        session.flush()


def _message(session: Session, team_id: uuid.UUID, message_id: uuid.UUID) -> Message:
    message = session.get(Message, (team_id, message_id))  # locked by _SEND_CHECKS
    assert message is not None
    return message


def _from_number(session: Session, team_id: uuid.UUID, number_id: uuid.UUID | None) -> str | None:
    if number_id is None:
        return None
    number = session.get(SendingNumber, (team_id, number_id))
    return number.phone_number if number is not None else None


def _provider_status(status: str) -> MessageStatus:
    try:
        return MessageStatus(status)
    except ValueError:
        return MessageStatus.ACCEPTED


def _refused(
    session: Session,
    team_id: uuid.UUID,
    message: Message,
    refused: ProviderRefused,
    now: datetime,
    stats: SendStats,
) -> None:
    message.error_code = refused.code
    message.error_message = str(refused)[:500]
    message.updated_at = func.now()
    # Refused at the API call: this attempt is not billed.
    drop_reservation(session, message)
    action = action_for(refused.code, refused.http_status)
    if action is ErrorAction.RETRY and message.attempts < get_settings().sms_max_attempts:
        message.status = MessageStatus.PENDING
        message.claimed_by = None
        message.not_before = now + RETRY_BACKOFF * 4 ** (message.attempts - 1)
        stats.retried += 1
        return
    message.status = MessageStatus.FAILED
    stats.failed += 1
    apply_error(session, team_id, message, action, f"provider error {refused.code}")


def apply_error(
    session: Session,
    team_id: uuid.UUID,
    message: Message,
    action: ErrorAction,
    reason: str,
) -> None:
    """What a permanent error means beyond this message (from the send call or a status
    callback): the phone is flagged, or the sending number halted."""
    flag = {
        ErrorAction.SUPPRESS: PhoneFlag.SUPPRESSED,
        ErrorAction.INVALID_PHONE: PhoneFlag.INVALID,
        ErrorAction.LANDLINE: PhoneFlag.LANDLINE,
    }.get(action)
    if flag is not None:
        session.execute(
            text(
                "INSERT INTO phone_flags (team_id, phone, flag, reason, source) "
                "VALUES (:t, :p, :f, :r, :s) ON CONFLICT DO NOTHING"
            ),
            {
                "t": team_id,
                "p": message.to_phone,
                "f": flag.value,
                "r": reason,
                "s": f"message {message.id}",
            },
        )
    if action is ErrorAction.HALT_NUMBER and message.sending_number_id is not None:
        session.execute(
            update(SendingNumber)
            .where(SendingNumber.id == message.sending_number_id)
            .values(status=NumberStatus.HALTED, status_reason=reason)
        )


# ---------------------------------------------------------------------- recovery


def recover_claims(
    team_id: uuid.UUID, campaign_id: uuid.UUID | None, gateway: SmsGateway, run_id: str
) -> int:
    """Messages another (dead) run claimed, or whose call timed out: the provider is asked
    whether each went out; those it has are recorded as a status callback would record them
    (status, price, error actions), the rest go back to the queue. Never sends."""
    # Late import: delivery builds on this module.
    from outreach_core.messaging.delivery import StatusUpdate, record_status

    found_out: list[tuple[uuid.UUID, ProviderAnswer]] = []
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id)) if campaign_id else None
        stale = session.scalars(
            select(Message)
            .where(_scope(campaign_id))
            .where(Message.status == MessageStatus.CLAIMED)
            .where(or_(Message.claimed_by.is_(None), Message.claimed_by != run_id))
            .with_for_update(skip_locked=True)
        ).all()
        for message in stale:
            sms = OutboundSms(
                message.id,
                message.to_phone,
                _from_number(session, team_id, message.sending_number_id),
                campaign.messaging_service_sid if campaign else None,
                message.body,
                None,
            )
            # It cannot have left before it was written; the margin allows for clock skew.
            found = gateway.find_sent(sms, message.created_at - PROVIDER_CLOCK_SKEW)
            if found is not None:
                message.claimed_by = None
                message.sent_at = message.claimed_at
                found_out.append((message.id, found))
            else:
                message.status = MessageStatus.PENDING
                message.claimed_by = None
                drop_reservation(session, message)
            message.updated_at = func.now()
    for message_id, found in found_out:
        record_status(
            StatusUpdate(
                message_id=message_id,
                sid=found.sid,
                status=found.status,
                error_code=found.error_code,
                price=str(found.price) if found.price is not None else None,
                price_unit=found.price_unit,
            )
        )
    return len(found_out)


def _hold_number(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    message: _Claimed,
    now: datetime,
    seconds: float,
) -> None:
    with tenant_session(team_id) as session:
        session.execute(
            update(Message)
            .where(_scope(campaign_id))
            .where(Message.sending_number_id == message.sending_number_id)
            .where(Message.status.in_(MESSAGE_UNSENT))
            .where(Message.not_before < now + timedelta(seconds=seconds))
            .values(
                not_before=now + timedelta(seconds=seconds),
                block_reason=BlockReason.DAILY_LIMIT,
                updated_at=func.now(),
            )
        )


def _release(
    team_id: uuid.UUID, campaign_id: uuid.UUID | None, run_id: str, called: set[uuid.UUID]
) -> None:
    """Claims of this run that never reached the provider call go back to the queue, and
    their reserved prices to the budget."""
    with tenant_session(team_id) as session:
        reservations = session.scalars(
            update(Message)
            .where(_scope(campaign_id))
            .where(Message.status == MessageStatus.CLAIMED)
            .where(Message.claimed_by == run_id)
            .where(Message.id.not_in(called) if called else True)
            .values(
                status=MessageStatus.PENDING,
                claimed_by=None,
                reservation_id=None,
                updated_at=func.now(),
            )
            .returning(Message.reservation_id)
        ).all()
        budget.release_ids(session, team_id, [r for r in reservations if r is not None])


def _limiter(
    limiters: dict[uuid.UUID | None, PgRateLimiter],
    team_id: uuid.UUID,
    number_id: uuid.UUID | None,
) -> PgRateLimiter:
    if number_id not in limiters:
        per_second = get_settings().sms_per_number_per_second
        key = f"sms:{number_id or team_id}"
        limiters[number_id] = PgRateLimiter(
            app_engine(),
            key,
            {
                "minute": max(1, round(per_second * 60)),
                "day": get_settings().sms_number_daily_limit,
            },
            pace_margin=SMS_PACE_MARGIN,
            catch_up=SMS_PACE_CATCH_UP,
            sleep=time.sleep,
            max_wait=MAX_PACING_WAIT.total_seconds(),
        )
    return limiters[number_id]
