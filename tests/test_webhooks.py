"""Twilio's status webhook over real HTTP to the in-process API, signed as Twilio signs
(`sign_callback` over OUTREACH_PUBLIC_BASE_URL + path + query): anything not signed for
exactly that URL and form is refused with 403 and changes nothing; a signed callback moves
its message forward only, books the price once, and touches only its own team's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import inspect, select
from twilio.rest.api.v2010.account.message import MessageInstance

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MessageStatus, PhoneFlag
from outreach_core.db.tables import CostLedger, Message, PhoneFlagRow
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER, sign_callback
from outreach_core.messaging.twilio_gateway import STATUS_CALLBACK_PATH, status_callback_url
from outreach_core.settings import get_settings
from tests.test_sending import active_campaign, messages, ny

TOKEN = "webhook-test-token"
ACCOUNT = "AC" + "0" * 32
PRICE = "-0.00790"
# Every status the twilio client knows a message can have.
TWILIO_STATUSES = sorted(v for k, v in vars(MessageInstance.Status).items() if k.isupper())


@dataclass
class Webhook:
    base_url: str

    def url(self, message_id: uuid.UUID | None) -> str:
        if message_id is None:
            return get_settings().public_base_url + STATUS_CALLBACK_PATH
        return status_callback_url(get_settings().public_base_url, message_id)

    def post(
        self,
        message_id: uuid.UUID | None,
        params: Mapping[str, str],
        *,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """POST the form to our callback URL for `message_id`, signed for it with the
        account's token unless another `signature` (or none) is given."""
        url = self.url(message_id)
        headers = {}
        if signed:
            headers[SIGNATURE_HEADER] = signature or sign_callback(TOKEN, url, params)
        return httpx.post(url, data=dict(params), headers=headers, timeout=30)


@pytest.fixture
def webhook(api_server, monkeypatch) -> Iterator[Webhook]:
    settings = get_settings()
    monkeypatch.setattr(settings, "twilio_auth_token", SecretStr(TOKEN))
    monkeypatch.setattr(settings, "public_base_url", api_server.base_url)
    yield Webhook(api_server.base_url)


def callback(
    sid: str, status: str, price: str | None = None, error_code: int | None = None
) -> dict[str, str]:
    """A status callback's form, as Twilio posts it."""
    form = {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": "+12125559100",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+12125550000",
    }
    if price is not None:
        form |= {"Price": price, "PriceUnit": "USD"}
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


def sent(team_id: uuid.UUID, n: int, status: MessageStatus = MessageStatus.QUEUED) -> list[Message]:
    """`n` messages of a new campaign, as the send engine leaves them after the provider
    took them: a SID each, `status`."""
    campaign_id = active_campaign(team_id, ny(n))
    now = datetime.now(UTC)
    with tenant_session(team_id) as session:
        for message in session.scalars(select(Message).where(Message.campaign_id == campaign_id)):
            message.status = status
            message.provider_sid = "SM" + uuid.uuid4().hex
            message.attempts = 1
            message.claimed_at = message.sent_at = now
    return messages(team_id, campaign_id)


