"""/v1/teams/me: the calling team, its settings and its automation kill switch."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from outreach_api.deps import NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.guardrails import kill_switch
from outreach_core.notify.deliver import masked_url
from outreach_core.replies.classes import Client
from outreach_core.teams import get_team, update_team_settings

# Until users come with their names, the API key's team is who acted.
API_ACTOR = "api"

# Only 401: GET takes no input at all; PATCH adds the 422 of its body.
router = APIRouter(prefix="/v1/teams/me", tags=["teams"], responses={401: V1_ERRORS[401]})


class TeamOut(BaseModel):
    id: str
    name: str
    # Texting a phone for the first time needs its recorded consent (POST /v1/consents).
    require_consent: bool
    client: Client = Field(description="Whose classification rules and reply templates apply.")
    help_text: str | None = Field(description="The answer to HELP; null: a default.")
    voice_forward_to: str | None = Field(description="Calls go here; null: voicemail.")
    notify_webhook_url: str | None = Field(
        description="Team notifications (budget alerts, workflow steps) are posted here as "
        'Slack-compatible JSON (`{"text": ...}`); null: they are only recorded. Shown as '
        "its scheme and host only: the rest of an incoming-webhook URL is its secret."
        " In live mode it must be https and not point at a non-public address."
    )
    automation_paused_at: datetime | None = Field(
        description="Set while the team's automation is paused (POST "
        "/v1/teams/me/pause-automation): no campaign text, follow-up or workflow step goes "
        "out and auto-replies wait for review; opt-out confirmations and HELP answers do."
    )
    automation_paused_by: str | None
    automation_paused_reason: str | None


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class TeamSettingsIn(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    require_consent: bool | None = None
    client: Client | None = None
    # null clears these two: the default help text, voicemail.
    help_text: str | None = Field(default=None, min_length=1, max_length=320, pattern=NO_NUL)
    voice_forward_to: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{7,14}$")
    # An http(s) URL (checked by outreach_core.notify.deliver); null clears it.
    notify_webhook_url: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)

    @field_validator("require_consent", "client")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null: leave it out to keep the current value")
        return value


def _team_out(team_id: uuid.UUID) -> TeamOut:
    team = get_team(team_id)
    assert team is not None  # its API key just resolved to it
    return TeamOut(
        id=str(team.id),
        name=team.name,
        require_consent=team.require_consent,
        client=team.client,
        help_text=team.help_text,
        voice_forward_to=team.voice_forward_to,
        notify_webhook_url=masked_url(team.notify_webhook_url),
        automation_paused_at=team.automation_paused_at,
        automation_paused_by=team.automation_paused_by,
        automation_paused_reason=team.automation_paused_reason,
    )


@router.get("", response_model=TeamOut)
async def me(team_id: TeamId) -> TeamOut:
    return await run_in_threadpool(_team_out, team_id)


@router.patch(
    "",
    response_model=TeamOut,
    responses=error(
        422,
        "A field failed validation, the number is no valid phone, or the notification URL "
        "is not http(s).",
        ValidationErrorOut | ErrorOut,
    ),
)
async def update_me(body: TeamSettingsIn, team_id: TeamId) -> TeamOut:
    try:
        await run_in_threadpool(update_team_settings, team_id, body.model_dump(exclude_unset=True))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return await run_in_threadpool(_team_out, team_id)


@router.post(
    "/pause-automation",
    response_model=TeamOut,
    responses=error(422, "The body failed validation.", ValidationErrorOut),
)
async def pause_automation(team_id: TeamId, body: PauseIn | None = None) -> TeamOut:
    """The team's kill switch: answers once nothing more can start (a step or send in
    flight finishes first). Pausing a paused team keeps the first pause's who and why."""
    reason = body.reason if body is not None else None
    await run_in_threadpool(kill_switch.pause, team_id, API_ACTOR, reason)
    return await run_in_threadpool(_team_out, team_id)


@router.post("/resume-automation", response_model=TeamOut)
async def resume_automation(team_id: TeamId) -> TeamOut:
    await run_in_threadpool(kill_switch.resume, team_id)
    return await run_in_threadpool(_team_out, team_id)
