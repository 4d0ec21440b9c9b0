"""/v1/consents: record where phones agreed to be texted (a team that requires consent
texts a phone for the first time only with it), or forget a consent entered by mistake."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from outreach_api.deps import NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.messaging.consent import InvalidPhone, record_consent, withdraw_consent

router = APIRouter(prefix="/v1/consents", tags=["consents"], responses=V1_ERRORS)

# Phones per request: a form export fits, a whole list belongs in an upload.
MAX_PHONES = 1_000


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[Annotated[str, Field(min_length=1, max_length=32, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=MAX_PHONES
    )
    # Where the people agreed: "web form 2026-11", "inbound call", ...
    source: str = Field(min_length=1, max_length=500, pattern=NO_NUL)


class ConsentOut(BaseModel):
    recorded: int  # new consents
    already: int  # phones whose consent was on record


@router.post(
    "",
    response_model=ConsentOut,
    # A well-formed string that is no valid phone number is refused here, without `errors`.
    responses=error(
        422, "A field failed validation, or a phone is not valid.", ValidationErrorOut | ErrorOut
    ),
)
async def add(body: ConsentIn, team_id: TeamId) -> ConsentOut:
    try:
        recorded, phones = await run_in_threadpool(
            record_consent, team_id, body.phones, body.source
        )
    except InvalidPhone as exc:
        raise HTTPException(422, f"{exc}; nothing was recorded") from None
    return ConsentOut(recorded=recorded, already=phones - recorded)


@router.delete(
    "/{phone}",
    status_code=204,
    responses={
        **error(404, "No consent is recorded for this phone in your team."),
        **error(
            422, "The phone is malformed or not a valid number.", ValidationErrorOut | ErrorOut
        ),
    },
)
async def remove(
    phone: Annotated[str, Path(max_length=32, pattern=NO_NUL)], team_id: TeamId
) -> Response:
    try:
        removed = await run_in_threadpool(withdraw_consent, team_id, phone)
    except InvalidPhone as exc:
        raise HTTPException(422, str(exc)) from None
    if not removed:
        raise HTTPException(404, f"no consent recorded for {phone}")
    return Response(status_code=204)
