"""/v1/leads: the caller's leads, filtered, with keyset pagination on id."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from outreach_api.deps import MAX_BIGINT, NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, ValidationErrorOut, error
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import EnrichmentStatus, LeadStatus
from outreach_core.db.tables import Lead, LeadScoreEvent
from outreach_core.leads.scoring import LeadNotFound, score_events
from outreach_core.leads.status import set_lead_status

router = APIRouter(prefix="/v1/leads", tags=["leads"], responses=V1_ERRORS)


class LeadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    first_name: str | None
    last_name: str | None
    contact_name: str | None
    email: str | None
    phone: str | None
    company_name: str | None
    title: str | None
    linkedin_url: str | None
    website: str | None
    address: str | None
    city: str | None
    county: str | None
    state: str | None
    zip: str | None
    sic_code: str | None
    bucket_id: str | None
    sector: str | None
    score: int
    status: LeadStatus
    source: str | None
    created_at: datetime
    updated_at: datetime
    # Enrichment (Apollo): the person, the organisation and what we derive from them.
    enrichment_status: EnrichmentStatus | None
    enrichment_error: str | None
    enriched_at: datetime | None
    apollo_person_id: str | None
    seniority: str | None
    departments: list[str] | None
    apollo_email: str | None
    email_status: str | None
    mobile_phones: list[str] | None
    organization_name: str | None
    organization_website: str | None
    founded_year: int | None
    employee_count: int | None
    industry: str | None
    keywords: list[str] | None
    organization_location: str | None
    annual_revenue: Decimal | None
    technologies: list[str] | None
    revenue_tier: str | None
    years_in_business: int | None
    has_verified_email: bool | None
    has_linkedin: bool | None
    is_owner_or_c_level: bool | None
    is_main_street: bool | None
    is_established: bool | None


class LeadsPage(BaseModel):
    items: list[LeadOut]
    next_after: int | None


@router.get("", response_model=LeadsPage)
def list_leads(
    team_id: TeamId,
    bucket: Annotated[str | None, Query(max_length=120, pattern=NO_NUL)] = None,
    state: Annotated[str | None, Query(min_length=2, max_length=2, pattern=NO_NUL)] = None,
    city: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    has_phone: bool | None = None,
    has_email: bool | None = None,
    enrichment_status: Annotated[
        EnrichmentStatus | Literal["pending"] | None,
        Query(description="an enrichment status, or `pending`: never looked at by a run"),
    ] = None,
    min_score: Annotated[int | None, Query(ge=0, le=100)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_BIGINT, description="id of the last lead seen")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> LeadsPage:
    query = select(Lead).where(Lead.team_id == team_id)
    if bucket:
        query = query.where(Lead.bucket_id == bucket)
    if state:
        query = query.where(Lead.state == state.upper())
    if city:
        query = query.where(func.lower(Lead.city) == city.strip().lower())
    if has_phone is not None:
        query = query.where(Lead.phone.is_not(None) if has_phone else Lead.phone.is_(None))
    if has_email is not None:
        query = query.where(Lead.email.is_not(None) if has_email else Lead.email.is_(None))
    if enrichment_status == "pending":
        query = query.where(Lead.enrichment_status.is_(None))
    elif enrichment_status is not None:
        query = query.where(Lead.enrichment_status == enrichment_status)
    if min_score is not None:
        query = query.where(Lead.score >= min_score)
    if after is not None:
        query = query.where(Lead.id > after)
    with tenant_session(team_id) as session:
        rows = list(session.scalars(query.order_by(Lead.id).limit(limit + 1)))
    items = [LeadOut.model_validate(r) for r in rows[:limit]]
    return LeadsPage(items=items, next_after=items[-1].id if len(rows) > limit else None)


class ScoreEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str = Field(
        description="A reply class (`interested`, `opt-out`, ...), `enriched`, "
        "or a workflow's own event name."
    )
    delta: int = Field(description="The change made (the rule's delta, kept within 0..cap).")
    score: int = Field(description="The lead's score after this event.")
    source: str | None = Field(
        description="What caused it: an inbound message, enrichment, a workflow execution."
    )
    at: datetime


@router.get(
    "/{lead_id}/score-events",
    response_model=list[ScoreEventOut],
    responses=error(404, "No lead with this id in your team."),
)
def lead_score_events(
    lead_id: Annotated[int, Path(ge=0, le=MAX_BIGINT)], team_id: TeamId
) -> list[LeadScoreEvent]:
    """How the lead's score came to be, oldest first: it starts at the rules' base and each
    event is one change."""
    try:
        return score_events(team_id, lead_id)
    except LeadNotFound as exc:
        raise HTTPException(404, str(exc)) from None


class LeadPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: LeadStatus = Field(
        description="Where the lead stands after contact; the analytics funnel counts "
        "qualified, meeting and deal (each with the stages after it)."
    )


@router.patch(
    "/{lead_id}",
    response_model=LeadOut,
    responses=error(404, "No lead with this id in your team.")
    | error(422, "The body failed validation (an unknown status).", ValidationErrorOut),
)
def update_lead(
    lead_id: Annotated[int, Path(ge=0, le=MAX_BIGINT)], body: LeadPatchIn, team_id: TeamId
) -> LeadOut:
    """Set the lead's status (a person or their CRM: qualified, a meeting booked, a deal)."""
    try:
        set_lead_status(team_id, lead_id, body.status)
    except LeadNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    with tenant_session(team_id) as session:
        lead = session.get(Lead, (team_id, lead_id))
        assert lead is not None
        return LeadOut.model_validate(lead)
