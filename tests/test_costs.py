"""Spend over the API and budget caps from the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from typer.testing import CliRunner

from outreach_cli.cli import app
from outreach_core.costs import budget
from outreach_core.costs.budget import LedgerEntry
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CostCategory

# What enrichment reserves under.
ENRICH = {"category": CostCategory.ENRICHMENT, "provider": "apollo"}


def spend(team_id, units: int, unit_cost: str = "0.20") -> None:  # type: ignore[no-untyped-def]
    reservation = budget.reserve(team_id, Decimal(units) * Decimal(unit_cost), **ENRICH)
    assert reservation is not None
    with tenant_session(team_id) as s:
        budget.commit(
            s,
            reservation,
            [
                LedgerEntry(
                    "apollo",
                    "people_match",
                    units,
                    Decimal(unit_cost),
                    category=CostCategory.ENRICHMENT,
                )
            ],
        )


def test_costs_by_period_are_the_callers_only(api_server, client, team, other_team) -> None:
    spend(team.team_id, 5)
    spend(other_team.team_id, 100)
    period = datetime.now(UTC).strftime("%Y-%m")
    body = client.get("/v1/costs", params={"period": period}).json()
    assert body["period"] == period
    assert Decimal(body["total"]) == Decimal("1.00")
    assert [(line["operation"], line["units"]) for line in body["lines"]] == [("people_match", 5)]
    assert client.get("/v1/costs", params={"period": "2001-01"}).json()["lines"] == []
    for bad in ("2026-13", "november", "2026-1"):
        assert client.get("/v1/costs", params={"period": bad}).status_code == 422
    other = {"Authorization": f"Bearer {other_team.api_key}"}
    theirs = httpx.get(f"{api_server.base_url}/v1/costs", headers=other).json()
    assert Decimal(theirs["total"]) == Decimal("20.00")


def test_budget_set_caps_what_can_be_reserved(client, team) -> None:
    runner = CliRunner()
    team_opt = ["--team", str(team.team_id)]
    result = runner.invoke(
        app, ["budget", "set", *team_opt, "--category", "enrichment", "--monthly", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "$2" in result.output
    caps = client.get("/v1/costs").json()["caps"]
    assert Decimal(caps["enrichment"]) == Decimal("2") and caps["total"] is None
    spend(team.team_id, 10)  # $2.00: exactly the cap
    assert budget.reserve(team.team_id, Decimal("0.01"), **ENRICH) is None
    # Another category is not held back by the enrichment cap ...
    sms = {"category": CostCategory.SMS, "provider": "twilio"}
    assert budget.reserve(team.team_id, Decimal("1"), **sms) is not None
    # ... but the cap on the total counts every category: $2 spent + $1 reserved.
    runner.invoke(app, ["budget", "set", *team_opt, "--category", "total", "--monthly", "3.5"])
    assert budget.reserve(team.team_id, Decimal("0.6"), **sms) is None
    assert budget.reserve(team.team_id, Decimal("0.5"), **sms) is not None
    body = client.get("/v1/costs").json()
    assert Decimal(body["by_category"]["enrichment"]) == Decimal("2")
    assert Decimal(body["caps"]["total"]) == Decimal("3.5")
    for category in ("enrichment", "total"):
        cleared = runner.invoke(
            app, ["budget", "set", *team_opt, "--category", category, "--clear"]
        )
        assert cleared.exit_code == 0, cleared.output
    assert budget.reserve(team.team_id, Decimal("5"), **ENRICH) is not None
    bad = runner.invoke(app, ["budget", "set", *team_opt, "--category", "enrichment"])
    assert bad.exit_code == 2
    unknown = runner.invoke(
        app, ["budget", "set", *team_opt, "--category", "fax", "--monthly", "1"]
    )
    assert unknown.exit_code == 2 and "unknown category" in unknown.output
