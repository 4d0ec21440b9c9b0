"""/v1/campaigns and /v1/schedule: create a campaign (its leads enrolled at once), list and
watch campaigns, move them through their status machine; the calendar of what goes out
next. The rules are `outreach_core.messaging`'s; these routes translate."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from outreach_api.deps import NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, error
from outreach_core.db.states import CampaignStatus, CampaignType
from outreach_core.db.tables import Campaign
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import (
    NewCampaign,
    campaign_counts,
    campaign_events,
    create_campaign,
    get_campaign,
    list_campaigns,
    schedule_campaign,
    transition,
)
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.numbers import provision_for_campaign
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.workflows.schedule import EntryKind, calendar

router = APIRouter(tags=["campaigns"], responses=V1_ERRORS)

NOT_FOUND = error(404, "No campaign with this id in your team.")
CONFLICT = error(409, "The campaign's status does not allow this now; `detail` says why.")
# Until users come with their names, the API key's team is who acted.
API_ACTOR = "api"


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    type: CampaignType = CampaignType.SMS
    selection: LeadSelection = Field(default_factory=LeadSelection)
    template: str = Field(
        min_length=1,
        max_length=1600,
        pattern=NO_NUL,
        description="Text with {{variables}}, e.g. 'Hi {{firstName|there}}'.",
    )
    schedule_start: datetime | None = Field(
        default=None, description="When sending may start (default: as soon as it is active)."
    )
    daily_limit: int = Field(default=defaults.CAMPAIGN_DAILY_LIMIT, gt=0, le=100_000)
    budget: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    persona: str = Field(default=defaults.CAMPAIGN_PERSONA, max_length=80, pattern=NO_NUL)
    sending_number_id: uuid.UUID | None = None
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    provision_number: bool = Field(
        default=False,
        description="Buy a number for this campaign through Twilio (in `area_code`, else the "
        "main area code of its leads). If that fails the campaign stays a draft and its "
        "`status_reason` says why.",
    )
    area_code: str | None = Field(default=None, pattern=r"^[2-9][0-9]{2}$")


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    type: CampaignType
    status: CampaignStatus
    status_reason: str | None
    selection: dict[str, object]
    template: str
    schedule_start: datetime | None
    daily_limit: int
    budget: Decimal | None
    persona: str
    sending_number_id: uuid.UUID | None
    messaging_service_sid: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class CountsOut(BaseModel):
    queued: int
    sent: int
    delivered: int
    failed: int
    cancelled: int
    blocked: dict[str, int] = Field(description="Messages blocked for good, by reason.")
    spend: Decimal = Field(description="SMS spend so far, USD.")


class CampaignEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str = Field(description="Who or what acted: `api`, `system` (the send engine), ...")
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None = Field(description="Why, e.g. which budget was reached.")


class CampaignDetailOut(CampaignOut):
    counts: CountsOut
    events: list[CampaignEventOut] = Field(description="The audit log, oldest first.")


class CampaignCreatedOut(BaseModel):
    campaign: CampaignOut
    added: int = Field(description="Leads whose first message is in the outbox.")
    left_out: dict[str, int] = Field(description="Selected leads left out, by reason.")


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class UpcomingOut(BaseModel):
    kind: EntryKind = Field(
        description="`campaign_send`: a campaign's messages due from an hour on; "
        "`workflow_execution`: one pending follow-up step (who, what, when, why)."
    )
    at: datetime = Field(description="When it may happen: the hour, or the step's due time.")
    campaign_id: uuid.UUID | None = None
    campaign_name: str | None = None
    status: str = Field(description="The campaign's status, or the execution's.")
    hour: datetime = Field(description="The hour (UTC) these messages may go out from.")
    messages: int = Field(description="Messages it sends (a follow-up step: 1 or 0).")
    execution_id: uuid.UUID | None = None
    workflow: str | None = None
    who: str | None = Field(default=None, description="The contact (and the lead's name).")
    what: str | None = Field(default=None, description="The step's action.")
    why: str | None = Field(default=None, description="The workflow and its trigger.")
    reason: str | None = Field(
        default=None, description="Why it waits, when it does (quiet_hours, awaiting_approval)."
    )


@router.post(
    "/v1/campaigns",
    status_code=201,
    response_model=CampaignCreatedOut,
    responses=error(422, "Invalid campaign, e.g. an unknown template variable."),
)
async def create(body: CampaignIn, team_id: TeamId) -> CampaignCreatedOut:
    fields = body.model_dump(exclude={"selection", "provision_number", "area_code"})
    new = NewCampaign(**fields, selection=body.selection)
    created = await run_in_threadpool(create_campaign, team_id, new, API_ACTOR)
    campaign = created.campaign
    if body.provision_number and not (body.sending_number_id or body.messaging_service_sid):
        client = TwilioGateway.from_settings().client
        await run_in_threadpool(
            provision_for_campaign, team_id, campaign.id, client, API_ACTOR, body.area_code
        )
        campaign = get_campaign(team_id, campaign.id)
    return CampaignCreatedOut(
        campaign=CampaignOut.model_validate(campaign),
        added=created.added,
        left_out=created.left_out,
    )


@router.get("/v1/campaigns", response_model=list[CampaignOut])
def list_all(team_id: TeamId, status: CampaignStatus | None = None) -> list[Campaign]:
    """The team's campaigns, newest first; `status` keeps those in that status."""
    return [c for c in list_campaigns(team_id) if status is None or c.status is status]


