"""Error bodies: the models the OpenAPI document shows, the handlers that produce them, and
the `responses=` entries routes use to document them.

Every error is `{"detail": "<what went wrong>"}`, so a client reads one field whatever the
status. Request validation adds `errors` (where and what, per problem) instead of FastAPI's
default list-valued `detail`; an unknown bucket adds `suggestions`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from outreach_core.catalog import UnknownBucket
from outreach_core.datalake import InvalidKey
from outreach_core.messaging.campaigns import (
    CampaignNotFound,
    InvalidTransition,
    NotSendable,
    UnknownNumber,
)
from outreach_core.messaging.templates import TemplateError
from outreach_core.uploads.landing import InvalidUpload, UploadTooLarge

log = logging.getLogger("outreach_api")


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, for a person to read.")


class UnknownBucketOut(ErrorOut):
    suggestions: list[str] = Field(description="Bucket ids the caller may have meant.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. `["query", "limit"]`.')
    msg: str
    type: str


class ValidationErrorOut(ErrorOut):
    errors: list[FieldError]


def _json(body: ErrorOut, status: int) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=status)


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is left out: it may be long, binary, or a secret sent by mistake.
    errors = [FieldError(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
    return _json(ValidationErrorOut(detail=summary or "invalid request", errors=errors), 422)


async def http_error(request: Request, exc: HTTPException) -> Response:
    # FastAPI turns a JSON body that is not UTF-8 into 400 "There was an error parsing the
    # body" (json.loads raises UnicodeDecodeError, not the JSONDecodeError it answers 422
    # for). Such a body is malformed JSON all the same (RFC 8259 8.1): the same 422.
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        problem = FieldError(loc=["body"], msg="JSON decode error: not UTF-8", type="json_invalid")
        return _json(ValidationErrorOut(detail=f"body: {problem.msg}", errors=[problem]), 422)
    return await http_exception_handler(request, exc)


async def unknown_bucket(_: Request, exc: UnknownBucket) -> JSONResponse:
    return _json(UnknownBucketOut(detail=str(exc), suggestions=exc.suggestions), 404)


async def invalid_upload(_: Request, exc: InvalidUpload) -> JSONResponse:
    return _json(ErrorOut(detail=str(exc)), 422)


async def too_large(_: Request, exc: UploadTooLarge) -> JSONResponse:
    return _json(ErrorOut(detail=str(exc)), 413)


async def invalid_key(_: Request, exc: InvalidKey) -> JSONResponse:
    # The key itself is not echoed: it was built from the caller's input plus our layout.
    return _json(ErrorOut(detail="invalid path: the prefix must stay inside your folder"), 400)


async def campaign_not_found(_: Request, exc: CampaignNotFound) -> JSONResponse:
    return _json(ErrorOut(detail=str(exc)), 404)


async def campaign_conflict(_: Request, exc: InvalidTransition | NotSendable) -> JSONResponse:
    return _json(ErrorOut(detail=str(exc)), 409)


async def invalid_template(_: Request, exc: TemplateError) -> JSONResponse:
    return _json(ErrorOut(detail=f"template: {exc}"), 422)


async def unknown_number(_: Request, exc: UnknownNumber) -> JSONResponse:
    return _json(ErrorOut(detail=str(exc)), 422)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with the type only: bodies and headers may carry keys or phone numbers.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return _json(ErrorOut(detail="internal error"), 500)


HANDLERS: dict[type[Exception], Any] = {
    RequestValidationError: invalid_request,
    HTTPException: http_error,
    UnknownBucket: unknown_bucket,
    InvalidUpload: invalid_upload,
    UploadTooLarge: too_large,
    InvalidKey: invalid_key,
    CampaignNotFound: campaign_not_found,
    UnknownNumber: unknown_number,
    InvalidTransition: campaign_conflict,
    NotSendable: campaign_conflict,
    TemplateError: invalid_template,
    Exception: unexpected,
}


Responses = dict[int | str, dict[str, Any]]


def error(status: int, description: str, model: Any = ErrorOut) -> Responses:
    """A `responses=` entry for one error status."""
    return {status: {"model": model, "description": description}}


# Every /v1 route takes an API key and has parameters FastAPI validates; routers start here.
V1_ERRORS: Responses = {
    **error(401, "No API key, a malformed Authorization header, or an invalid or revoked key."),
    **error(422, "A parameter failed validation; `errors` lists each problem.", ValidationErrorOut),
}
