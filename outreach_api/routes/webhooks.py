"""Twilio's webhooks. Every request must carry a valid `X-Twilio-Signature` for our public
URL (OUTREACH_PUBLIC_BASE_URL + path + query): an unsigned or wrongly signed request gets
403 and changes nothing. Not in the OpenAPI document: Twilio is the only caller."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from outreach_core.messaging.delivery import StatusUpdate, record_status
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.messaging.twilio_gateway import REFERENCE_PARAM, STATUS_CALLBACK_PATH
from outreach_core.settings import get_settings

log = logging.getLogger("outreach_api.webhooks")
router = APIRouter(include_in_schema=False)


async def signed_form(request: Request) -> dict[str, str]:
    """The form Twilio posted, once its signature checks out."""
    settings = get_settings()
    token = settings.twilio_auth_token
    signature = request.headers.get(SIGNATURE_HEADER)
    form = {k: str(v) for k, v in (await request.form()).items()}
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    # Positional arguments: newer twilio versions added an `algorithm` parameter.
    if (
        token is None
        or not signature
        or not RequestValidator(token.get_secret_value()).validate(url, form, signature)
    ):
        raise HTTPException(403, "missing or invalid X-Twilio-Signature")
    return form


@router.post(STATUS_CALLBACK_PATH, status_code=204)
async def message_status(request: Request) -> Response:
    form = await signed_form(request)
    update = StatusUpdate.from_callback(request.query_params.get(REFERENCE_PARAM), form)
    outcome = await run_in_threadpool(record_status, update)
    log.info("status %s for %s: %s", update.status, update.sid, outcome)
    return Response(status_code=204)
