"""Creating a campaign puts each selected lead's first message in the outbox or says why
the lead was left out; other teams' leads are never selected, messaged or counted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, text

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CampaignStatus, CampaignType, MessageStatus, PhoneFlag
from outreach_core.db.tables import Message, PhoneFlagRow
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.messaging.campaigns import (
    NewCampaign,
    NotSendable,
    create_campaign,
    schedule_campaign,
    transition,
)
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.templates import OPT_OUT_TEXT, TemplateError

TEMPLATE = "Hi {{firstName}}, is {{companyName|your company}} hiring plumbers?"


def add_leads(team_id: uuid.UUID, leads: list[dict[str, Any]]) -> list[int]:
    first = reserve_lead_ids(team_id, len(leads))
    ids = list(range(first, first + len(leads)))
    with tenant_session(team_id) as session:
        for lead_id, lead in zip(ids, leads, strict=True):
            values = {
                "bucket_id": "ny-construction-plumbers",
                "state": "NY",
                "score": base_score(),
                **lead,
            }
            columns = ", ".join(["team_id", "id", *values])
            params = ", ".join([":team_id", ":id", *(f":{k}" for k in values)])
            session.execute(
                text(f"INSERT INTO leads ({columns}) VALUES ({params})"),
                {"team_id": team_id, "id": lead_id, **values},
            )
    return ids


def flag(team_id: uuid.UUID, phone: str, kind: PhoneFlag) -> None:
    with tenant_session(team_id) as session:
        session.add(PhoneFlagRow(team_id=team_id, phone=phone, flag=kind, reason="test"))


def campaign(name: str = "plumbers", **selection: Any) -> NewCampaign:
    return NewCampaign(
        name=name,
        type=CampaignType.SMS,
        selection=LeadSelection(**{"bucket_id": "ny-construction-plumbers", **selection}),
        template=TEMPLATE,
    )


def outbox(team_id: uuid.UUID, campaign_id: uuid.UUID) -> list[Message]:
    with tenant_session(team_id) as session:
        query = select(Message).where(Message.campaign_id == campaign_id).order_by(Message.lead_id)
        return list(session.scalars(query))


def test_every_selected_lead_is_added_or_left_out_with_its_reason(team) -> None:
    ids = add_leads(
        team.team_id,
        [
            {"first_name": "Ann", "phone": "+12125550101", "company_name": "Ann's Pipes"},
            {"first_name": "Bo", "phone": "+12125550102"},  # company falls back
            {"first_name": "Cy", "phone": None},
            {"first_name": "Di", "phone": "+12125550104"},
            {"first_name": "Ed", "phone": "+12125550105"},
            {"first_name": "Flo", "phone": "+12125550106"},
            {"first_name": None, "phone": "+12125550107"},  # no first name, no fallback
            {"first_name": "Gus", "phone": "+10005550108"},  # not a real number
            {"first_name": "Hal", "phone": "+13105550109", "bucket_id": "us-healthcare-dentists"},
        ],
    )
    flag(team.team_id, "+12125550104", PhoneFlag.SUPPRESSED)
    flag(team.team_id, "+12125550105", PhoneFlag.LANDLINE)
    flag(team.team_id, "+12125550106", PhoneFlag.INVALID)

    created = create_campaign(team.team_id, campaign(), actor="ann")

    assert created.added == 2
    assert created.left_out == {
        "invalid_phone": 2,
        "landline": 1,
        "missing_variable": 1,
        "no_phone": 1,
        "suppressed": 1,
    }
    messages = outbox(team.team_id, created.campaign.id)
    assert [m.lead_id for m in messages] == ids[:2]
    assert messages[0].body == f"Hi Ann, is Ann's Pipes hiring plumbers?\n{OPT_OUT_TEXT}"
    assert messages[1].body.startswith("Hi Bo, is your company hiring plumbers?")
    assert all(m.status is MessageStatus.PENDING and m.segments == 1 for m in messages)


def test_a_lead_in_another_live_campaign_is_left_out_until_that_one_ends(team) -> None:
    add_leads(team.team_id, [{"first_name": "Ann", "phone": "+12125550201"}])
    first = create_campaign(team.team_id, campaign("first"), actor="ann").campaign
    # A draft holds no lead; a scheduled campaign does.
    assert create_campaign(team.team_id, campaign("draft next"), actor="ann").added == 1
    transition(team.team_id, first.id, CampaignStatus.SCHEDULED, "ann")
    second = create_campaign(team.team_id, campaign("second"), actor="ann")
    assert (second.added, second.left_out) == (0, {"already_in_active_campaign": 1})
    transition(team.team_id, first.id, CampaignStatus.CANCELLED, "ann")
    assert create_campaign(team.team_id, campaign("third"), actor="ann").added == 1


def test_selection_criteria_combine(team) -> None:
    ids = add_leads(
        team.team_id,
        [
            {"first_name": "A", "phone": "+12125550301", "city": "Brooklyn", "score": 80},
            {"first_name": "B", "phone": "+12125550302", "city": "brooklyn", "score": 40},
            {"first_name": "C", "phone": "+12125550303", "city": "Queens", "score": 90},
            {
                "first_name": "D",
                "phone": "+12125550304",
                "city": "Brooklyn",
                "score": 95,
                "tags": ["vip", "hot"],
            },
        ],
    )
    by_city = create_campaign(team.team_id, campaign(city="BROOKLYN", min_score=60), actor="a")
    assert [m.lead_id for m in outbox(team.team_id, by_city.campaign.id)] == [ids[0], ids[3]]
    by_tag = create_campaign(team.team_id, campaign(tags=["vip"]), actor="a")
    assert [m.lead_id for m in outbox(team.team_id, by_tag.campaign.id)] == [ids[3]]
    by_id = create_campaign(team.team_id, campaign(lead_ids=[ids[1], ids[2]]), actor="a")
    assert [m.lead_id for m in outbox(team.team_id, by_id.campaign.id)] == [ids[1], ids[2]]


def test_another_teams_leads_are_never_selected_even_by_id(team, other_team) -> None:
    theirs = add_leads(other_team.team_id, [{"first_name": "Zoe", "phone": "+12125550401"}])
    ours = add_leads(team.team_id, [{"first_name": "Ann", "phone": "+12125550401"}])
    created = create_campaign(team.team_id, campaign(lead_ids=theirs + ours), actor="ann")
    # Lead ids are per team: the same number is ours, and only ours is selected once.
    assert created.added == 1 and created.left_out == {}
    [message] = outbox(team.team_id, created.campaign.id)
    assert message.team_id == team.team_id and "Ann" in message.body
    assert outbox(other_team.team_id, created.campaign.id) == []


def test_an_unknown_template_variable_is_refused_before_anything_is_written(team) -> None:
    add_leads(team.team_id, [{"first_name": "Ann", "phone": "+12125550501"}])
    bad = NewCampaign(
        name="typo",
        type=CampaignType.SMS,
        selection=LeadSelection(),
        template="Hi {{firstname}}",
    )
    with pytest.raises(TemplateError, match="firstName"):
        create_campaign(team.team_id, bad, actor="ann")
    with tenant_session(team.team_id) as session:
        assert session.scalar(text("SELECT count(*) FROM campaigns")) == 0


def test_types_not_built_yet_are_accepted_but_cannot_be_scheduled(team) -> None:
    email = NewCampaign(
        name="newsletter", type=CampaignType.EMAIL, selection=LeadSelection(), template="Hello"
    )
    created = create_campaign(team.team_id, email, actor="ann").campaign
    with pytest.raises(NotSendable, match="email campaigns cannot send yet"):
        schedule_campaign(team.team_id, created.id, "ann")
    sms = create_campaign(team.team_id, campaign(), actor="ann").campaign
    with pytest.raises(NotSendable, match="no sending number"):
        schedule_campaign(team.team_id, sms.id, "ann")
