"""The analytics marts on a seeded database: `dbt build` passes its tests and the marts' numbers
equal what SQL on the operational tables says; the Dagster assets materialize with every
dbt test passing as an asset check; another team's application session reads none of a
team's mart rows.

Two teams, each with a campaign made by the real `create_campaign`, its texts marked as the
provider would have left them (sent on two days, some delivered, some failed), priced in the
ledger as status callbacks price them, replies (texts and a call) through the real inbound
processing; a follow-up text of a workflow execution; enrichment credits; monthly caps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select, text, update

from outreach_assets.analytics import (
    AnalyticsBuildError,
    analytics_dbt_assets,
    default_dbt,
    refresh_analytics,
)
from outreach_core.db.engine import owner_engine, system_session, tenant_session
from outreach_core.db.states import (
    CampaignType,
    Channel,
    CostCategory,
    ExecutionStatus,
    MessageKind,
    MessageStatus,
    WorkflowAction,
)
from outreach_core.db.tables import (
    CostLedger,
    EnrichmentCache,
    Lead,
    Message,
    SendingNumber,
    TeamBudget,
    Workflow,
    WorkflowExecution,
)
from outreach_core.inbox.processing import Inbound, process, store
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.messaging.campaigns import NewCampaign, create_campaign
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.teams import create_team
from tests.helpers import fresh_sending_number

DAY_ONE = datetime(2026, 3, 2, 15, tzinfo=UTC)
DAY_TWO = datetime(2026, 3, 3, 15, tzinfo=UTC)
SMS_PRICE = Decimal("0.0079")
CREDIT_PRICE = Decimal("0.10")
CALL = "<call>"
# Per lead, in lead order: what its text did, the day it went out, its answer, and the
# lead's status (what a person or a CRM set).
OUTCOMES: tuple[tuple[MessageStatus, datetime | None, str | None, str], ...] = (
    (MessageStatus.DELIVERED, DAY_ONE, "Yes! I'm interested, tell me more", "deal"),
    (MessageStatus.DELIVERED, DAY_ONE, "sure, send it to pat@example.com thanks", "new"),
    (MessageStatus.DELIVERED, DAY_ONE, "STOP", "new"),
    (MessageStatus.UNDELIVERED, DAY_ONE, None, "new"),
    (MessageStatus.DELIVERED, DAY_TWO, "How much does it cost?", "qualified"),
    (MessageStatus.FAILED, DAY_TWO, None, "new"),
    # No receipt came, but the answer shows it arrived.
    (MessageStatus.SENT, DAY_TWO, "not interested, thanks", "new"),
    (MessageStatus.DELIVERED, DAY_TWO, CALL, "new"),
    (MessageStatus.PENDING, None, None, "new"),  # not sent yet: no part of the funnel
)
# Where each lead of OUTCOMES ends up (opted_out wins; the status outranks the replies).
FUNNEL = [
    "deal",
    "email_captured",
    "opted_out",
    "contacted",
    "qualified",
    "contacted",
    "responded",
    "interested",
    "new",
]
MARTS = (
    "fct_campaign_daily",
    "fct_campaign_classifications",
    "fct_campaign_costs",
    "dim_leads",
    "fct_team_spend",
)


@dataclass(frozen=True)
class Seeded:
    team_id: uuid.UUID
    campaign_id: uuid.UUID
    lead_ids: list[int]


def _leads(team_id: uuid.UUID, outcomes: tuple[Any, ...]) -> list[int]:
    first = reserve_lead_ids(team_id, len(outcomes))
    with tenant_session(team_id) as session:
        session.add_all(
            Lead(
                team_id=team_id,
                id=first + n,
                first_name=f"Pat{n}",
                last_name="Lee",
                company_name=f"Plumbing {n}",
                phone=f"+1646555{n:04d}",
                state="NY",
                city="New York",
                bucket_id="ny-construction-plumbers",
                sector="construction",
                score=base_score(),
                status=status,
            )
            for n, (*_, status) in enumerate(outcomes)
        )
    return [first + n for n in range(len(outcomes))]


def _priced(message: Message, day: datetime, campaign_id: uuid.UUID | None) -> CostLedger:
    """The ledger row a status callback books for a priced attempt (messaging.delivery)."""
    return CostLedger(
        team_id=message.team_id,
        category=CostCategory.SMS,
        provider="twilio",
        operation="sms",
        units=1,
        unit_cost=SMS_PRICE,
        amount=SMS_PRICE,
        campaign_id=campaign_id,
        reference=f"message:{message.id}:SM{uuid.uuid4().hex}",
        created_at=day + timedelta(minutes=1),
    )


def seed(outcomes: tuple[Any, ...] = OUTCOMES, *, extras: bool = True) -> Seeded:
    team_id = create_team(f"analytics-{uuid.uuid4().hex[:6]}").team_id
    lead_ids = _leads(team_id, outcomes)
    number_id = uuid.uuid4()
    number = fresh_sending_number()
    with tenant_session(team_id) as session:
        session.add(SendingNumber(team_id=team_id, id=number_id, phone_number=number))
    new = NewCampaign(
        name=f"Spring {team_id.hex[:4]}",
        type=CampaignType.SMS,
        selection=LeadSelection(),
        template="Hi {{firstName|there}}",
        budget=Decimal("5.00"),
        sending_number_id=number_id,
    )
    campaign_id = create_campaign(team_id, new, "test").campaign.id
    with tenant_session(team_id) as session:
        messages = session.scalars(
            select(Message).where(Message.campaign_id == campaign_id).order_by(Message.lead_id)
        ).all()
        assert len(messages) == len(outcomes)
        for message, (status, day, _, _) in zip(messages, outcomes, strict=True):
            if day is None:
                continue
            session.execute(
                update(Message)
                .where(Message.team_id == team_id, Message.id == message.id)
                .values(status=status, sent_at=day, price=-SMS_PRICE, price_unit="USD")
            )
            session.add(_priced(message, day, campaign_id))
        phones = [m.to_phone for m in messages]
    for phone, (_, day, answer, _) in zip(phones, outcomes, strict=True):
        if answer is None or day is None:
            continue
        channel, body = (Channel.VOICE, "") if answer == CALL else (Channel.SMS, answer)
        stored = store(Inbound(f"SM{uuid.uuid4().hex}", channel, phone, number, body))
        assert stored is not None and stored.inbound_id is not None
        process(team_id, stored.inbound_id, inline=True, now=day + timedelta(hours=1))
    if extras:
        _follow_up(team_id, lead_ids[0])
        _enrichment(team_id, lead_ids[:2])
        with tenant_session(team_id) as session:
            session.add(
                TeamBudget(
                    team_id=team_id, sms_monthly_cap=Decimal("1.00"), total_monthly_cap=Decimal(2)
                )
            )
    return Seeded(team_id, campaign_id, lead_ids)


def _follow_up(team_id: uuid.UUID, lead_id: int) -> None:
    """A delivered follow-up text of a workflow execution for the lead's reply, priced as a
    status callback prices it (no campaign of its own on the message or the ledger row)."""
    with tenant_session(team_id) as session:
        item = session.execute(
            text("SELECT id, contact_phone FROM inbox_items WHERE lead_id = :l"), {"l": lead_id}
        ).one()
        workflow = Workflow(
            team_id=team_id,
            id=uuid.uuid4(),
            name="interested-no-email",
            trigger={"classification": "interested"},
            steps=[{"action": "send_sms", "text": "What's the best email for the report?"}],
            source="test",
        )
        execution = WorkflowExecution(
            team_id=team_id,
            id=uuid.uuid4(),
            workflow_id=workflow.id,
            inbox_item_id=item.id,
            step=0,
            action=WorkflowAction.SEND_SMS,
            status=ExecutionStatus.COMPLETED,
            due_at=DAY_ONE + timedelta(hours=3),
            lead_id=lead_id,
            contact_phone=item.contact_phone,
        )
        message = Message(
            team_id=team_id,
            id=uuid.uuid4(),
            kind=MessageKind.FOLLOW_UP,
            lead_id=lead_id,
            workflow_execution_id=execution.id,
            to_phone=item.contact_phone,
            body="What's the best email for the report?",
            segments=1,
            status=MessageStatus.DELIVERED,
            sent_at=DAY_ONE + timedelta(hours=3),
        )
        session.add(workflow)
        session.flush()
        session.add(execution)
        session.flush()
        session.add(message)
        session.flush()
        session.add(_priced(message, DAY_ONE + timedelta(hours=3), None))


def _enrichment(team_id: uuid.UUID, lead_ids: list[int]) -> None:
    """One bulk match that cost a credit per lead, and each lead's cache entry."""
    with tenant_session(team_id) as session:
        for lead_id in lead_ids:
            key = f"test:{lead_id}"
            session.add(
                EnrichmentCache(
                    team_id=team_id,
                    identity_key=key,
                    status="matched",
                    credits=1,
                    claimed_at=DAY_ONE,
                    expires_at=DAY_ONE + timedelta(days=30),
                )
            )
            session.execute(
                update(Lead)
                .where(Lead.team_id == team_id, Lead.id == lead_id)
                .values(enrichment_key=key, enrichment_status="enriched")
            )
        session.add(
            CostLedger(
                team_id=team_id,
                category=CostCategory.ENRICHMENT,
                provider="apollo",
                operation="people_bulk_match",
                units=len(lead_ids),
                unit_cost=CREDIT_PRICE,
                amount=CREDIT_PRICE * len(lead_ids),
                created_at=DAY_ONE - timedelta(days=1),
            )
        )