@router.get("/v1/campaigns/{campaign_id}", response_model=CampaignDetailOut, responses=NOT_FOUND)
def get_one(campaign_id: uuid.UUID, team_id: TeamId) -> CampaignDetailOut:
    campaign = get_campaign(team_id, campaign_id)
    counts = campaign_counts(team_id, campaign_id)
    return CampaignDetailOut(
        **CampaignOut.model_validate(campaign).model_dump(),
        counts=CountsOut(**counts.__dict__),
        events=[CampaignEventOut.model_validate(e) for e in campaign_events(team_id, campaign_id)],
    )


@router.post(
    "/v1/campaigns/{campaign_id}/schedule",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def schedule(campaign_id: uuid.UUID, team_id: TeamId) -> Campaign:
    """Draft -> scheduled: sending starts at the schedule start."""
    return schedule_campaign(team_id, campaign_id, API_ACTOR)


def _move(
    to: CampaignStatus, summary: str, only_from: tuple[CampaignStatus, ...] | None = None
) -> None:
    @router.post(
        f"/v1/campaigns/{{campaign_id}}/{_ACTIONS[to]}",
        response_model=CampaignOut,
        responses={**NOT_FOUND, **CONFLICT},
        summary=summary,
        name=f"campaign_{_ACTIONS[to]}",
    )
    def move(
        campaign_id: uuid.UUID,
        team_id: TeamId,
        body: Annotated[ReasonIn | None, Body()] = None,
    ) -> Campaign:
        reason = body.reason if body is not None else None
        return transition(team_id, campaign_id, to, API_ACTOR, reason, only_from)


_ACTIONS = {
    CampaignStatus.PAUSED: "pause",
    CampaignStatus.ACTIVE: "resume",
    CampaignStatus.CANCELLED: "cancel",
}
_move(CampaignStatus.PAUSED, "Pause: nothing more is sent once this answers")
_move(CampaignStatus.ACTIVE, "Resume a paused campaign", only_from=(CampaignStatus.PAUSED,))
_move(CampaignStatus.CANCELLED, "Cancel: its unsent messages are never sent")


@router.get("/v1/schedule", response_model=list[UpcomingOut])
def schedule_calendar(
    team_id: TeamId, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[UpcomingOut]:
    """What will go out next: the team's live campaigns' messages by hour, and its pending
    workflow executions one by one, in time order."""
    return [UpcomingOut(**entry.__dict__) for entry in calendar(team_id, limit)]
