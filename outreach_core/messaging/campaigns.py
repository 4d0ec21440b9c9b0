"""Campaigns as rows: created as drafts, moved through their status machine
(`CAMPAIGN_TRANSITIONS` in db/states.py) one locked row at a time, every change written to
the append-only `campaign_events` in the same transaction. Nothing about a campaign lives
in process memory, so a restart loses nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    CAMPAIGN_TRANSITIONS,
    SENDABLE_CAMPAIGN_TYPES,
    CampaignStatus,
    CampaignType,
    MessageStatus,
)
from outreach_core.db.tables import Campaign, CampaignEvent, Message, SendingNumber
from outreach_core.messaging import defaults
from outreach_core.messaging.enrolment import ACTIVE_CAMPAIGN_STATUSES, LeadSelection, enrol
from outreach_core.messaging.templates import parse_template


class CampaignNotFound(LookupError):
    def __init__(self, campaign_id: uuid.UUID) -> None:
        super().__init__(f"no campaign {campaign_id}")
        self.campaign_id = campaign_id


class InvalidTransition(ValueError):
    """A status change the machine does not allow (the API answers 409 with this text)."""

    def __init__(self, current: CampaignStatus, wanted: CampaignStatus) -> None:
        allowed = sorted(CAMPAIGN_TRANSITIONS[current])
        then = f"it can go to {', '.join(allowed)}" if allowed else "it is final"
        super().__init__(f"a {current} campaign cannot become {wanted}; {then}")
        self.current = current
        self.wanted = wanted


class NotSendable(ValueError):
    """The campaign cannot start sending (its type is not built yet, it has no number)."""


class UnknownNumber(ValueError):
    """A sending number that is not one of the team's."""


@dataclass(frozen=True)
class NewCampaign:
    """What a campaign is created with."""

    name: str
    type: CampaignType
    selection: LeadSelection
    template: str
    schedule_start: datetime | None = None
    daily_limit: int = defaults.CAMPAIGN_DAILY_LIMIT
    budget: Decimal | None = None
    persona: str = defaults.CAMPAIGN_PERSONA
    sending_number_id: uuid.UUID | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class Created:
    campaign: Campaign
    added: int
    left_out: dict[str, int]


def create_campaign(team_id: uuid.UUID, new: NewCampaign, actor: str) -> Created:
    """A draft with its leads' first messages in the outbox (or each lead's reason for being
    left out) and its first audit entry, in one transaction. A template with an unknown
    variable raises TemplateError before anything is written."""
    template = parse_template(new.template)
    with tenant_session(team_id) as session:
        if new.sending_number_id is not None and (
            session.get(SendingNumber, (team_id, new.sending_number_id)) is None
        ):
            raise UnknownNumber(
                f"sending_number_id {new.sending_number_id} is not one of your team's numbers"
            )
        campaign = Campaign(
            team_id=team_id,
            id=uuid.uuid4(),
            name=new.name,
            type=new.type,
            status=CampaignStatus.DRAFT,
            selection=new.selection.model_dump(mode="json", exclude_none=True),
            template=new.template,
            schedule_start=new.schedule_start,
            daily_limit=new.daily_limit,
            budget=new.budget,
            persona=new.persona,
            sending_number_id=new.sending_number_id,
            messaging_service_sid=new.messaging_service_sid,
            created_by=actor,
        )
        session.add(campaign)
        session.flush()
        start = new.schedule_start or datetime.now(UTC)
        enrolled = enrol(session, campaign, new.selection, template, not_before=start)
        _record(
            session,
            campaign,
            actor,
            "created",
            None,
            CampaignStatus.DRAFT,
            None,
            {"added": enrolled.added, "left_out": enrolled.left_out()},
        )
        return Created(campaign, enrolled.added, enrolled.left_out())


def schedule_campaign(team_id: uuid.UUID, campaign_id: uuid.UUID, actor: str) -> Campaign:
    """Draft -> scheduled: the send sensor starts it at its schedule start. Refused, with
    the reason, for a type that cannot send yet or a campaign with no way to send."""
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id))
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        if campaign.type not in SENDABLE_CAMPAIGN_TYPES:
            raise NotSendable(
                f"{campaign.type} campaigns cannot send yet; only "
                f"{', '.join(SENDABLE_CAMPAIGN_TYPES)} campaigns can"
            )
        if campaign.sending_number_id is None and campaign.messaging_service_sid is None:
            raise NotSendable("the campaign has no sending number or messaging service")
        return transition_in(session, campaign_id, CampaignStatus.SCHEDULED, actor)


def transition(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    to: CampaignStatus,
    actor: str,
    reason: str | None = None,
    only_from: Collection[CampaignStatus] | None = None,
) -> Campaign:
    """Move the campaign to `to` if the machine allows it from where it is now (and, when
    given, only from one of `only_from`: a resume only resumes a paused campaign). The row
    is locked for the change, so two concurrent requests (a pause and a resume, a person
    and the send engine) are decided one after the other against the status each sees.
    Cancelling also cancels the messages not sent yet, in the same transaction."""
    with tenant_session(team_id) as session:
        return transition_in(session, campaign_id, to, actor, reason, only_from)


def transition_in(
    session: Session,
    campaign_id: uuid.UUID,
    to: CampaignStatus,
    actor: str,
    reason: str | None = None,
    only_from: Collection[CampaignStatus] | None = None,
) -> Campaign:
    """`transition` inside the caller's transaction (the send engine pauses a campaign in
    the transaction that finds its budget spent)."""
    campaign = _locked(session, campaign_id)
    current = campaign.status
    allowed = to in CAMPAIGN_TRANSITIONS[current]
    if not allowed or (only_from is not None and current not in only_from):
        raise InvalidTransition(current, to)
    if to is CampaignStatus.CANCELLED:
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id)
            .where(Message.status == MessageStatus.PENDING)
            .values(status=MessageStatus.CANCELLED, updated_at=func.now())
        )
    campaign.status = to
    campaign.status_reason = reason
    campaign.updated_at = datetime.now(UTC)
    session.flush()
    _record(session, campaign, actor, "status", current, to, reason)
    return campaign


