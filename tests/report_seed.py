"""Two teams, each with a campaign that texted its leads on two days, got delivery receipts
(some failed), priced texts in the ledger and replies that went through the real inbound
processing; then the analytics marts built from it by the real dbt build. Built once per
test process and shared by the report tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import select, update

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CampaignType, Channel, CostCategory, MessageStatus
from outreach_core.db.tables import CostLedger, Lead, Message, SendingNumber
from outreach_core.inbox.processing import Inbound, process, store
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.messaging.campaigns import NewCampaign, create_campaign
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.teams import NewTeam, create_team
from tests.helpers import fresh_sending_number

DAY_ONE = datetime(2026, 3, 2, 15, tzinfo=UTC)
DAY_TWO = datetime(2026, 3, 3, 15, tzinfo=UTC)
SMS_PRICE = Decimal("0.0079")
# Per lead, in lead order: what its text did, the day it went out, and its answer.
OUTCOMES: tuple[tuple[MessageStatus, datetime | None, str | None], ...] = (
    (MessageStatus.DELIVERED, DAY_ONE, "Yes! I'm interested, tell me more"),
    (MessageStatus.DELIVERED, DAY_ONE, "sure, send it to pat@example.com thanks"),
    (MessageStatus.DELIVERED, DAY_ONE, "STOP"),
    (MessageStatus.UNDELIVERED, DAY_ONE, None),
    (MessageStatus.DELIVERED, DAY_TWO, "How much does it cost?"),
    (MessageStatus.DELIVERED, DAY_TWO, "not interested, thanks"),
    (MessageStatus.DELIVERED, DAY_TWO, None),
    (MessageStatus.FAILED, DAY_TWO, None),
    (MessageStatus.SENT, DAY_TWO, None),
    (MessageStatus.PENDING, None, None),  # not sent yet: no part of the funnel
)


@dataclass(frozen=True)
class Seeded:
    team: NewTeam
    campaign_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class SeededTeams:
    a: Seeded
    b: Seeded


def _leads(team_id: uuid.UUID, count: int) -> None:
    first = reserve_lead_ids(team_id, count)
    with tenant_session(team_id) as session:
        session.add_all(
            Lead(
                team_id=team_id,
                id=first + n,
                first_name=f"Pat{n}",
                company_name=f"Plumbing {n}",
                phone=f"+1646555{n:04d}",
                state="NY",
                city="New York",
                bucket_id="ny-construction-plumbers",
                sector="construction",
                score=base_score(),
            )
            for n in range(count)
        )


def seed_campaign(name: str, outcomes: tuple = OUTCOMES) -> Seeded:
    team = create_team(f"report-{uuid.uuid4().hex[:6]}")
    team_id = team.team_id
    _leads(team_id, len(outcomes))
    number_id = uuid.uuid4()
    number = fresh_sending_number()
    with tenant_session(team_id) as session:
        session.add(SendingNumber(team_id=team_id, id=number_id, phone_number=number))
    new = NewCampaign(
        name=name,
        type=CampaignType.SMS,
        selection=LeadSelection(),
        template="Hi {{firstName|there}}",
        budget=Decimal("1.00"),
        sending_number_id=number_id,
    )
    campaign_id = create_campaign(team_id, new, "test").campaign.id
    with tenant_session(team_id) as session:
        messages = session.scalars(
            select(Message).where(Message.campaign_id == campaign_id).order_by(Message.lead_id)
        ).all()
        assert len(messages) == len(outcomes)
        for message, (status, day, _) in zip(messages, outcomes, strict=True):
            if day is None:
                continue
            session.execute(
                update(Message)
                .where(Message.team_id == team_id, Message.id == message.id)
                .values(status=status, sent_at=day, price=-SMS_PRICE, price_unit="USD")
            )
            session.add(
                CostLedger(
                    team_id=team_id,
                    category=CostCategory.SMS,
                    provider="twilio",
                    operation="sms",
                    units=1,
                    unit_cost=SMS_PRICE,
                    amount=SMS_PRICE,
                    campaign_id=campaign_id,
                    reference=str(message.id),
                    created_at=day,
                )
            )
        phones = [m.to_phone for m in messages]
    for phone, (_, day, answer) in zip(phones, outcomes, strict=True):
        if answer is None or day is None:
            continue
        inbound = Inbound(f"SM{uuid.uuid4().hex}", Channel.SMS, phone, number, answer)
        stored = store(inbound)
        assert stored is not None and stored.inbound_id is not None
        process(team_id, stored.inbound_id, inline=True, now=day)
    return Seeded(team, campaign_id, name)


@cache
def seeded_teams() -> SeededTeams:
    """Team A's campaign (its name is hostile markup), team B's smaller one; then the marts
    refreshed, as `outreach report` does."""
    from outreach_assets.analytics import refresh_analytics

    a = seed_campaign('Spring <b>plumbers</b> & "friends" <script>alert(1)</script>')
    b = seed_campaign("Team B's campaign", OUTCOMES[:3])
    refresh_analytics()
    return SeededTeams(a, b)