@pytest.fixture(scope="module")
def built() -> tuple[Seeded, Seeded]:
    a = seed()
    b = seed(OUTCOMES[:3], extras=False)
    refresh_analytics()  # raises if a model, a data test or a unit test fails
    return a, b


def rows(sql: str, **params: Any) -> list[dict[str, Any]]:
    """As the owner (reads every team), the way an analyst would."""
    with owner_engine().connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def test_daily_funnel_equals_the_operational_tables(built: tuple[Seeded, Seeded]) -> None:
    a, _ = built
    mart = rows(
        "SELECT * FROM analytics.fct_campaign_daily WHERE team_id = :t ORDER BY day",
        t=a.team_id,
    )
    # Counted straight from the outbox and the inbox: each lead the campaign texted, on the
    # day its text went out, with whether it was delivered (a receipt, or an answer), failed,
    # and what it answered.
    counted = rows(
        """
        WITH reached AS (
            SELECT lead_id, (min(sent_at) AT TIME ZONE 'UTC')::date AS day,
                   bool_or(status IN ('delivered', 'read')) AS receipt,
                   bool_or(status IN ('undelivered', 'failed')) AS bounced
            FROM messages
            WHERE team_id = :t AND campaign_id = :c AND kind = 'campaign'
              AND status NOT IN ('pending', 'blocked', 'cancelled')
            GROUP BY lead_id
        ), answers AS (
            SELECT lead_id, array_agg(classification::text) AS classes
            FROM inbox_items WHERE team_id = :t AND campaign_id = :c GROUP BY lead_id
        )
        SELECT r.day,
               count(*) AS sent,
               count(*) FILTER (WHERE r.receipt OR a.classes IS NOT NULL) AS delivered,
               count(*) FILTER (WHERE r.bounced AND NOT r.receipt AND a.classes IS NULL)
                   AS failed,
               count(a.classes) AS responded,
               count(*) FILTER (WHERE 'opt-out' = ANY(a.classes)) AS opt_outs,
               count(*) FILTER (WHERE 'email-capture' = ANY(a.classes)) AS emails_captured,
               count(*) FILTER (WHERE l.status IN ('qualified', 'meeting', 'deal')) AS qualified,
               count(*) FILTER (WHERE l.status = 'deal') AS deals
        FROM reached r
        LEFT JOIN answers a USING (lead_id)
        JOIN leads l ON l.team_id = :t AND l.id = r.lead_id
        GROUP BY r.day ORDER BY r.day
        """,
        t=a.team_id,
        c=a.campaign_id,
    )
    assert [{k: m[k] for k in counted[0]} for m in mart] == counted
    one, two = mart
    assert (one["sent"], one["delivered"], one["failed"], one["responded"]) == (4, 3, 1, 3)
    assert (one["positive"], one["neutral"], one["negative"]) == (2, 0, 1)
    assert (one["opt_outs"], one["emails_captured"], one["deals"]) == (1, 1, 1)
    assert (two["sent"], two["delivered"], two["failed"], two["responded"]) == (4, 3, 1, 3)
    assert (two["positive"], two["neutral"], two["negative"]) == (1, 1, 1)
    assert one["delivery_rate"] == Decimal("0.75") and one["response_rate"] == 1
    assert one["positive_rate"] == Decimal("0.6667")
    assert one["opt_out_rate"] == Decimal("0.3333")
    assert two["opt_out_rate"] == 0


