"""FastAPI dependencies: the calling team (from its API key) and its datalake view."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.settings import get_settings
from outreach_core.teams import resolve_api_key

# PostgreSQL text cannot hold NUL and bigint stops at 2^63-1: refuse both at the edge (422)
# instead of failing in the database.
NO_NUL = r"^[^\x00]*$"
MAX_BIGINT = 2**63 - 1

bearer = HTTPBearer(auto_error=False, description="A team API key: `Bearer ok_...`")


async def current_team(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> uuid.UUID:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    team_id = await run_in_threadpool(resolve_api_key, credentials.credentials)
    if team_id is None:
        raise HTTPException(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return team_id


TeamId = Annotated[uuid.UUID, Depends(current_team)]


def team_lake(team_id: TeamId) -> TeamLake:
    return TeamLake(store_from_url(get_settings().resolved_datalake_url), team_id)


Lake = Annotated[TeamLake, Depends(team_lake)]
