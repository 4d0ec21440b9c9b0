"""Delivery reconciliation: a scheduled pass asks the provider about messages stuck without
a final status (a callback lost, our API down, a signature refused) and applies each answer
exactly as a status callback would (`delivery.record_status`): forward only, the price into
the cost ledger once, error codes acting as the send path's do.

Two kinds of stuck message:

* **Awaiting an outcome**: a provider status after which another is expected (accepted,
  scheduled, queued, sending, sent), unchanged for `older_than`. Fetched by SID. A SID the
  provider does not know is left alone and reported.
* **In doubt**: `claimed` with `claimed_by` NULL, the mark a timed-out provider call leaves.
  The provider's message list is asked whether it went out (`SmsGateway.find_sent`); one it
  has is applied like a callback (its SID, status, price and error code). Those it does not
  have go back to the queue through `sender.recover_claims`, which asks again and never
  sends. `recover_claims` takes every claim of the campaign not made by the given run, so it
  is only called while this pass holds the campaign row's update lock (a send run share-
  locks it to claim and for each call: none can be claiming or calling meanwhile), when no
  claim of the campaign is recent, and when the caller's `may_recover` agrees (Dagster: no
  send run of the campaign is live).

The application role sees one team at a time (RLS) and nothing lists every team's messages,
so the caller names the teams. Candidates are taken per team and interleaved, so one team's
backlog does not starve the others; within a team they are taken in random order, so
messages the provider will never move on (e.g. `sent` to a carrier without delivery
receipts) cannot hold the first places of every pass: each stuck message is asked about
again and again only until it is `max_age` old."""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain, zip_longest
from typing import TypeVar

import requests
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from twilio.base.exceptions import TwilioRestException

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MessageStatus
from outreach_core.db.tables import Campaign, Message, SendingNumber
from outreach_core.messaging.delivery import StatusUpdate, record_status
from outreach_core.messaging.sender import (
    PROVIDER_CLOCK_SKEW,
    OutboundSms,
    ProviderRefused,
    recover_claims,
)
from outreach_core.messaging.twilio_gateway import TwilioGateway

log = logging.getLogger(__name__)

# Provider statuses after which another is still expected.
AWAITING_OUTCOME = (
    MessageStatus.ACCEPTED,
    MessageStatus.SCHEDULED,
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
)
# Past this age a message is no longer asked about (Twilio gives up on a message within
# its validity period, at most 10 hours; a `sent` that never got a receipt stays `sent`).
DEFAULT_MAX_AGE = timedelta(days=3)
DEFAULT_RUN_ID = "reconcile"
_NOT_FOUND = 404
_TOO_MANY_REQUESTS = 429

T = TypeVar("T")


@dataclass(frozen=True)
class UnknownToProvider:
    team_id: uuid.UUID
    message_id: uuid.UUID
    sid: str


@dataclass
class ReconcileStats:
    checked: int = 0  # messages fetched by SID (unknown ones included)
    updated: dict[str, int] = field(default_factory=dict)  # applied, by the new status
    unchanged: int = 0  # the provider said nothing newer than what we have
    unknown: list[UnknownToProvider] = field(default_factory=list)  # left alone
    errors: int = 0  # could not ask (5xx, timeout): asked again next pass
    in_doubt: int = 0  # claims in doubt looked at
    recovered: int = 0  # in doubt, found at the provider and applied
    requeued: int = 0  # in doubt, not found: back in the queue
    deferred: list[uuid.UUID] = field(default_factory=list)  # campaigns left for later
    stopped: str | None = None  # the provider asked us to slow down: the rest next pass

    def count(self, status: str) -> None:
        self.updated[status] = self.updated.get(status, 0) + 1


@dataclass(frozen=True)
class _Awaiting:
    team_id: uuid.UUID
    id: uuid.UUID
    sid: str


@dataclass(frozen=True)
class _InDoubt:
    team_id: uuid.UUID
    id: uuid.UUID
    campaign_id: uuid.UUID
    sms: OutboundSms
    created_at: datetime


