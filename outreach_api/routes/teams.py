"""/v1/teams/me: the calling team and its settings."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from outreach_api.deps import TeamId
from outreach_api.errors import V1_ERRORS
from outreach_core.messaging.consent import set_require_consent
from outreach_core.teams import get_team

# Only 401: GET takes no input at all; PATCH adds the 422 of its body.
router = APIRouter(prefix="/v1/teams/me", tags=["teams"], responses={401: V1_ERRORS[401]})


class TeamOut(BaseModel):
    id: str
    name: str
    # Texting a phone for the first time needs its recorded consent (POST /v1/consents).
    require_consent: bool


class TeamSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require_consent: bool


def _team_out(team_id: uuid.UUID) -> TeamOut:
    team = get_team(team_id)
    assert team is not None  # its API key just resolved to it
    return TeamOut(id=str(team.id), name=team.name, require_consent=team.require_consent)


@router.get("", response_model=TeamOut)
async def me(team_id: TeamId) -> TeamOut:
    return await run_in_threadpool(_team_out, team_id)


@router.patch("", response_model=TeamOut, responses={422: V1_ERRORS[422]})
async def update_me(body: TeamSettingsIn, team_id: TeamId) -> TeamOut:
    await run_in_threadpool(set_require_consent, team_id, body.require_consent)
    return await run_in_threadpool(_team_out, team_id)
