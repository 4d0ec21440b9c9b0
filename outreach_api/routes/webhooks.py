"""Twilio's webhooks. Every request must carry a valid `X-Twilio-Signature` for our public
URL (OUTREACH_PUBLIC_BASE_URL + path + query): an unsigned or wrongly signed request gets
403 and changes nothing. Not in the OpenAPI document: Twilio is the only caller."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from outreach_core.db.states import Channel
from outreach_core.inbox.processing import Inbound, receive
from outreach_core.messaging.delivery import StatusUpdate, record_status
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.messaging.twilio_gateway import (
    REFERENCE_PARAM,
    STATUS_CALLBACK_PATH,
    TEAM_PARAM,
)
from outreach_core.settings import get_settings

SMS_PATH = "/webhooks/twilio/sms"
VOICE_PATH = "/webhooks/twilio/voice"
# Longest inbound text kept: Twilio concatenates at most 10 segments (1,600 characters).
MAX_BODY = 1_600
# Played when a team forwards no calls: the caller may leave a message.
VOICEMAIL_GREETING = "Thanks for calling. Please leave a message after the tone."

# Most answers (a burst's, a review's) say nothing: built once.
NO_ANSWER = str(MessagingResponse())

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
    query = request.query_params
    update = StatusUpdate.from_callback(query.get(REFERENCE_PARAM), form, query.get(TEAM_PARAM))
    outcome = await run_in_threadpool(record_status, update)
    log.info("status %s for %s: %s", update.status, update.sid, outcome)
    return Response(status_code=204)


def _required(form: dict[str, str], *names: str) -> str:
    for name in names:
        if form.get(name):
            return form[name]
    raise HTTPException(400, f"missing form field {names[0]}")


def _twiml(document: object) -> Response:
    return Response(content=str(document), media_type="application/xml")


class InFlight:
    """Inbound SMS webhooks this worker is handling now. Only the event loop's thread
    counts, so a plain integer is enough."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> int:
        self.count += 1
        return self.count

    def __exit__(self, *_: object) -> None:
        self.count -= 1


SMS_IN_FLIGHT = InFlight()


@router.post(SMS_PATH)
async def inbound_sms(request: Request) -> Response:
    """An SMS to one of our numbers: stored, classified, answered (TwiML) or queued. In a
    burst (more in flight on this worker than OUTREACH_WEBHOOK_INLINE_MAX_IN_FLIGHT) it is
    stored and classified only, and the replies run does the rest."""
    with SMS_IN_FLIGHT as in_flight:
        form = await signed_form(request)
        inbound = Inbound(
            sid=_required(form, "MessageSid", "SmsSid")[:64],
            channel=Channel.SMS,
            from_phone=_required(form, "From")[:20],
            to_phone=_required(form, "To")[:20],
            body=form.get("Body", "")[:MAX_BODY],
            opt_out_type=(form.get("OptOutType") or None),
        )
        defer = in_flight > get_settings().webhook_inline_max_in_flight
        outcome = await run_in_threadpool(receive, inbound, defer=defer)
    log.info("inbound sms %s: %s", inbound.sid, outcome.handling)
    if outcome.reply is None:
        return _twiml(NO_ANSWER)
    answer = MessagingResponse()
    answer.message(outcome.reply)
    return _twiml(answer)


@router.post(VOICE_PATH)
async def inbound_call(request: Request) -> Response:
    """A call to one of our numbers: a hot inbox item; forwarded, else voicemail."""
    form = await signed_form(request)
    inbound = Inbound(
        sid=_required(form, "CallSid")[:64],
        channel=Channel.VOICE,
        from_phone=_required(form, "From")[:20],
        to_phone=_required(form, "To")[:20],
        body="",
    )
    outcome = await run_in_threadpool(receive, inbound)
    log.info("inbound call %s: %s", inbound.sid, outcome.handling)
    answer = VoiceResponse()
    if outcome.forward_to:
        answer.dial(outcome.forward_to)
    else:
        answer.say(VOICEMAIL_GREETING)
        answer.record(max_length=120)
    return _twiml(answer)