class _Stop(Exception):
    pass


def reconcile_stuck(
    gateway: TwilioGateway,
    older_than: timedelta,
    limit: int,
    team_ids: Iterable[uuid.UUID],
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    may_recover: Callable[[uuid.UUID, uuid.UUID], bool] | None = None,
    run_id: str = DEFAULT_RUN_ID,
) -> ReconcileStats:
    """Ask the provider about at most `limit` messages of `team_ids` stuck for `older_than`
    (claims in doubt first) and apply its answers. `may_recover(team_id, campaign_id)`
    says whether a campaign's claims may be put back in the queue now. Never sends."""
    stats = ReconcileStats()
    teams = list(dict.fromkeys(team_ids))
    try:
        in_doubt = _fair([_in_doubt(t, older_than, max_age, limit) for t in teams], limit)
        _resolve_claims(gateway, in_doubt, older_than, may_recover, run_id, stats)
        left = limit - len(in_doubt)
        if left > 0:
            awaiting = _fair([_awaiting(t, older_than, max_age, left) for t in teams], left)
            for message in awaiting:
                _fetch_and_apply(gateway, message, stats)
    except _Stop as stop:
        stats.stopped = str(stop)
    log.info("reconciled: %s", stats)
    return stats


def _fair(per_team: Sequence[Sequence[T]], limit: int) -> list[T]:
    """The teams' lists interleaved (one of each in turn), at most `limit`."""
    rounds = zip_longest(*per_team)
    return [item for item in chain.from_iterable(rounds) if item is not None][:limit]


# ---------------------------------------------------------------------- awaiting


def _awaiting(
    team_id: uuid.UUID, older_than: timedelta, max_age: timedelta, limit: int
) -> list[_Awaiting]:
    now = func.now()
    with tenant_session(team_id) as session:
        rows = session.execute(
            select(Message.id, Message.provider_sid)
            .where(Message.team_id == team_id)
            .where(Message.status.in_(AWAITING_OUTCOME))
            .where(Message.provider_sid.is_not(None))
            .where(Message.updated_at < now - older_than)
            .where(Message.updated_at >= now - max_age)
            .order_by(func.random())
            .limit(limit)
        ).all()
    return [_Awaiting(team_id, message_id, sid) for message_id, sid in rows]


def _fetch_and_apply(gateway: TwilioGateway, message: _Awaiting, stats: ReconcileStats) -> None:
    try:
        found = gateway.client.messages(message.sid).fetch()
    except TwilioRestException as exc:
        if exc.status == _NOT_FOUND:
            stats.checked += 1
            stats.unknown.append(UnknownToProvider(message.team_id, message.id, message.sid))
            log.warning("the provider has no message %s (ours: %s)", message.sid, message.id)
            return
        if exc.status == _TOO_MANY_REQUESTS:
            raise _Stop(f"provider rate limit: {exc.msg}") from exc
        stats.errors += 1
        log.warning("cannot fetch %s: %s", message.sid, exc)
        return
    except requests.RequestException as exc:
        stats.errors += 1
        log.warning("cannot fetch %s: %s", message.sid, exc)
        return
    stats.checked += 1
    update = StatusUpdate(
        message_id=message.id,
        sid=message.sid,
        status=str(found.status or "").lower(),
        error_code=found.error_code,
        price=found.price,
        price_unit=found.price_unit,
    )
    _apply(update, stats)


def _apply(update: StatusUpdate, stats: ReconcileStats) -> bool:
    outcome = record_status(update)
    if outcome == "applied":
        stats.count(update.status)
        return True
    stats.unchanged += 1
    return False


# ---------------------------------------------------------------------- in doubt


