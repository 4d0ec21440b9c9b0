"""Budget alerts: crossing 80% of a budget records one alert and one team notification, also
when several ledger commits cross it at once; at 100% the campaign pauses before its next
send, on the real send path against the sandbox Twilio, and its audit log says why."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from outreach_core.costs import budget
from outreach_core.costs.budget import LedgerEntry
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import BudgetScope, CampaignStatus, CostCategory
from outreach_core.db.tables import BudgetAlert, TeamNotification
from outreach_core.messaging.sender import send_campaign
from tests.test_sending import (  # noqa: F401
    BUDGET_FITS,
    active_campaign,
    gateway,
    in_ny,
    ny,
    send_until_stopped,
    twilio,
)


def enrichment_spend(amount: str) -> LedgerEntry:
    return LedgerEntry(
        "apollo", "people_match", 1, Decimal(amount), category=CostCategory.ENRICHMENT
    )


def commit(team_id: uuid.UUID, entry: LedgerEntry) -> None:
    with tenant_session(team_id) as session:
        budget.commit_by_id(session, team_id, None, [entry])


def alerts(team_id: uuid.UUID) -> list[tuple[str, int]]:
    with tenant_session(team_id) as session:
        rows = session.execute(
            select(BudgetAlert.subject, BudgetAlert.threshold_pct).order_by(BudgetAlert.id)
        ).all()
    return [(r.subject, r.threshold_pct) for r in rows]


def notifications(team_id: uuid.UUID) -> list[TeamNotification]:
    with tenant_session(team_id) as session:
        return list(session.scalars(select(TeamNotification).order_by(TeamNotification.created_at)))


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def test_commits_crossing_80_percent_together_record_one_alert_and_one_notification(
    team,
) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, Decimal("1.00"))
    commit(team.team_id, enrichment_spend("0.70"))
    assert alerts(team.team_id) == []

    # Six commits of $0.02 at once: each alone sees at most $0.72, together they make $0.82.
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def spend() -> None:
        try:
            start.wait(10)
            commit(team.team_id, enrichment_spend("0.02"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []

    subject = f"team:enrichment:{month()}"
    assert alerts(team.team_id) == [(subject, 80)]
    (sent,) = notifications(team.team_id)
    assert sent.kind == "budget_alert" and sent.dedupe_key == f"budget:{subject}:80"
    assert sent.text.startswith("Budget alert: the team's enrichment budget for ")
    assert "80% used" in sent.text
    with tenant_session(team.team_id) as session:
        alert = session.scalars(select(BudgetAlert)).one()
    assert alert.scope is BudgetScope.TEAM and alert.cap == Decimal("1.00")
    assert Decimal("0.80") <= alert.spent <= Decimal("0.82")

    commit(team.team_id, enrichment_spend("0.01"))  # still over 80%: nothing new
    assert len(notifications(team.team_id)) == 1


def test_enrichment_spend_reaching_the_total_cap_pauses_a_campaign_before_its_first_send(
    team,
    twilio,  # noqa: F811
    client,
) -> None:
    budget.set_monthly_cap(team.team_id, None, Decimal("1.00"))
    commit(team.team_id, enrichment_spend("1.00"))
    subject = f"team:total:{month()}"
    assert alerts(team.team_id) == [(subject, 80), (subject, 100)]

    campaign_id = active_campaign(team.team_id, ny(3))
    stats = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)

    assert stats.sent == 0 and twilio.requests.messages_created == 0
    detail = client.get(f"/v1/campaigns/{campaign_id}").json()
    assert detail["status"] == CampaignStatus.PAUSED
    last = detail["events"][-1]
    assert (last["actor"], last["to_status"]) == ("system", "paused")
    assert last["reason"] == "the team's monthly budget of $1.00 reached"
    # The 100% alert was recorded by the ledger commit; the pause adds no second one.
    assert alerts(team.team_id) == [(subject, 80), (subject, 100)]
    assert sorted(n.dedupe_key for n in notifications(team.team_id)) == [
        f"budget:{subject}:100",
        f"budget:{subject}:80",
    ]


def test_a_campaign_at_its_budget_pauses_before_its_next_send_and_the_team_is_told(
    team,
    twilio,  # noqa: F811
    client,
) -> None:
    campaign_id = active_campaign(team.team_id, ny(6), budget=Decimal("0.05"))
    runs = send_until_stopped(team.team_id, campaign_id, twilio)
    assert sum(r.sent for r in runs) == BUDGET_FITS

    detail = client.get(f"/v1/campaigns/{campaign_id}").json()
    assert detail["status"] == CampaignStatus.PAUSED
    paused = detail["events"][-1]
    assert (paused["actor"], paused["from_status"], paused["to_status"]) == (
        "system",
        "active",
        "paused",
    )
    assert paused["reason"] == "the campaign's budget of $0.05 reached"

    subject = f"campaign:{campaign_id}"
    assert (subject, 100) in alerts(team.team_id)
    told = [n for n in notifications(team.team_id) if n.dedupe_key == f"budget:{subject}:100"]
    assert len(told) == 1
    assert told[0].text.startswith('Budget reached: campaign "test" is used up')
    assert told[0].text.endswith("it is paused before its next send.")

    # Nothing more goes out, and a second run finds the campaign paused.
    again = send_campaign(team.team_id, campaign_id, gateway(), "r2", clock=in_ny)
    assert again.sent == 0 and "paused" in (again.stopped or "")
    assert twilio.requests.messages_created == BUDGET_FITS
