"""Delivery status from the provider's callbacks. They arrive late, twice and out of
order: a status only ever moves a message forward (`MESSAGE_PROGRESS`), so a duplicate or
a late `sent` after `delivered` changes nothing. The price, once known, goes into the cost
ledger exactly once; error codes act as the send path's do (`provider_errors.yaml`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from outreach_core.costs import budget
from outreach_core.db.engine import system_session, tenant_session
from outreach_core.db.states import MESSAGE_PROGRESS, CampaignStatus, CostCategory, MessageStatus
from outreach_core.db.tables import Campaign, CostLedger, Message
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import transition_in
from outreach_core.messaging.provider_errors import ErrorAction, action_for
from outreach_core.messaging.sender import RETRY_BACKOFF, apply_error, drop_reservation
from outreach_core.messaging.twilio_gateway import parse_price
from outreach_core.settings import get_settings

# Callbacks that say the provider is still trying (not an outcome yet).
_IN_PROGRESS = {
    MessageStatus.ACCEPTED,
    MessageStatus.SCHEDULED,
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
}


@dataclass(frozen=True)
class StatusUpdate:
    message_id: uuid.UUID | None  # our reference from the callback URL
    sid: str
    status: str
    error_code: int | None
    price: str | None
    price_unit: str | None
    team_id: uuid.UUID | None = None  # the message's team, from the callback URL

    @classmethod
    def from_callback(
        cls, reference: str | None, form: Mapping[str, str], team: str | None = None
    ) -> StatusUpdate:
        code = form.get("ErrorCode") or None
        return cls(
            team_id=_uuid(team),
            message_id=_uuid(reference),
            sid=form.get("MessageSid") or form.get("SmsSid") or "",
            status=(form.get("MessageStatus") or form.get("SmsStatus") or "").lower(),
            error_code=int(code) if code and code.isdigit() else None,
            price=form.get("Price") or None,
            price_unit=form.get("PriceUnit") or None,
        )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def record_status(update: StatusUpdate) -> str:
    """Apply one callback; returns what happened, for the log ("applied", "stale", ...)."""
    team_id = update.team_id
    if team_id is None or update.message_id is None:
        # A callback URL without our team (older messages, recovery) costs a lookup.
        with system_session() as session:
            team_id = session.scalar(
                text("SELECT outreach_message_team(:i, :s)"),
                {"i": update.message_id, "s": update.sid},
            )
    if team_id is None:
        return "unknown message"
    try:
        status = MessageStatus(update.status)
    except ValueError:
        return f"unknown status {update.status!r}"
    with tenant_session(team_id) as session:
        query = select(Message).with_for_update()
        if update.message_id is not None:
            query = query.where(Message.id == update.message_id)
        else:
            query = query.where(Message.provider_sid == update.sid)
        message = session.scalar(query)
        if message is None:
            return "unknown message"
        if message.provider_sid is None:
            # Only a claim in doubt (its call timed out, or its run died after the call) may
            # learn its SID from a callback; a message waiting for a retry has none, and
            # callbacks for its earlier attempt must not stop the retry.
            if message.status is not MessageStatus.CLAIMED or not update.sid:
                return "an earlier attempt"
            message.provider_sid = update.sid
        elif update.sid and message.provider_sid != update.sid:
            return "an earlier attempt"  # the message was sent again since
        _record_price(session, message, update)
        if MESSAGE_PROGRESS[status] <= MESSAGE_PROGRESS[message.status]:
            return "stale"
        message.status = status
        message.updated_at = func.now()
        if update.error_code is not None:
            message.error_code = update.error_code
            _error(session, message, update.error_code, status)
        return "applied"


def _record_price(session: Session, message: Message, update: StatusUpdate) -> None:
    """Book each attempt's price once (Twilio bills undelivered attempts too): the ledger
    row's reference names the attempt's SID; the message keeps the sum of its attempts."""
    price = parse_price(update.price)
    if price is None or not update.sid:
        return
    reference = f"message:{message.id}:{update.sid}"
    booked = session.scalar(
        select(CostLedger.id).where(
            CostLedger.campaign_id == message.campaign_id, CostLedger.reference == reference
        )
    )
    if booked is not None:
        return
    message.price = (message.price or 0) + price
    message.price_unit = update.price_unit
    amount = abs(price)
    # The real price replaces the worst case reserved when the message was claimed.
    budget.commit_by_id(
        session,
        message.team_id,
        message.reservation_id,
        [
            budget.LedgerEntry(
                category=CostCategory.SMS,
                provider=defaults.SMS_PROVIDER,
                operation=defaults.SMS_OPERATION,
                units=message.segments,
                unit_cost=amount / max(message.segments, 1),
                amount=amount,
                campaign_id=message.campaign_id,
                reference=reference,
            )
        ],
    )
    message.reservation_id = None


def _error(session: Session, message: Message, code: int, status: MessageStatus) -> None:
    action = action_for(code, http_status=200)
    settings = get_settings()
    if status in _IN_PROGRESS:
        return
    if action is ErrorAction.RETRY and message.attempts < settings.sms_max_attempts:
        drop_reservation(session, message)
        message.status = MessageStatus.PENDING
        message.claimed_by = None
        message.provider_sid = None
        message.not_before = datetime.now(UTC) + RETRY_BACKOFF * 4 ** (message.attempts - 1)
        return
    apply_error(session, message.team_id, message, action, f"provider error {code}")
    if action is ErrorAction.CARRIER_FILTERED:
        _carrier_alarm(session, message)


def _carrier_alarm(session: Session, message: Message) -> None:
    """Carrier filtering says the content or the number looks like spam to carriers: past
    the threshold the campaign pauses for a person to look."""
    if message.campaign_id is None:
        return  # a reply: no campaign to pause
    settings = get_settings()
    since = datetime.now(UTC) - timedelta(hours=24)
    filtered = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.campaign_id == message.campaign_id)
        .where(Message.error_code == message.error_code)
        .where(Message.updated_at >= since)
    )
    campaign = session.get(Campaign, (message.team_id, message.campaign_id))
    if (
        filtered is not None
        and filtered >= settings.sms_carrier_filter_alarm
        and campaign is not None
        and campaign.status is CampaignStatus.ACTIVE
    ):
        transition_in(
            session,
            campaign.id,
            CampaignStatus.PAUSED,
            defaults.SYSTEM_ACTOR,
            f"{filtered} messages filtered by carriers (30007) in 24 h",
        )