def _in_doubt(
    team_id: uuid.UUID, older_than: timedelta, max_age: timedelta, limit: int
) -> list[_InDoubt]:
    now = func.now()
    with tenant_session(team_id) as session:
        rows = session.execute(
            select(Message, SendingNumber.phone_number, Campaign.messaging_service_sid)
            .join(
                Campaign,
                and_(Campaign.team_id == Message.team_id, Campaign.id == Message.campaign_id),
            )
            .outerjoin(
                SendingNumber,
                and_(
                    SendingNumber.team_id == Message.team_id,
                    SendingNumber.id == Message.sending_number_id,
                ),
            )
            .where(Message.team_id == team_id)
            .where(Message.status == MessageStatus.CLAIMED)
            .where(Message.claimed_by.is_(None))
            .where(Message.updated_at < now - older_than)
            .where(Message.created_at >= now - max_age)
            .order_by(Message.updated_at)
            .limit(limit)
        ).all()
    return [
        _InDoubt(
            team_id,
            message.id,
            message.campaign_id,
            OutboundSms(message.id, message.to_phone, sender, service, message.body, None),
            message.created_at,
        )
        for message, sender, service in rows
    ]


def _resolve_claims(
    gateway: TwilioGateway,
    claims: list[_InDoubt],
    older_than: timedelta,
    may_recover: Callable[[uuid.UUID, uuid.UUID], bool] | None,
    run_id: str,
    stats: ReconcileStats,
) -> None:
    not_found: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]] = defaultdict(list)
    for claim in claims:
        stats.in_doubt += 1
        try:
            # It cannot have left before it was written; the margin allows for clock skew.
            found = gateway.find_sent(claim.sms, claim.created_at - PROVIDER_CLOCK_SKEW)
        except ProviderRefused as refused:
            stats.errors += 1
            log.warning("cannot ask about claim %s: %s", claim.id, refused)
            continue
        if found is None:
            not_found[(claim.team_id, claim.campaign_id)].append(claim.id)
            continue
        update = StatusUpdate(
            message_id=claim.id,
            sid=found.sid,
            status=found.status.lower(),
            error_code=found.error_code,
            price=None if found.price is None else str(found.price),
            price_unit=found.price_unit,
        )
        try:
            applied = _apply(update, stats)
        except IntegrityError:
            # Its SID is already another message's: the provider's list matched a message
            # with the same recipient, sender and body. Left for a person to look at.
            stats.errors += 1
            log.warning("claim %s: %s is already another message's", claim.id, found.sid)
            continue
        if applied:
            stats.recovered += 1
    campaigns = list(not_found.items())
    random.shuffle(campaigns)  # a campaign that keeps failing does not always go first
    for (team_id, campaign_id), ids in campaigns:
        if may_recover is not None and not may_recover(team_id, campaign_id):
            stats.deferred.append(campaign_id)
            continue
        _requeue(gateway, team_id, campaign_id, ids, older_than, run_id, stats)


def _requeue(
    gateway: TwilioGateway,
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    ids: list[uuid.UUID],
    older_than: timedelta,
    run_id: str,
    stats: ReconcileStats,
) -> None:
    """`recover_claims` for the campaign, holding its row's update lock (a send run of the
    campaign between its claim and its call holds a share lock: then it waits for later)."""
    with tenant_session(team_id) as session:
        locked = session.scalar(
            select(Campaign.id)
            .where(Campaign.team_id == team_id, Campaign.id == campaign_id)
            .with_for_update(key_share=True, skip_locked=True)
        )
        recent_claims = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.team_id == team_id, Message.campaign_id == campaign_id)
            .where(Message.status == MessageStatus.CLAIMED)
            .where(Message.claimed_by.is_not(None))
            .where(Message.updated_at >= func.now() - older_than)
        )
        if locked is None or recent_claims:
            stats.deferred.append(campaign_id)
            return
        try:
            recover_claims(team_id, campaign_id, gateway, run_id)
        except ProviderRefused as refused:
            stats.errors += 1
            log.warning("cannot recover the claims of campaign %s: %s", campaign_id, refused)
            return
    with tenant_session(team_id) as session:
        stats.requeued += int(
            session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.team_id == team_id, Message.id.in_(ids))
                .where(Message.status == MessageStatus.PENDING)
            )
            or 0
        )
