"""Reading one campaign's figures from the analytics marts (built by dbt into the schema
`analytics`). The marts carry `team_id` and force row-level security, so these queries run
as the application role in the team's session; they also name the team, as every query does.

The dataclasses below are the marts' columns this module reads: one definition, from which
the SELECTs are built."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, column, select, table
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Campaign
from outreach_core.messaging.campaigns import CampaignNotFound

SCHEMA = "analytics"
# undefined_table, invalid_schema_name: dbt has not built the marts in this database yet.
_NOT_BUILT = {"42P01", "3F000"}


class AnalyticsNotBuilt(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "the analytics marts are not built yet: `outreach report` refreshes them, or "
            "materialize the dbt assets in Dagster"
        )


@dataclass(frozen=True)
class DailyFunnel:
    """`analytics.fct_campaign_daily`: one UTC day of a campaign. A rate is None when its
    denominator is 0."""

    day: date
    sent: int
    delivered: int
    failed: int
    responded: int
    positive: int
    neutral: int
    negative: int
    opt_outs: int
    emails_captured: int
    qualified: int
    meetings: int
    deals: int
    delivery_rate: Decimal | None
    response_rate: Decimal | None
    positive_rate: Decimal | None
    opt_out_rate: Decimal | None


@dataclass(frozen=True)
class ClassificationCount:
    """`analytics.fct_campaign_classifications`: replies of one classification."""

    classification: str
    replies: int


@dataclass(frozen=True)
class CampaignCosts:
    """`analytics.fct_campaign_costs`, in dollars. A cost per outcome is None when there is
    no such outcome. `budget_spent` is what the campaign's budget pays for, as the send path
    counts it (enrichment is the team's); `budget_used` (budget_spent / budget, may pass 1) is
    None without a budget."""

    budget: Decimal | None
    enrichment_cost: Decimal
    sms_cost: Decimal
    follow_up_sms_cost: Decimal
    voice_cost: Decimal
    email_cost: Decimal
    total_cost: Decimal
    budget_spent: Decimal
    leads: int
    responses: int
    email_captures: int
    deals: int
    cost_per_lead: Decimal | None
    cost_per_response: Decimal | None
    cost_per_email_capture: Decimal | None
    cost_per_deal: Decimal | None
    budget_used: Decimal | None


RATE_COLUMNS = tuple(f.name for f in fields(DailyFunnel) if f.name.endswith("_rate"))
COUNT_COLUMNS = tuple(f.name for f in fields(DailyFunnel) if f.name not in {"day", *RATE_COLUMNS})


@dataclass(frozen=True)
class CampaignReport:
    campaign_id: uuid.UUID
    campaign_name: str
    daily: list[DailyFunnel]
    classifications: list[ClassificationCount]
    costs: CampaignCosts | None  # None until the marts have seen the campaign

    def daily_frame(self) -> pd.DataFrame:
        """One row per day (a datetime64 `day`), the counts as integers and the rates as
        floats (NaN where undefined)."""
        frame = _frame(self.daily, DailyFunnel)
        frame["day"] = pd.to_datetime(frame["day"])
        frame[list(COUNT_COLUMNS)] = frame[list(COUNT_COLUMNS)].astype("int64")
        frame[list(RATE_COLUMNS)] = frame[list(RATE_COLUMNS)].astype(float)
        return frame

    def classification_frame(self) -> pd.DataFrame:
        frame = _frame(self.classifications, ClassificationCount)
        frame["replies"] = frame["replies"].astype("int64")
        return frame.sort_values(["replies", "classification"], ascending=[False, True])


def _frame(rows: list[Any], kind: type) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(kind)])


def _select(mart: str, kind: type, team_id: uuid.UUID, campaign_id: uuid.UUID) -> Select[Any]:
    names = [f.name for f in fields(kind)]
    source = table(mart, *(column(n) for n in [*names, "team_id", "campaign_id"]), schema=SCHEMA)
    scope: list[ColumnElement[bool]] = [
        source.c.team_id == team_id,
        source.c.campaign_id == campaign_id,
    ]
    return select(*(source.c[n] for n in names)).where(*scope)


def _rows(session: Session, query: Select[Any], kind: type) -> list[Any]:
    try:
        return [kind(**row) for row in session.execute(query).mappings()]
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) in _NOT_BUILT:
            raise AnalyticsNotBuilt() from exc
        raise


def load_campaign_report(team_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignReport:
    """The campaign's figures as the marts hold them now (refreshing them is the caller's
    choice). CampaignNotFound for a campaign that is not the team's; AnalyticsNotBuilt when
    dbt has not built the marts."""
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id))
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        daily_query = _select("fct_campaign_daily", DailyFunnel, team_id, campaign_id)
        daily = _rows(session, daily_query.order_by(column("day")), DailyFunnel)
        classes_query = _select(
            "fct_campaign_classifications", ClassificationCount, team_id, campaign_id
        )
        classes = _rows(
            session, classes_query.order_by(column("classification")), ClassificationCount
        )
        costs = _rows(
            session,
            _select("fct_campaign_costs", CampaignCosts, team_id, campaign_id),
            CampaignCosts,
        )
    return CampaignReport(
        campaign_id=campaign_id,
        campaign_name=campaign.name,
        daily=daily,
        classifications=classes,
        costs=costs[0] if costs else None,
    )
