"""Which leads a campaign texts: the selection is evaluated once, when the campaign is
created, and every selected lead either gets its first message in the outbox (rendered,
with opt-out language, segments counted) or is left out with a reason. The counts by
reason are the answer a user sees."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, exists, insert, select
from sqlalchemy.orm import Session

from outreach_core.db.states import CampaignStatus, EnrichmentStatus, PhoneFlag
from outreach_core.db.tables import Campaign, Lead, Message, PhoneFlagRow
from outreach_core.messaging.segments import count_segments
from outreach_core.messaging.templates import MissingVariable, Template, with_opt_out

# Campaigns whose leads another campaign may not take.
ACTIVE_CAMPAIGN_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
FIRST_STEP = 0


class Exclusion(StrEnum):
    """Why a selected lead is not in the campaign."""

    NO_PHONE = "no_phone"
    SUPPRESSED = "suppressed"
    INVALID_PHONE = "invalid_phone"
    LANDLINE = "landline"
    ALREADY_IN_ACTIVE_CAMPAIGN = "already_in_active_campaign"
    MISSING_VARIABLE = "missing_variable"


class LeadSelection(BaseModel):
    """Which of the team's leads a campaign is for; every given criterion must hold."""

    model_config = ConfigDict(extra="forbid")

    bucket_id: str | None = None
    sector: str | None = None
    state: str | None = Field(default=None, min_length=2, max_length=2)
    city: str | None = None
    tags: list[str] | None = Field(default=None, description="the lead has every one of them")
    min_score: int | None = None
    enrichment_status: EnrichmentStatus | None = None
    lead_ids: list[int] | None = Field(default=None, max_length=100_000)


@dataclass
class Enrolled:
    added: int = 0
    excluded: Counter[Exclusion] = field(default_factory=Counter)

    def left_out(self) -> dict[str, int]:
        return {str(reason): n for reason, n in sorted(self.excluded.items())}


def enrol(
    session: Session,
    campaign: Campaign,
    selection: LeadSelection,
    template: Template,
    not_before: datetime,
) -> Enrolled:
    """Put the selected leads' first messages in the outbox, in the caller's transaction
    (the campaign's row and its messages commit together or not at all)."""
    result = Enrolled()
    rows: list[dict[str, Any]] = []
    flags = _flags(session, campaign.team_id)
    for lead, busy in session.execute(_selected(campaign, selection)):
        reason = _exclusion(lead, busy, flags)
        if reason is None:
            values = {name: getattr(lead, name, None) for name in template.fields}
            try:
                body = with_opt_out(template.render(values), first_message=True)
            except MissingVariable:
                reason = Exclusion.MISSING_VARIABLE
        if reason is not None:
            result.excluded[reason] += 1
            continue
        rows.append(
            {
                "team_id": campaign.team_id,
                "id": uuid.uuid4(),
                "campaign_id": campaign.id,
                "lead_id": lead.id,
                "step": FIRST_STEP,
                "to_phone": lead.phone,
                "sending_number_id": campaign.sending_number_id,
                "body": body,
                "segments": count_segments(body).segments,
                "not_before": not_before,
            }
        )
    if rows:
        session.execute(insert(Message), rows)
    result.added = len(rows)
    return result


def _selected(campaign: Campaign, selection: LeadSelection) -> Select[tuple[Lead, bool]]:
    query = select(Lead).where(Lead.team_id == campaign.team_id)
    equal = {
        Lead.bucket_id: selection.bucket_id,
        Lead.sector: selection.sector,
        Lead.state: selection.state.upper() if selection.state else None,
        Lead.enrichment_status: selection.enrichment_status,
    }
    for column, wanted in equal.items():
        if wanted is not None:
            query = query.where(column == wanted)
    if selection.city:
        query = query.where(Lead.city.ilike(selection.city))
    if selection.tags:
        query = query.where(Lead.tags.contains(selection.tags))
    if selection.min_score is not None:
        query = query.where(Lead.score >= selection.min_score)
    if selection.lead_ids is not None:
        query = query.where(Lead.id.in_(selection.lead_ids))
    # Leads already in another live campaign of the team are marked, not hidden: the
    # answer counts them.
    busy = (
        exists()
        .where(Message.team_id == Lead.team_id, Message.lead_id == Lead.id)
        .where(
            exists().where(
                and_(
                    Campaign.team_id == Message.team_id,
                    Campaign.id == Message.campaign_id,
                    Campaign.id != campaign.id,
                    Campaign.status.in_(ACTIVE_CAMPAIGN_STATUSES),
                )
            )
        )
    )
    return query.add_columns(busy.label("busy")).order_by(Lead.id)


def _flags(session: Session, team_id: uuid.UUID) -> dict[str, set[PhoneFlag]]:
    flags: dict[str, set[PhoneFlag]] = {}
    query = select(PhoneFlagRow.phone, PhoneFlagRow.flag).where(PhoneFlagRow.team_id == team_id)
    for phone, flag in session.execute(query):
        flags.setdefault(phone, set()).add(flag)
    return flags


def _exclusion(lead: Lead, busy: bool, flags: dict[str, set[PhoneFlag]]) -> Exclusion | None:
    """The first reason that applies, in the order a person would check them."""
    if not lead.phone:
        return Exclusion.NO_PHONE
    known = flags.get(lead.phone, set())
    if PhoneFlag.SUPPRESSED in known:
        return Exclusion.SUPPRESSED
    if PhoneFlag.INVALID in known or not is_textable_number(lead.phone):
        return Exclusion.INVALID_PHONE
    if PhoneFlag.LANDLINE in known:
        return Exclusion.LANDLINE
    if busy:
        return Exclusion.ALREADY_IN_ACTIVE_CAMPAIGN
    return None


def is_textable_number(phone: str) -> bool:
    """A valid E.164 number as ingestion stores it (a US number whose area code exists)."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return False
