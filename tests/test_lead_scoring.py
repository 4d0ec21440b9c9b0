"""Lead scores from events, with their history: ingestion starts a lead at the rules file's
base, signed reply webhooks move it (once per Twilio message), an opt-out sets 0 and holds,
enrichment adds its bonus instead of overwriting, and the history explains every change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
from sqlalchemy import select, text

from outreach_core.db.engine import owner_engine, tenant_session
from outreach_core.db.states import Channel
from outreach_core.db.tables import Lead, LeadScoreEvent, SendingNumber
from outreach_core.enrich.apollo_models import ApolloPerson
from outreach_core.enrich.derive import derive, load_scoring_table
from outreach_core.inbox.processing import Inbound, receive
from outreach_core.leads.scoring import (
    LeadNotFound,
    UnknownScoreEvent,
    apply_score_event,
    base_score,
    score_enrichment,
)
from tests.helpers import csv_bytes, fresh_sending_number, ingest, land
from tests.test_enrichment import apollo, details, enrich, person, sandbox, seed  # noqa: F401
from tests.test_inbound import LEAD, Inbox, inbox, signing  # noqa: F401


def lead_by_phone(team_id: uuid.UUID, phone: str) -> Lead:
    with tenant_session(team_id) as session:
        lead = session.scalar(select(Lead).where(Lead.phone == phone))
    assert lead is not None
    return lead


def history(client, lead_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get(f"/v1/leads/{lead_id}/score-events")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_base_score_is_written_by_ingestion_from_the_rules_file_only(team) -> None:
    with owner_engine().connect() as conn:
        default = conn.scalar(
            text(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = 'leads' AND column_name = 'score'"
            )
        )
    assert default is None
    upload = land(team.team_id, csv_bytes([{"phone": "2125550188", "name": "Ann"}]))
    with dg.DagsterInstance.ephemeral() as instance:
        ingest(instance, upload)
    lead = lead_by_phone(team.team_id, "+12125550188")
    assert lead.score == load_scoring_table().base == 50


def test_replies_move_the_score_once_per_message_and_the_history_says_why(
    team,
    inbox: Inbox,  # noqa: F811
    client,
) -> None:
    lead = lead_by_phone(team.team_id, LEAD)
    assert lead.score == 50

    sid = f"SM{uuid.uuid4().hex}"
    for _ in range(3):  # Twilio retrying one message
        assert inbox.sms("Yes I am interested, tell me more", sid=sid).status_code == 200
    inbox.sms("sure send it to bob@example.com")
    inbox.sms("No thanks, not interested")

    events = history(client, lead.id)
    assert [(e["event"], e["delta"], e["score"]) for e in events] == [
        ("interested", 25, 75),
        ("email-capture", 25, 100),  # +50, kept within the cap of 100
        ("not-interested", -50, 50),
    ]
    assert all(e["source"].startswith("inbound ") for e in events)
    assert lead_by_phone(team.team_id, LEAD).score == 50 + sum(e["delta"] for e in events)


def test_an_opt_out_sets_zero_and_it_holds_against_replies_and_enrichment(
    team,
    inbox: Inbox,  # noqa: F811
    client,
) -> None:
    lead = lead_by_phone(team.team_id, LEAD)
    inbox.sms("Yes interested!")
    inbox.sms("STOP")
    inbox.sms("Yes interested!")  # after the opt-out: recorded in the inbox, not scored
    with tenant_session(team.team_id) as session:
        score_enrichment(session, team.team_id, [lead.id], 95)

    assert lead_by_phone(team.team_id, LEAD).score == 0
    events = history(client, lead.id)
    assert [(e["event"], e["delta"], e["score"]) for e in events] == [
        ("interested", 25, 75),
        ("opt-out", -75, 0),
    ]

    inbox.sms("START")  # re-subscribed: the hold is lifted
    inbox.sms("Yes interested!")
    assert lead_by_phone(team.team_id, LEAD).score == 25


def test_enrichment_adds_its_bonus_to_what_replies_did(team, sandbox) -> None:  # noqa: F811
    people = [person(i) for i in range(12)]
    seed(team.team_id, people)
    # The person the sandbox Apollo gives the smallest profile bonus above none, so the sum
    # stays under the cap and tells "added" from "overwritten".
    today = datetime.now(UTC).date()
    bonuses = {
        i: derive(ApolloPerson.model_validate(raw), today).score - base_score()
        for i in range(len(people))
        if (raw := sandbox.lookup(details(people[i]))) is not None
    }
    bonus, i = min((b, i) for i, b in bonuses.items() if b > 0)
    phone = people[i]["phone"]
    number = fresh_sending_number()
    with tenant_session(team.team_id) as session:
        session.add(SendingNumber(team_id=team.team_id, id=uuid.uuid4(), phone_number=number))
    receive(Inbound(f"SM{uuid.uuid4().hex}", Channel.SMS, phone, number, "Yes interested!"))
    assert lead_by_phone(team.team_id, phone).score == base_score() + 25

    with dg.DagsterInstance.ephemeral() as instance:
        assert enrich(instance, team.team_id, apollo(sandbox)).success

    lead = lead_by_phone(team.team_id, phone)
    assert lead.score == min(100, base_score() + 25 + bonus)
    with tenant_session(team.team_id) as session:
        events = session.execute(
            select(LeadScoreEvent.event, LeadScoreEvent.delta, LeadScoreEvent.source)
            .where(LeadScoreEvent.lead_id == lead.id)
            .order_by(LeadScoreEvent.id)
        ).all()
    assert [(e.event, e.source) for e in events] == [
        ("interested", events[0].source),
        ("enriched", "enrichment"),
    ]
    assert events[1].delta == lead.score - base_score() - 25


def test_the_scoring_function_other_code_calls(team, inbox: Inbox) -> None:  # noqa: F811
    lead = lead_by_phone(team.team_id, LEAD)
    with tenant_session(team.team_id) as session:
        first = apply_score_event(
            session, team.team_id, lead.id, "workflow:hot-lead", delta=15, source="execution 1"
        )
        again = apply_score_event(
            session, team.team_id, lead.id, "workflow:hot-lead", delta=15, source="execution 1"
        )
        ruled = apply_score_event(session, team.team_id, lead.id, "interested", source="exec 2")
        with pytest.raises(UnknownScoreEvent, match="no scoring rule for 'promoted'"):
            apply_score_event(session, team.team_id, lead.id, "promoted")
        with pytest.raises(ValueError, match="sets the score"):
            apply_score_event(session, team.team_id, lead.id, "opt-out", delta=5)
        with pytest.raises(LeadNotFound):
            apply_score_event(session, team.team_id, 10**12, "interested")
    assert first is not None and (first.delta, first.score) == (15, 65)
    assert again is None  # the same source scores once
    assert ruled is not None and (ruled.delta, ruled.score) == (25, 90)


def test_another_teams_lead_history_is_404(
    team,
    other_team,
    inbox: Inbox,  # noqa: F811
    api_server,
) -> None:
    lead = lead_by_phone(team.team_id, LEAD)
    response = httpx.get(
        f"{api_server.base_url}/v1/leads/{lead.id}/score-events",
        headers={"Authorization": f"Bearer {other_team.api_key}"},
    )
    assert response.status_code == 404
    assert response.json() == {"detail": f"no lead {lead.id}"}
