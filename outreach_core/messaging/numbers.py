"""Sending numbers: bought through Twilio for one team, in an area code its leads know.
If buying fails the campaign does not get a number and says why: there is never a
placeholder or a random number."""

from __future__ import annotations

import uuid
from collections import Counter

import phonenumbers
import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Lead, Message, SendingNumber
from outreach_core.messaging.campaigns import attach_number, note

COUNTRY = "US"
# Numbers offered per search; the first one we can buy is taken.
SEARCH_SIZE = 5


class ProvisioningFailed(Exception):
    """No number could be bought; the message says why, for the campaign's status reason."""


def leads_area_code(team_id: uuid.UUID, campaign_id: uuid.UUID) -> str | None:
    """The most common area code among the campaign's leads in their most common state."""
    with tenant_session(team_id) as session:
        rows = session.execute(
            select(Lead.state, Message.to_phone)
            .join(Message, (Message.team_id == Lead.team_id) & (Message.lead_id == Lead.id))
            .where(Message.campaign_id == campaign_id)
        ).all()
    states = Counter(state for state, _ in rows if state)
    main = states.most_common(1)[0][0] if states else None
    codes = Counter(_area_code(phone) for state, phone in rows if main is None or state == main)
    codes.pop(None, None)
    return str(codes.most_common(1)[0][0]) if codes else None


def _area_code(phone: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    national = str(number.national_number)
    return national[:3] if number.country_code == 1 and len(national) == 10 else None


def provision_number(team_id: uuid.UUID, client: Client, area_code: str) -> SendingNumber:
    """Buy a local number in `area_code` for the team and record it as theirs alone."""
    try:
        offered = client.available_phone_numbers(COUNTRY).local.list(
            area_code=area_code, limit=SEARCH_SIZE
        )
        if not offered:
            raise ProvisioningFailed(f"Twilio has no numbers available in area code {area_code}")
        bought = client.incoming_phone_numbers.create(phone_number=offered[0].phone_number)
    except TwilioRestException as exc:
        raise ProvisioningFailed(f"Twilio refused to sell a number: {exc.msg}") from exc
    except requests.RequestException as exc:
        raise ProvisioningFailed(f"Twilio did not answer: {exc}") from exc
    number = SendingNumber(
        team_id=team_id, id=uuid.uuid4(), phone_number=bought.phone_number, provider_sid=bought.sid
    )
    try:
        with tenant_session(team_id) as session:
            session.add(number)
    except IntegrityError as exc:
        raise ProvisioningFailed(f"{bought.phone_number} already belongs to a team") from exc
    return number


def provision_for_campaign(
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    client: Client,
    actor: str,
    area_code: str | None = None,
) -> SendingNumber | None:
    """Buy a number for the campaign (in `area_code`, else its leads' main one) and attach
    it. On failure the campaign keeps no number, its status reason says why, and the audit
    log has the attempt: it cannot be scheduled until it has a number."""
    code = area_code or leads_area_code(team_id, campaign_id)
    try:
        if code is None:
            raise ProvisioningFailed("no lead has a US phone number to take an area code from")
        number = provision_number(team_id, client, code)
    except ProvisioningFailed as failed:
        reason = f"number provisioning failed: {failed}"
        note(team_id, campaign_id, actor, "number_failed", reason, set_status_reason=True)
        return None
    attach_number(team_id, campaign_id, number, actor)
    return number
