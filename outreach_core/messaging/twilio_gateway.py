"""The send engine's gateway to Twilio, through the real `twilio` client (pointed at the
sandbox when TWILIO_BASE_URL is set). Each message carries our reference in its status
callback URL, so callbacks find the row even before its SID is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from outreach_core.messaging.sender import OutboundSms, ProviderAnswer, ProviderRefused
from outreach_core.messaging.twilio_client import twilio_client
from outreach_core.settings import Settings, get_settings

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
# The query parameters carrying our message id and its team in the status callback URL (the
# team spares each callback a lookup; the signature covers the URL, so it cannot be forged).
REFERENCE_PARAM = "ref"
TEAM_PARAM = "team"
# How many of the recipient's latest messages recovery looks through.
RECOVERY_LOOKBACK = 50


def status_callback_url(
    public_base_url: str, message_id: uuid.UUID, team_id: uuid.UUID | None = None
) -> str:
    params = {REFERENCE_PARAM: str(message_id)}
    if team_id is not None:
        params[TEAM_PARAM] = str(team_id)
    query = urlencode(params)
    return f"{public_base_url.rstrip('/')}{STATUS_CALLBACK_PATH}?{query}"


class TwilioGateway:
    def __init__(self, client: Client, public_base_url: str) -> None:
        self.client = client
        self.public_base_url = public_base_url

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TwilioGateway:
        settings = settings or get_settings()
        sid = settings.twilio_account_sid.get_secret_value() if settings.twilio_account_sid else ""
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        client = twilio_client(sid, token, settings.twilio_base_url)
        return cls(client, settings.public_base_url)

    def send(self, sms: OutboundSms) -> ProviderAnswer:
        params: dict[str, Any] = {
            "to": sms.to,
            "body": sms.body,
            "status_callback": status_callback_url(
                self.public_base_url, sms.message_id, sms.team_id
            ),
        }
        if sms.messaging_service_sid:
            params["messaging_service_sid"] = sms.messaging_service_sid
        else:
            params["from_"] = sms.from_number
        if sms.validity_period_s is not None:
            params["validity_period"] = sms.validity_period_s
        try:
            message = self.client.messages.create(**params)
        except TwilioRestException as exc:
            raise ProviderRefused(exc.msg, exc.code, exc.status) from exc
        except requests.RequestException as exc:
            # Timeout or connection lost: whether Twilio took it is unknown.
            raise ProviderRefused(f"no answer from Twilio: {exc}", None, None) from exc
        return _answer(message)

    def find_sent(self, sms: OutboundSms, since: datetime) -> ProviderAnswer | None:
        """The recipient's latest messages, newest first; ours has the same body and sender
        and was created after `since`."""
        try:
            latest = self.client.messages.list(to=sms.to, limit=RECOVERY_LOOKBACK)
        except (TwilioRestException, requests.RequestException) as exc:
            message = f"cannot ask Twilio about {sms.message_id}: {exc}"
            raise ProviderRefused(message, None, None) from exc
        for message in latest:
            if message.body != sms.body or message.date_created is None:
                continue
            if message.date_created < since:
                continue
            if sms.from_number and message.from_ != sms.from_number:
                continue
            return _answer(message)
        return None


def _answer(message: Any) -> ProviderAnswer:
    return ProviderAnswer(
        sid=message.sid,
        status=str(message.status),
        error_code=message.error_code,
        price=parse_price(message.price),
        price_unit=message.price_unit,
    )


def parse_price(raw: object) -> Decimal | None:
    """Twilio's price: a string like "-0.00790" once known, else None or ""."""
    if raw in (None, ""):
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        return None