def test_classifications_equal_the_inbox(built: tuple[Seeded, Seeded]) -> None:
    a, _ = built
    mart = rows(
        "SELECT classification, replies FROM analytics.fct_campaign_classifications "
        "WHERE team_id = :t ORDER BY classification",
        t=a.team_id,
    )
    counted = rows(
        "SELECT classification, count(*) AS replies FROM inbox_items "
        "WHERE team_id = :t AND campaign_id = :c GROUP BY classification ORDER BY classification",
        t=a.team_id,
        c=a.campaign_id,
    )
    assert mart == counted
    assert {r["classification"] for r in mart} == {
        "interested",
        "email-capture",
        "opt-out",
        "question",
        "not-interested",
        "called-phone-line",
    }


def test_costs_equal_the_ledger(built: tuple[Seeded, Seeded]) -> None:
    a, _ = built
    [costs] = rows("SELECT * FROM analytics.fct_campaign_costs WHERE team_id = :t", t=a.team_id)
    [ledger] = rows(
        """
        SELECT sum(amount) FILTER (WHERE category = 'sms' AND campaign_id = :c) AS sms,
               sum(amount) FILTER (WHERE category = 'sms' AND campaign_id IS NULL
                   AND split_part(reference, ':', 2)::uuid IN (
                       SELECT id FROM messages WHERE team_id = :t AND kind = 'follow_up'))
                   AS follow_up_sms,
               sum(amount) FILTER (WHERE category = 'enrichment') AS enrichment
        FROM cost_ledger WHERE team_id = :t
        """,
        t=a.team_id,
        c=a.campaign_id,
    )
    assert costs["sms_cost"] == ledger["sms"] == 8 * SMS_PRICE
    assert costs["follow_up_sms_cost"] == ledger["follow_up_sms"] == SMS_PRICE
    # Both enriched leads were texted by the campaign: all the enrichment is its.
    assert costs["enrichment_cost"] == ledger["enrichment"] == 2 * CREDIT_PRICE
    assert costs["voice_cost"] == costs["email_cost"] == 0
    total = 9 * SMS_PRICE + 2 * CREDIT_PRICE
    assert costs["total_cost"] == total
    assert (costs["leads"], costs["responses"], costs["email_captures"], costs["deals"]) == (
        8,
        6,
        1,
        1,
    )
    assert costs["cost_per_lead"] == round(total / 8, 4)
    assert costs["cost_per_response"] == round(total / 6, 4)
    assert costs["cost_per_email_capture"] == costs["cost_per_deal"] == total
    assert costs["budget"] == Decimal("5.00")
    # The budget is held to the ledger entries naming the campaign, as the send path holds
    # it; enrichment is the team's cost.
    [campaign_ledger] = rows(
        "SELECT sum(amount) AS spent FROM cost_ledger WHERE team_id = :t AND campaign_id = :c",
        t=a.team_id,
        c=a.campaign_id,
    )
    assert costs["budget_spent"] == campaign_ledger["spent"] < total
    assert costs["budget_used"] == round(campaign_ledger["spent"] / 5, 4)