def row(team_id: uuid.UUID, message_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(team_id) as session:
        message = session.get(Message, (team_id, message_id))
        assert message is not None
        return {c.key: getattr(message, c.key) for c in inspect(Message).column_attrs}


def team_rows(team_id: uuid.UUID) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Every message and cost-ledger row of the team, to compare before and after."""
    with tenant_session(team_id) as session:
        ids = list(session.scalars(select(Message.id).order_by(Message.id)))
        ledger = [
            tuple(r)
            for r in session.execute(
                select(CostLedger.id, CostLedger.amount, CostLedger.reference).order_by(
                    CostLedger.id
                )
            )
        ]
    return [row(team_id, i) for i in ids], ledger


def ledger_for(team_id: uuid.UUID, message_id: uuid.UUID) -> list[Decimal]:
    with tenant_session(team_id) as session:
        return list(
            session.scalars(
                select(CostLedger.amount).where(
                    CostLedger.reference.like(f"message:{message_id}:%")
                )
            )
        )


# ------------------------------------------------------------------ signatures


def test_an_unsigned_callback_is_refused_and_changes_nothing(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    before = team_rows(team.team_id)
    form = callback(message.provider_sid, "delivered", PRICE)

    answer = webhook.post(message.id, form, signed=False)

    assert answer.status_code == 403
    assert isinstance(answer.json()["detail"], str) and answer.json()["detail"]
    assert team_rows(team.team_id) == before


def test_a_signature_with_the_wrong_token_is_refused(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    before = team_rows(team.team_id)
    form = callback(message.provider_sid, "delivered", PRICE)
    forged = sign_callback("not-our-token", webhook.url(message.id), form)

    answer = webhook.post(message.id, form, signature=forged)

    assert answer.status_code == 403 and "detail" in answer.json()
    assert team_rows(team.team_id) == before


def test_a_signature_made_for_another_url_is_refused(team, webhook) -> None:
    first, second = sent(team.team_id, 2)
    before = team_rows(team.team_id)
    form = callback(first.provider_sid, "delivered", PRICE)
    # Signed for the other message's callback URL (another `ref`), posted to this one's.
    elsewhere = sign_callback(TOKEN, webhook.url(second.id), form)

    answer = webhook.post(first.id, form, signature=elsewhere)

    assert answer.status_code == 403
    # Nor without the query, nor for another host.
    no_query = sign_callback(TOKEN, webhook.url(None), form)
    assert webhook.post(first.id, form, signature=no_query).status_code == 403
    other_host = webhook.url(first.id).replace("127.0.0.1", "localhost")
    wrong_host = sign_callback(TOKEN, other_host, form)
    assert webhook.post(first.id, form, signature=wrong_host).status_code == 403
    assert team_rows(team.team_id) == before


def test_a_form_changed_after_signing_is_refused(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    before = team_rows(team.team_id)
    signed_for = callback(message.provider_sid, "undelivered", error_code=30006)
    signature = sign_callback(TOKEN, webhook.url(message.id), signed_for)
    tampered = signed_for | {"MessageStatus": "delivered", "SmsStatus": "delivered"}

    assert webhook.post(message.id, tampered, signature=signature).status_code == 403
    assert team_rows(team.team_id) == before


def test_a_validly_signed_callback_moves_the_message(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]

    answer = webhook.post(message.id, callback(message.provider_sid, "delivered", PRICE))

    assert answer.status_code == 204 and answer.content == b""
    after = row(team.team_id, message.id)
    assert after["status"] is MessageStatus.DELIVERED
    assert after["price"] == Decimal(PRICE) and after["price_unit"] == "USD"
    assert after["updated_at"] > message.updated_at
    assert ledger_for(team.team_id, message.id) == [Decimal("0.0079")]


def test_a_callback_without_our_reference_finds_the_message_by_sid(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    assert webhook.post(None, callback(message.provider_sid, "sent")).status_code == 204
    assert row(team.team_id, message.id)["status"] is MessageStatus.SENT


# --------------------------------------------------- duplicates, order, unknowns


def test_duplicate_and_out_of_order_callbacks_end_delivered_with_one_ledger_row(
    team, webhook
) -> None:
    message = sent(team.team_id, 1)[0]
    sid = message.provider_sid
    for status in ("delivered", "sent", "delivered", "sending", "sent"):
        assert webhook.post(message.id, callback(sid, status, PRICE)).status_code == 204
        assert row(team.team_id, message.id)["status"] is MessageStatus.DELIVERED

    assert ledger_for(team.team_id, message.id) == [Decimal("0.0079")]
    assert row(team.team_id, message.id)["price"] == Decimal(PRICE)


def test_the_price_is_booked_once_whichever_callback_first_carries_it(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    sid = message.provider_sid
    assert webhook.post(message.id, callback(sid, "sending")).status_code == 204
    assert ledger_for(team.team_id, message.id) == []
    # The late `sent` carries the price after `delivered` did: still one row.
    assert webhook.post(message.id, callback(sid, "delivered", PRICE)).status_code == 204
    assert webhook.post(message.id, callback(sid, "sent", PRICE)).status_code == 204
    assert webhook.post(None, callback(sid, "delivered", PRICE)).status_code == 204
    assert ledger_for(team.team_id, message.id) == [Decimal("0.0079")]


def test_an_unknown_message_sid_is_acknowledged_and_nothing_is_stored(
    team, other_team, webhook
) -> None:
    sent(team.team_id, 1)
    sent(other_team.team_id, 1)
    before = team_rows(team.team_id), team_rows(other_team.team_id)
    unknown = "SM" + uuid.uuid4().hex

    # By SID alone, and with a reference to no message of ours.
    assert webhook.post(None, callback(unknown, "delivered", PRICE)).status_code == 204
    assert webhook.post(uuid.uuid4(), callback(unknown, "delivered", PRICE)).status_code == 204

    assert (team_rows(team.team_id), team_rows(other_team.team_id)) == before
    for team_id in (team.team_id, other_team.team_id):
        with tenant_session(team_id) as session:
            assert session.scalar(select(Message).where(Message.provider_sid == unknown)) is None


def test_a_malformed_reference_falls_back_to_the_sid(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    url = webhook.url(None) + "?ref=not-a-uuid"
    form = callback(message.provider_sid, "delivered", PRICE)
    answer = httpx.post(url, data=form, headers={SIGNATURE_HEADER: sign_callback(TOKEN, url, form)})
    assert answer.status_code == 204
    assert row(team.team_id, message.id)["status"] is MessageStatus.DELIVERED


@pytest.mark.parametrize("with_error", [False, True])
def test_every_status_the_twilio_client_knows_is_accepted(team, webhook, with_error) -> None:
    assert len(TWILIO_STATUSES) >= 13 and "partially_delivered" in TWILIO_STATUSES
    outbox = sent(team.team_id, len(TWILIO_STATUSES), MessageStatus.CLAIMED)
    known = {s.value for s in MessageStatus}
    for message, status in zip(outbox, TWILIO_STATUSES, strict=True):
        form = callback(message.provider_sid, status, PRICE, 30008 if with_error else None)
        answer = webhook.post(message.id, form)
        assert answer.status_code == 204, (status, answer.text)
        after = row(team.team_id, message.id)
        if status not in known:
            # Not an outbound SMS status of ours (inbound, partially delivered): ignored.
            assert after["status"] is MessageStatus.CLAIMED, status
        elif not with_error or status in ("accepted", "scheduled", "queued", "sending"):
            assert after["status"] == status
        # A retryable error (30008) on a final status puts the message back in the queue.


# ------------------------------------------------------------------- tenancy


def test_a_callback_for_one_team_never_touches_another_teams_rows(
    team, other_team, webhook
) -> None:
    mine = sent(team.team_id, 2)
    theirs = sent(other_team.team_id, 2)
    before = team_rows(other_team.team_id)

    for message in mine:
        form = callback(message.provider_sid, "undelivered", PRICE, error_code=30006)
        assert webhook.post(message.id, form).status_code == 204
    # Our reference with their SID, and theirs with ours: neither matches a message.
    crossed = [(mine[0].id, theirs[0].provider_sid), (theirs[1].id, mine[1].provider_sid)]
    for message_id, sid in crossed:
        assert webhook.post(message_id, callback(sid, "delivered", PRICE)).status_code == 204

    assert team_rows(other_team.team_id) == before
    with tenant_session(other_team.team_id) as session:
        assert list(session.scalars(select(PhoneFlagRow))) == []
    for message in mine:
        assert row(team.team_id, message.id)["status"] is MessageStatus.UNDELIVERED
        assert ledger_for(team.team_id, message.id) == [Decimal("0.0079")]
    with tenant_session(team.team_id) as session:
        flags = set(session.execute(select(PhoneFlagRow.phone, PhoneFlagRow.flag)))
    assert flags == {(m.to_phone, PhoneFlag.LANDLINE) for m in mine}


# ---------------------------------------------------------------- known bugs


def test_a_late_callback_of_a_failed_attempt_does_not_cancel_its_retry(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    first_attempt = message.provider_sid
    # 30003 (unreachable) is retryable: the message goes back in the queue.
    form = callback(first_attempt, "undelivered", PRICE, error_code=30003)
    assert webhook.post(message.id, form).status_code == 204
    retry = row(team.team_id, message.id)
    assert (retry["status"], retry["provider_sid"]) == (MessageStatus.PENDING, None)

    # Twilio's `sent` for that attempt arrives late (out of order).
    assert webhook.post(message.id, callback(first_attempt, "sent", PRICE)).status_code == 204

    after = row(team.team_id, message.id)
    assert (after["status"], after["provider_sid"]) == (MessageStatus.PENDING, None)


def test_each_attempt_of_a_retried_message_is_booked(team, webhook) -> None:
    message = sent(team.team_id, 1)[0]
    form = callback(message.provider_sid, "undelivered", PRICE, error_code=30003)
    assert webhook.post(message.id, form).status_code == 204
    # The send engine sends it again (as `_send_one` records a new attempt).
    second_attempt = "SM" + uuid.uuid4().hex
    with tenant_session(team.team_id) as session:
        again = session.get(Message, (team.team_id, message.id))
        assert again is not None
        again.provider_sid, again.status, again.attempts = second_attempt, "queued", 2

    assert webhook.post(message.id, callback(second_attempt, "delivered", PRICE)).status_code == 204

    assert row(team.team_id, message.id)["status"] is MessageStatus.DELIVERED
    assert sum(ledger_for(team.team_id, message.id)) == Decimal("0.0158")
