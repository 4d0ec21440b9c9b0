"""/v1/reports: a campaign's figures as the analytics marts hold them (dbt builds them; the
marts' row-level security shows a team only its own rows). The reading is
`outreach_core.reporting`'s; this route translates."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from outreach_api.deps import TeamId
from outreach_api.errors import V1_ERRORS, error
from outreach_core.reporting.queries import (
    AnalyticsNotBuilt,
    CampaignCosts,
    ClassificationCount,
    DailyFunnel,
    load_campaign_report,
)

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=V1_ERRORS)

NOT_FOUND = error(
    404,
    "No campaign with this id in your team, or no report yet because the analytics marts "
    "have not been built; `detail` says which.",
)


class CampaignReportOut(BaseModel):
    campaign_id: uuid.UUID
    campaign_name: str
    daily: list[DailyFunnel] = Field(
        description="The send, delivery and response funnel by UTC day, oldest first."
    )
    classifications: list[ClassificationCount] = Field(description="Replies by classification.")
    costs: CampaignCosts | None = Field(
        description="Costs, cost per outcome and budget used; null until the marts have "
        "seen the campaign."
    )


@router.get("/campaigns/{campaign_id}", response_model=CampaignReportOut, responses=NOT_FOUND)
def campaign_report(campaign_id: uuid.UUID, team_id: TeamId) -> CampaignReportOut:
    """The campaign's rows of the analytics marts, as of their last refresh."""
    try:
        report = load_campaign_report(team_id, campaign_id)
    except AnalyticsNotBuilt as exc:
        raise HTTPException(404, f"no report for campaign {campaign_id} yet: {exc}") from None
    return CampaignReportOut(
        campaign_id=report.campaign_id,
        campaign_name=report.campaign_name,
        daily=report.daily,
        classifications=report.classifications,
        costs=report.costs,
    )