def _locked(session: Session, campaign_id: uuid.UUID) -> Campaign:
    """The campaign row, locked for a change. FOR NO KEY UPDATE: it waits for a send in
    flight (which holds the row FOR SHARE) but not for inserts that reference the campaign
    (messages, ledger rows), which only take a key-share lock."""
    campaign = session.scalar(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update(key_share=True)
    )
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def get_campaign(team_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id))
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def list_campaigns(team_id: uuid.UUID) -> list[Campaign]:
    """The team's campaigns, newest first."""
    with tenant_session(team_id) as session:
        query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id)
        return list(session.scalars(query))


def campaign_events(team_id: uuid.UUID, campaign_id: uuid.UUID) -> list[CampaignEvent]:
    """The audit log of one campaign, oldest first."""
    with tenant_session(team_id) as session:
        query = (
            select(CampaignEvent)
            .where(CampaignEvent.campaign_id == campaign_id)
            .order_by(CampaignEvent.id)
        )
        return list(session.scalars(query))


def _record(
    session: Session,
    campaign: Campaign,
    actor: str,
    action: str,
    from_status: CampaignStatus | None,
    to_status: CampaignStatus | None,
    reason: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        CampaignEvent(
            team_id=campaign.team_id,
            campaign_id=campaign.id,
            actor=actor,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            details=details,
        )
    )


# What the counts call each outbox status.
_COUNTED_AS: dict[MessageStatus, str] = {
    MessageStatus.PENDING: "queued",
    MessageStatus.CLAIMED: "queued",
    MessageStatus.ACCEPTED: "sent",
    MessageStatus.SCHEDULED: "sent",
    MessageStatus.QUEUED: "sent",
    MessageStatus.SENDING: "sent",
    MessageStatus.SENT: "sent",
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.READ: "delivered",
    MessageStatus.UNDELIVERED: "failed",
    MessageStatus.FAILED: "failed",
    MessageStatus.CANCELED: "cancelled",
    MessageStatus.CANCELLED: "cancelled",
    MessageStatus.BLOCKED: "blocked",
}


@dataclass(frozen=True)
class CampaignCounts:
    queued: int
    sent: int
    delivered: int
    failed: int
    cancelled: int
    blocked: dict[str, int]
    spend: Decimal


def campaign_counts(team_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignCounts:
    """Live counts from the outbox: where every message is, blocks by reason, and spend."""
    query = (
        select(Message.status, Message.block_reason, func.count(), func.sum(Message.price))
        .where(Message.campaign_id == campaign_id)
        .group_by(Message.status, Message.block_reason)
    )
    totals: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    spend = Decimal(0)
    with tenant_session(team_id) as session:
        for status, reason, count, price in session.execute(query):
            totals[_COUNTED_AS[status]] += count
            if status is MessageStatus.BLOCKED:
                blocked[reason or "unknown"] += count
            # Twilio reports prices as negative amounts (money leaving the account).
            spend += abs(price or 0)
    return CampaignCounts(
        queued=totals["queued"],
        sent=totals["sent"],
        delivered=totals["delivered"],
        failed=totals["failed"],
        cancelled=totals["cancelled"],
        blocked=dict(sorted(blocked.items())),
        spend=spend,
    )


@dataclass(frozen=True)
class Upcoming:
    campaign_id: uuid.UUID
    campaign_name: str
    status: CampaignStatus
    hour: datetime
    messages: int


_outbox_of_campaign = and_(Message.team_id == Campaign.team_id, Message.campaign_id == Campaign.id)


def upcoming_sends(team_id: uuid.UUID, limit: int) -> list[Upcoming]:
    """The calendar: unsent messages of live campaigns by the hour they may go out."""
    hour = func.date_trunc("hour", Message.not_before)
    query = (
        select(Campaign.id, Campaign.name, Campaign.status, hour, func.count())
        .join(Message, _outbox_of_campaign)
        .where(Message.status == MessageStatus.PENDING)
        .where(Campaign.status.in_(ACTIVE_CAMPAIGN_STATUSES))
        .group_by(Campaign.id, Campaign.name, Campaign.status, hour)
        .order_by(hour, Campaign.name)
        .limit(limit)
    )
    with tenant_session(team_id) as session:
        return [Upcoming(*row) for row in session.execute(query)]


def note(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    actor: str,
    action: str,
    reason: str,
    *,
    set_status_reason: bool = False,
) -> None:
    """An audit entry that changes no status (a number bought or not, ...)."""
    with tenant_session(team_id) as session:
        campaign = _locked(session, campaign_id)
        if set_status_reason:
            campaign.status_reason = reason
            campaign.updated_at = datetime.now(UTC)
        _record(session, campaign, actor, action, None, None, reason)


def attach_number(
    team_id: uuid.UUID, campaign_id: uuid.UUID, number: SendingNumber, actor: str
) -> None:
    """The campaign sends from `number`, and so do its messages not sent yet."""
    with tenant_session(team_id) as session:
        campaign = _locked(session, campaign_id)
        campaign.sending_number_id = number.id
        campaign.status_reason = None
        campaign.updated_at = datetime.now(UTC)
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.PENDING)
            .values(sending_number_id=number.id)
        )
        reason = f"sends from {number.phone_number}"
        _record(session, campaign, actor, "number", None, None, reason)
