"""Consent for first contact. A team that requires it (`teams.require_consent`) texts a phone
for the first time only when the phone's consent is recorded (`PhoneFlag.CONSENTED`, with
where it came from); the send path checks it in the claim (`BlockReason.NO_CONSENT`).
Revoking consent is an opt-out: the phone is suppressed, which outranks consent."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

import phonenumbers
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MESSAGE_GONE_OUT, PhoneFlag
from outreach_core.db.tables import Message, PhoneFlagRow
from outreach_core.guardrails.timezones import parse_phone


class InvalidPhone(ValueError):
    """A phone that is not a valid number; names it."""


def e164(phone: str) -> str:
    """`phone` in E.164 (US national format accepted); InvalidPhone when it is not valid."""
    number = parse_phone(phone)
    if number is None:
        raise InvalidPhone(f"{phone!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def record_consent(team_id: uuid.UUID, phones: Sequence[str], source: str) -> tuple[int, int]:
    """Record that `phones` agreed to be texted, and where that was said (a form, a call);
    returns how many were new and how many distinct phones were given. Every phone is
    checked before any is written."""
    if not source.strip():
        raise ValueError("consent needs its source (where the person agreed)")
    numbers = sorted({e164(p) for p in phones})
    with tenant_session(team_id) as session:
        result = session.execute(
            text(
                "INSERT INTO phone_flags (team_id, phone, flag, reason, source) "
                "SELECT :t, p, :f, 'consent recorded', :s FROM unnest(CAST(:phones AS text[])) p "
                "ON CONFLICT DO NOTHING"
            ),
            {"t": team_id, "f": PhoneFlag.CONSENTED.value, "s": source, "phones": numbers},
        )
        return result.rowcount, len(numbers)


def withdraw_consent(team_id: uuid.UUID, phone: str) -> bool:
    """Forget a recorded consent (entered by mistake); True when there was one."""
    with tenant_session(team_id) as session:
        result = session.execute(
            delete(PhoneFlagRow).where(
                PhoneFlagRow.phone == e164(phone), PhoneFlagRow.flag == PhoneFlag.CONSENTED
            )
        )
        return result.rowcount > 0


def contacted_phones(session: Session, phones: Collection[str]) -> set[str]:
    """Those of `phones` the team has texted already (a message went out, or may have):
    texting them again is no first contact, with or without recorded consent."""
    return set(
        session.scalars(
            select(Message.to_phone)
            .where(Message.to_phone.in_(phones), Message.status.in_(MESSAGE_GONE_OUT))
            .distinct()
        )
    )