def test_team_spend_against_its_caps(built: tuple[Seeded, Seeded]) -> None:
    a, _ = built
    mart = {
        (r["month"], r["category"]): r
        for r in rows("SELECT * FROM analytics.fct_team_spend WHERE team_id = :t", t=a.team_id)
    }
    counted = rows(
        "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, category, "
        "sum(amount) AS spent FROM cost_ledger WHERE team_id = :t GROUP BY 1, 2",
        t=a.team_id,
    )
    for row in counted:
        assert mart[(row["month"], row["category"])]["spent"] == row["spent"]
    months = {r["month"] for r in counted}
    assert len(mart) == 5 * len(months)  # every category and the total, every month
    march = {c: r for (m, c), r in mart.items() if m.month == 3}
    assert march["sms"]["spent"] == 9 * SMS_PRICE and march["sms"]["cap"] == 1
    assert march["sms"]["budget_used"] == round(9 * SMS_PRICE, 4)
    assert march["total"]["cap"] == 2
    assert march["voice"]["spent"] == 0 and march["voice"]["budget_used"] is None


def test_each_lead_sits_at_its_furthest_stage(built: tuple[Seeded, Seeded]) -> None:
    a, _ = built
    mart = rows(
        "SELECT lead_id, full_name, score, funnel_stage FROM analytics.dim_leads "
        "WHERE team_id = :t ORDER BY lead_id",
        t=a.team_id,
    )
    assert [r["lead_id"] for r in mart] == a.lead_ids
    assert [r["funnel_stage"] for r in mart] == FUNNEL
    assert mart[0]["full_name"] == "Pat0 Lee"
    scores = rows("SELECT id, score FROM leads WHERE team_id = :t ORDER BY id", t=a.team_id)
    assert [r["score"] for r in mart] == [r["score"] for r in scores]


