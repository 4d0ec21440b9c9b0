"""/v1/teams/me: the calling team and its settings."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from outreach_api.deps import NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.replies.classes import Client
from outreach_core.teams import get_team, update_team_settings

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


class TeamSettingsIn(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    require_consent: bool | None = None
    client: Client | None = None
    # null clears these two: the default help text, voicemail.
    help_text: str | None = Field(default=None, min_length=1, max_length=320, pattern=NO_NUL)
    voice_forward_to: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{7,14}$")

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
    )


@router.get("", response_model=TeamOut)
async def me(team_id: TeamId) -> TeamOut:
    return await run_in_threadpool(_team_out, team_id)


@router.patch(
    "",
    response_model=TeamOut,
    responses=error(
        422,
        "A field failed validation, or the number is no valid phone.",
        ValidationErrorOut | ErrorOut,
    ),
)
async def update_me(body: TeamSettingsIn, team_id: TeamId) -> TeamOut:
    try:
        await run_in_threadpool(update_team_settings, team_id, body.model_dump(exclude_unset=True))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return await run_in_threadpool(_team_out, team_id)
