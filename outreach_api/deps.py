"""FastAPI dependencies: the calling team (from its API key) and its datalake view."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from outreach_api.limits import note_failed_auth
from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.settings import get_settings
from outreach_core.teams import resolve_api_key

# PostgreSQL text cannot hold NUL and bigint stops at 2^63-1: refuse both at the edge (422)
# instead of failing in the database.
NO_NUL = r"^[^\x00]*$"
MAX_BIGINT = 2**63 - 1

# RFC 6750 b64token. Explicit ASCII ranges: `\w` or `\s` would admit Unicode.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class ExactBearer(HTTPBearer):
    """`Authorization: Bearer <key>`, read exactly. HTTPBearer stays the base class so the
    OpenAPI document keeps its bearer scheme, but its parser `str.strip()`s the credentials,
    which drops Unicode whitespace (NBSP, NEL, ...) and let `Bearer <key>\\xa0` in as the key."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials:
        headers = request.headers.getlist("authorization")
        if not headers:
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        if len(headers) > 1:
            raise _unauthorized("more than one Authorization header")
        scheme, space, token = headers[0].partition(" ")
        # The scheme is case-insensitive (RFC 9110 11.1); isascii() keeps lower() from
        # folding look-alike letters into it.
        if not (space and scheme.isascii() and scheme.lower() == "bearer"):
            raise _unauthorized(
                "malformed Authorization header: expected 'Bearer <key>' (scheme Bearer, "
                "one space, the key)"
            )
        if not _TOKEN.fullmatch(token):
            raise _unauthorized(
                "malformed Authorization header: the key must follow 'Bearer ' directly, "
                "with no other spaces, whitespace or characters around it"
            )
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


bearer = ExactBearer(
    scheme_name="HTTPBearer", description="A team API key: `Authorization: Bearer ok_...`"
)


async def current_team(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
) -> uuid.UUID:
    team_id = await run_in_threadpool(resolve_api_key, credentials.credentials)
    if team_id is None:
        # Only keys that were tried count: a missing or malformed header costs no lookup and
        # guesses nothing. Enough of these lock the address out (outreach_api.limits).
        note_failed_auth(request.scope)
        raise _unauthorized("invalid or revoked API key")
    return team_id


TeamId = Annotated[uuid.UUID, Depends(current_team)]


def team_lake(team_id: TeamId) -> TeamLake:
    return TeamLake(store_from_url(get_settings().resolved_datalake_url), team_id)


Lake = Annotated[TeamLake, Depends(team_lake)]