def test_another_team_reads_none_of_a_teams_mart_rows(built: tuple[Seeded, Seeded]) -> None:
    a, b = built
    for mart in MARTS:
        with tenant_session(b.team_id) as session:
            seen = set(session.scalars(text(f"SELECT DISTINCT team_id FROM analytics.{mart}")))
        assert seen == {b.team_id}, mart  # its own rows, and only those
        with tenant_session(a.team_id) as session:
            assert set(session.scalars(text(f"SELECT DISTINCT team_id FROM analytics.{mart}"))) == {
                a.team_id
            }, mart
        with system_session() as session:  # the application role, no team: nothing
            assert session.scalar(text(f"SELECT count(*) FROM analytics.{mart}")) == 0, mart
    # Asking for team A's campaign by id does not get around it.
    with tenant_session(b.team_id) as session:
        assert (
            session.scalar(
                text("SELECT count(*) FROM analytics.fct_campaign_daily WHERE campaign_id = :c"),
                {"c": a.campaign_id},
            )
            == 0
        )


def test_the_dbt_assets_materialize_with_their_checks(built: tuple[Seeded, Seeded]) -> None:
    result = dg.materialize([analytics_dbt_assets], resources={"dbt": default_dbt()})
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {dg.AssetKey(["analytics", m]) for m in MARTS} <= materialized
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(analytics_dbt_assets.check_keys) > 30
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_the_dbt_assets_sit_downstream_of_the_pipeline() -> None:
    from outreach_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey(["analytics", "stg_leads"])).parent_keys
    assert dg.AssetKey(["enriched_leads"]) in upstream
    assert (
        dg.AssetKey(["leads"]) in graph.get(dg.AssetKey(["analytics", "stg_uploads"])).parent_keys
    )
    assert defs.resolve_job_def("analytics_job") is not None
    schedule = defs.resolve_schedule_def("analytics_schedule")
    assert schedule.job_name == "analytics_job"


def test_a_build_that_cannot_read_every_team_stops_and_says_why(
    built: tuple[Seeded, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner role that row-level security filters would build empty marts: the build
    refuses instead, naming the role."""
    from sqlalchemy import make_url

    from outreach_core.settings import get_settings

    role = f"analytics_nobypass_{uuid.uuid4().hex[:6]}"
    with owner_engine().connect() as conn:
        conn.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'x'"))
        conn.commit()
    try:
        url = make_url(str(get_settings().database_url.get_secret_value()))  # type: ignore[union-attr]
        monkeypatch.setenv(
            "OUTREACH_DATABASE_URL",
            url.set(username=role, password="x").render_as_string(hide_password=False),
        )
        get_settings.cache_clear()
        with pytest.raises(AnalyticsBuildError, match=f"dbt connects as {role}"):
            refresh_analytics()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        with owner_engine().connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
            conn.commit()
