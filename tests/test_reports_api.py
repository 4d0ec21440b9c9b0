"""GET /v1/reports/campaigns/{id} serves the campaign's mart rows: the figures equal counts
computed here in SQL on the operational tables, and one team never reads another's rows,
neither through the API nor with a direct SELECT on any mart as the application role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MESSAGE_GONE_OUT, MessageKind
from tests.report_seed import OUTCOMES, SeededTeams, seeded_teams

MARTS = (
    "fct_campaign_daily",
    "fct_campaign_classifications",
    "fct_campaign_costs",
    "dim_leads",
    "fct_team_spend",
)
GONE_OUT = [str(s) for s in MESSAGE_GONE_OUT]


@pytest.fixture(scope="module")
def seeded() -> SeededTeams:
    return seeded_teams()


@pytest.fixture
def as_team(api_server) -> Iterator:  # type: ignore[no-untyped-def]
    clients: list[httpx.Client] = []

    def client(api_key: str) -> httpx.Client:
        c = httpx.Client(
            base_url=api_server.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        clients.append(c)
        return c

    yield client
    for c in clients:
        c.close()


def _sql(team_id: uuid.UUID, query: str, **params: object) -> list[dict[str, object]]:
    with tenant_session(team_id) as session:
        rows = session.execute(text(query), {"team": team_id, **params}).mappings().all()
    return [dict(r) for r in rows]


def test_the_report_equals_counts_computed_in_sql(seeded: SeededTeams, as_team) -> None:
    a = seeded.a
    answer = as_team(a.team.api_key).get(f"/v1/reports/campaigns/{a.campaign_id}")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["campaign_name"] == a.name

    # Each lead texted once: its day is when its text went out, delivered means a receipt
    # (or a reply), and a reply is an inbox item of the campaign from the lead's phone.
    expected_daily = _sql(
        a.team.team_id,
        """
        SELECT (m.sent_at AT TIME ZONE 'UTC')::date AS day,
               count(*) AS sent,
               count(*) FILTER (WHERE m.status IN ('delivered', 'read') OR r.phone IS NOT NULL)
                   AS delivered,
               count(*) FILTER (WHERE m.status IN ('undelivered', 'failed')
                                AND r.phone IS NULL) AS failed,
               count(r.phone) AS responded,
               count(*) FILTER (WHERE r.classification = 'opt-out') AS opt_outs,
               count(*) FILTER (WHERE r.classification = 'email-capture') AS emails_captured
        FROM messages m
        LEFT JOIN (SELECT DISTINCT contact_phone AS phone, classification FROM inbox_items
                   WHERE team_id = :team AND campaign_id = :campaign) r
               ON r.phone = m.to_phone
        WHERE m.team_id = :team AND m.campaign_id = :campaign AND m.kind = :kind
          AND m.status = ANY(:gone_out)
        GROUP BY 1 ORDER BY 1
        """,
        campaign=a.campaign_id,
        kind=str(MessageKind.CAMPAIGN),
        gone_out=GONE_OUT,
    )
    served = [{k: row[k] for k in ("day", *list(expected_daily[0])[1:])} for row in report["daily"]]
    assert served == [{**r, "day": r["day"].isoformat()} for r in expected_daily]
    # The seed's own arithmetic, so the SQL above cannot agree with the marts by accident.
    assert [r["sent"] for r in expected_daily] == [4, 5]
    assert sum(r["responded"] for r in expected_daily) == sum(1 for o in OUTCOMES if o[2])
    for row in report["daily"]:
        assert Decimal(row["delivery_rate"]) == round(Decimal(row["delivered"]) / row["sent"], 4)

    expected_classes = _sql(
        a.team.team_id,
        "SELECT classification, count(*) AS replies FROM inbox_items "
        "WHERE team_id = :team AND campaign_id = :campaign GROUP BY 1 ORDER BY 1",
        campaign=a.campaign_id,
    )
    assert report["classifications"] == expected_classes
    assert len(expected_classes) >= 4

    [ledger] = _sql(
        a.team.team_id,
        "SELECT sum(amount) FILTER (WHERE category = 'sms') AS sms, sum(amount) AS total, "
        "(SELECT budget FROM campaigns WHERE team_id = :team AND id = :campaign) AS budget "
        "FROM cost_ledger WHERE team_id = :team AND campaign_id = :campaign",
        campaign=a.campaign_id,
    )
    costs = report["costs"]
    assert Decimal(costs["sms_cost"]) == ledger["sms"]
    assert Decimal(costs["total_cost"]) == ledger["total"]  # no enrichment, no follow-ups
    assert Decimal(costs["budget"]) == ledger["budget"]
    # The budget counts what the send path counts: the ledger entries naming the campaign.
    assert Decimal(costs["budget_spent"]) == ledger["total"]
    assert Decimal(costs["budget_used"]) == round(ledger["total"] / ledger["budget"], 4)
    sent = sum(r["sent"] for r in expected_daily)
    responded = sum(r["responded"] for r in expected_daily)
    assert (costs["leads"], costs["responses"]) == (sent, responded)
    assert Decimal(costs["cost_per_lead"]) == round(ledger["total"] / sent, 4)
    assert costs["deals"] == 0 and costs["cost_per_deal"] is None


def test_another_teams_campaign_is_not_found(seeded: SeededTeams, as_team) -> None:
    a, b = seeded.a, seeded.b
    answer = as_team(b.team.api_key).get(f"/v1/reports/campaigns/{a.campaign_id}")
    assert answer.status_code == 404
    assert answer.json() == {"detail": f"no campaign {a.campaign_id}"}
    unknown = uuid.uuid4()
    answer = as_team(a.team.api_key).get(f"/v1/reports/campaigns/{unknown}")
    assert answer.status_code == 404 and str(unknown) in answer.json()["detail"]
    # B reads its own campaign's report.
    own = as_team(b.team.api_key).get(f"/v1/reports/campaigns/{b.campaign_id}")
    assert own.status_code == 200 and own.json()["daily"], own.text


@pytest.mark.parametrize("mart", MARTS)
def test_the_application_role_reads_only_its_teams_mart_rows(
    seeded: SeededTeams, mart: str
) -> None:
    a, b = seeded.a.team.team_id, seeded.b.team.team_id
    query = f"SELECT DISTINCT team_id FROM analytics.{mart}"
    # Both teams have rows in every mart, so what each sees is the policy's doing.
    with tenant_session(a) as session:
        assert set(session.scalars(text(query))) == {a}
    with tenant_session(b) as session:
        assert set(session.scalars(text(query))) == {b}
        named = session.scalar(
            text(f"SELECT count(*) FROM analytics.{mart} WHERE team_id = :a"), {"a": a}
        )
        assert named == 0
