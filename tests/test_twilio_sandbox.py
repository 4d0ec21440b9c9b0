"""The Twilio sandbox driven by the real ``twilio`` client through the project's adapter,
over loopback; status callbacks land on a small HTTP receiver in the test."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from outreach_core.messaging.twilio_client import (
    IDEMPOTENCY_HEADER,
    ORIGINAL_HOST_HEADER,
    SIGNATURE_HEADER,
    SandboxHttpClient,
    TwilioErrorCode,
    TwilioMessageStatus,
    sign_callback,
    twilio_client,
)
from outreach_core.sandbox.twilio import (
    PRICE_UNIT,
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    Endpoint,
    SandboxTwilio,
)

SENDER = "+13125550100"
LEAD = "+12125550142"
# Short enough that a message reaches its final status in a few hundredths of a second.
FAST_STEPS = 0.01


@dataclass(frozen=True)
class Delivery:
    url: str
    params: dict[str, str]
    headers: dict[str, str]


class _Backlogged(ThreadingHTTPServer):
    # The sandbox posts from many threads at once; the default backlog of 5 overflows.
    request_queue_size = 128
    daemon_threads = True


class CallbackReceiver:
    """A webhook endpoint standing in for the API: records every POST, answers 204."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                host, port = self.server.server_address[:2]
                delivery = Delivery(f"http://{host}:{port}{self.path}", params, dict(self.headers))
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = _Backlogged(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def statuses(self, message_sid: str) -> list[str]:
        with self._lock:
            return [
                d.params["TwilioMessageStatus"]
                for d in self.deliveries
                if d.params["MessageSid"] == message_sid
            ]

    def for_message(self, message_sid: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.params["MessageSid"] == message_sid]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture
def sandbox() -> Iterator[SandboxTwilio]:
    with SandboxTwilio(status_interval=FAST_STEPS) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxTwilio) -> Client:
    return twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)


def send(
    client: Client, to: str = LEAD, body: str = "Hello from the sandbox", **kw: object
) -> MessageInstance:
    return client.messages.create(to=to, from_=SENDER, body=body, **kw)


# ---------------------------------------------------------------------- messages


def test_create_answers_like_twilio_and_advances_to_delivered(
    sandbox: SandboxTwilio, client: Client
) -> None:
    message = send(client)

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == TwilioMessageStatus.QUEUED
    assert (message.to, message.from_, message.body) == (LEAD, SENDER, "Hello from the sandbox")
    assert message.num_segments == "1" and message.price is None and message.error_code is None
    assert message.account_sid == SANDBOX_ACCOUNT_SID and message.direction == "outbound-api"
    assert isinstance(message.date_created, datetime) and message.date_sent is None
    assert message.uri == f"/2010-04-01/Accounts/{SANDBOX_ACCOUNT_SID}/Messages/{message.sid}.json"

    assert sandbox.wait_idle(5)
    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid and fetched.status == TwilioMessageStatus.DELIVERED
    assert fetched.price == "-0.00790" and fetched.price_unit == PRICE_UNIT
    assert isinstance(fetched.date_sent, datetime)
    assert sandbox.requests.endpoint(Endpoint.MESSAGE_FETCH) == 1
    snapshot = sandbox.message(message.sid)
    assert snapshot is not None and snapshot["status"] == TwilioMessageStatus.DELIVERED


def test_fetching_an_unknown_message_is_404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.messages("SM" + "0" * 32).fetch()
    assert raised.value.status == 404 and raised.value.code == TwilioErrorCode.NOT_FOUND


def test_list_follows_next_pages_newest_first() -> None:
    with SandboxTwilio(status_interval=FAST_STEPS, max_page_size=2) as sandbox:
        client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)
        sids = [send(client, body=f"note {i}").sid for i in range(5)]
        send(client, to="+12125550143", body="someone else")

        listed = client.messages.list(to=LEAD, limit=4)
        every = list(client.messages.stream(to=LEAD))
        page = client.messages.page(to=LEAD, page_size=2)

    assert [m.sid for m in listed] == sids[::-1][:4]
    assert [m.sid for m in every] == sids[::-1]
    # limit=4 asked for PageSize=4, capped at 2: two pages; the full stream took three.
    assert sandbox.requests.endpoint(Endpoint.MESSAGE_LIST) == 2 + 3 + 1
    # Next pages name Twilio's host, as the real API's do; the adapter redirects them.
    assert page.next_page_url.startswith(
        f"https://api.twilio.com/2010-04-01/Accounts/{SANDBOX_ACCOUNT_SID}/Messages.json"
        "?To=%2B12125550142&PageSize=2&Page=1&PageToken=PA"
    )


def test_list_filters_on_from_and_date_sent(sandbox: SandboxTwilio, client: Client) -> None:
    sent = send(client)
    client.messages.create(to=LEAD, from_="+13125550101", body="other sender")
    assert sandbox.wait_idle(5)
    sandbox.status_interval = 60  # the next message stays queued: no date_sent yet
    send(client, body="still queued")
    sent_at = client.messages(sent.sid).fetch().date_sent
    assert sent_at is not None
    hour = timedelta(hours=1)

    assert [m.sid for m in client.messages.list(from_=SENDER)][-1] == sent.sid
    assert len(client.messages.list(from_=SENDER)) == 2
    assert len(client.messages.list(date_sent=sent_at)) == 2
    assert len(client.messages.list(date_sent_after=sent_at - hour)) == 2
    assert client.messages.list(date_sent_before=sent_at - hour) == []
    assert len(client.messages.list(date_sent_before=sent_at + hour, from_=SENDER)) == 1


def test_messaging_service_message_is_accepted_then_gets_a_sender(
    sandbox: SandboxTwilio, client: Client, receiver: CallbackReceiver
) -> None:
    service = client.messaging.v1.services.create(friendly_name="campaigns")
    message = client.messages.create(
        to=LEAD,
        messaging_service_sid=service.sid,
        body="via the service",
        status_callback=receiver.base_url + "/status",
    )
    assert message.status == TwilioMessageStatus.ACCEPTED
    assert message.from_ is None and message.num_segments == "0"

    assert sandbox.wait_idle(5)
    assert receiver.statuses(message.sid) == ["queued", "sending", "sent", "delivered"]
    last = receiver.for_message(message.sid)[-1].params
    assert last["MessagingServiceSid"] == service.sid and last["From"]
    assert client.messages(message.sid).fetch().from_ == last["From"]


# ------------------------------------------------------------------------ errors


def test_wrong_token_is_401_with_twilio_error_json(sandbox: SandboxTwilio) -> None:
    wrong = twilio_client(SANDBOX_ACCOUNT_SID, "not-the-token", sandbox.base_url)
    with pytest.raises(TwilioRestException) as raised:
        send(wrong)
    assert raised.value.status == 401 and raised.value.code == TwilioErrorCode.AUTHENTICATE

    response = requests.get(
        f"{sandbox.base_url}/2010-04-01/Accounts/{SANDBOX_ACCOUNT_SID}/Messages.json",
        auth=(SANDBOX_ACCOUNT_SID, "nope"),
        timeout=5,
    )
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "more_info", "status"}
    assert sandbox.requests.unauthorized == 2 and sandbox.requests.messages_created == 0


def test_an_account_cannot_use_another_accounts_path(sandbox: SandboxTwilio) -> None:
    other_sid = "AC" + "1" * 32
    sandbox.add_account(other_sid, "other-token")
    response = requests.get(
        f"{sandbox.base_url}/2010-04-01/Accounts/{SANDBOX_ACCOUNT_SID}/Messages.json",
        auth=(other_sid, "other-token"),
        timeout=5,
    )
    assert response.status_code == 401
    own = twilio_client(other_sid, "other-token", sandbox.base_url)
    assert own.messages.list() == []


def test_invalid_to_is_21211(sandbox: SandboxTwilio, client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        send(client, to="212-555-0142")
    assert raised.value.status == 400 and raised.value.code == TwilioErrorCode.INVALID_TO
    assert sandbox.requests.rejected == {TwilioErrorCode.INVALID_TO: 1}
    assert sandbox.requests.messages_created == 0


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+12125550150", TwilioErrorCode.UNSUBSCRIBED),
        ("+12125550151", TwilioErrorCode.UNREGISTERED_SENDER),
        ("+15005550009", TwilioErrorCode.NOT_MOBILE),  # Twilio's magic test number
    ],
)
def test_numbers_refused_at_create(
    to: str, code: int, sandbox: SandboxTwilio, client: Client
) -> None:
    sandbox.reject("+12125550150", TwilioErrorCode.UNSUBSCRIBED)
    sandbox.reject("+12125550151", TwilioErrorCode.UNREGISTERED_SENDER)
    with pytest.raises(TwilioRestException) as raised:
        send(client, to=to)
    assert raised.value.status == 400 and raised.value.code == code
    assert sandbox.requests.created_for(to) == 0


def test_missing_body_and_sender_are_refused(client: Client) -> None:
    with pytest.raises(TwilioRestException) as no_body:
        client.messages.create(to=LEAD, from_=SENDER)
    with pytest.raises(TwilioRestException) as no_sender:
        client.messages.create(to=LEAD, body="who from?")
    assert no_body.value.code == TwilioErrorCode.BODY_REQUIRED
    assert no_sender.value.code == TwilioErrorCode.FROM_REQUIRED


def test_throughput_limit_answers_429_20429() -> None:
    now = [1_000.0]
    with SandboxTwilio(throughput_per_second=2, clock=lambda: now[0]) as sandbox:
        client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)
        send(client, body="1")
        send(client, body="2")
        with pytest.raises(TwilioRestException) as raised:
            send(client, body="3")
        now[0] += 0.5  # half a second refills one token at 2/s
        send(client, body="4")
        with pytest.raises(TwilioRestException):
            send(client, body="5")

    assert raised.value.status == 429 and raised.value.code == TwilioErrorCode.TOO_MANY_REQUESTS
    assert sandbox.requests.rate_limited == 2 and sandbox.requests.messages_created == 3
    assert sandbox.requests.accepted_at == [1_000.0, 1_000.0, 1_000.5]


def test_injected_server_errors_are_consumed_in_order(
    sandbox: SandboxTwilio, client: Client
) -> None:
    sandbox.inject("pass", "503", "500")
    send(client, body="a")
    statuses = []
    for body in ("b", "c"):
        with pytest.raises(TwilioRestException) as raised:
            send(client, body=body)
        statuses.append((raised.value.status, raised.value.code))
    send(client, body="d")

    assert statuses == [(503, 20503), (500, 20500)]
    assert sandbox.requests.messages_created == 2 and sandbox.faults_pending == 0
    assert sandbox.requests.faults_injected == 2


def test_timeout_fault_drops_the_request_and_slow_fault_keeps_it(sandbox: SandboxTwilio) -> None:
    impatient = twilio_client(
        SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url, timeout=0.3
    )
    sandbox.inject("timeout:1", "slow:1")

    with pytest.raises(requests.exceptions.Timeout):
        send(impatient, body="lost")
    assert sandbox.requests.messages_created == 0
    # The dangerous one: the client gave up, but Twilio had accepted the message.
    with pytest.raises(requests.exceptions.Timeout):
        send(impatient, body="accepted anyway")
    assert sandbox.requests.messages_created == 1


def test_duplicate_sends_are_counted(sandbox: SandboxTwilio, client: Client) -> None:
    send(client, body="same words")
    send(client, body="same words")
    send(client, body="different words")
    send(client, to="+12125550143", body="same words")

    assert sandbox.requests.duplicates == 1
    assert sandbox.requests.created_by_to == {LEAD: 3, "+12125550143": 1}
    accepted = sandbox.requests.accepted_at
    assert len(accepted) == 4 and accepted == sorted(accepted)


# --------------------------------------------------------------------- callbacks


def test_callbacks_are_signed_like_twilio(
    sandbox: SandboxTwilio, client: Client, receiver: CallbackReceiver
) -> None:
    url = receiver.base_url + "/webhooks/twilio/status?team=7"
    message = send(client, status_callback=url)
    assert sandbox.wait_idle(5)

    deliveries = receiver.for_message(message.sid)
    assert [d.params["TwilioMessageStatus"] for d in deliveries] == ["sending", "sent", "delivered"]
    validator = RequestValidator(SANDBOX_AUTH_TOKEN)
    for delivery in deliveries:
        assert delivery.url == url
        signature = delivery.headers[SIGNATURE_HEADER]
        assert validator.validate(delivery.url, delivery.params, signature)
        assert not RequestValidator("another-token").validate(url, delivery.params, signature)
        assert delivery.params["SmsStatus"] == delivery.params["TwilioMessageStatus"]
        assert delivery.params["AccountSid"] == SANDBOX_ACCOUNT_SID
        assert (delivery.params["To"], delivery.params["From"]) == (LEAD, SENDER)
        assert "ErrorCode" not in delivery.params
    priced = {d.params["TwilioMessageStatus"]: d.params.get("Price") for d in deliveries}
    assert priced == {"sending": None, "sent": "-0.00790", "delivered": "-0.00790"}
    assert deliveries[-1].params["PriceUnit"] == PRICE_UNIT
    assert sandbox.requests.callbacks_posted == 3 and sandbox.requests.callbacks_failed == 0


def test_sign_callback_matches_the_validator() -> None:
    params = {"MessageSid": "SM1", "TwilioMessageStatus": "sent"}
    signature = sign_callback("token", "https://example.test/cb?x=1", params)
    assert RequestValidator("token").validate("https://example.test/cb?x=1", params, signature)


def test_duplicate_callbacks_carry_the_same_idempotency_token(
    receiver: CallbackReceiver,
) -> None:
    with SandboxTwilio(status_interval=FAST_STEPS, duplicate_callback_rate=1.0) as sandbox:
        client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)
        message = send(client, status_callback=receiver.base_url + "/status")
        assert sandbox.wait_idle(5)

    deliveries = receiver.for_message(message.sid)
    statuses = [d.params["TwilioMessageStatus"] for d in deliveries]
    assert statuses == ["sending", "sending", "sent", "sent", "delivered", "delivered"]
    tokens = [d.headers[IDEMPOTENCY_HEADER] for d in deliveries]
    assert tokens[0] == tokens[1] != tokens[2] == tokens[3]
    assert sum(r.duplicate for r in sandbox.requests.callbacks) == 3


def test_out_of_order_callbacks_deliver_before_sent(receiver: CallbackReceiver) -> None:
    with SandboxTwilio(status_interval=FAST_STEPS, out_of_order_rate=1.0) as sandbox:
        client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)
        message = send(client, status_callback=receiver.base_url + "/status")
        assert sandbox.wait_idle(5)
        final = client.messages(message.sid).fetch().status

    statuses = receiver.statuses(message.sid)
    assert statuses == ["sending", "delivered", "sent"]
    assert final == TwilioMessageStatus.DELIVERED
    # What a status handler keeping only later statuses ends with.
    kept: TwilioMessageStatus | None = None
    for status in map(TwilioMessageStatus, statuses):
        if status.supersedes(kept):
            kept = status
    assert kept is TwilioMessageStatus.DELIVERED


def test_per_number_delivery_errors_reach_the_callbacks(
    sandbox: SandboxTwilio, client: Client, receiver: CallbackReceiver
) -> None:
    expected = {
        "+12125550160": (TwilioErrorCode.UNREACHABLE, ["sending", "sent", "undelivered"]),
        "+12125550161": (TwilioErrorCode.BLOCKED, ["sending", "sent", "undelivered"]),
        "+12125550162": (TwilioErrorCode.UNKNOWN_DESTINATION, ["sending", "sent", "undelivered"]),
        "+12125550163": (TwilioErrorCode.LANDLINE, ["sending", "sent", "undelivered"]),
        "+12125550164": (TwilioErrorCode.CARRIER_FILTERED, ["sending", "sent", "undelivered"]),
        "+12125550165": (TwilioErrorCode.UNKNOWN_ERROR, ["sending", "sent", "undelivered"]),
        "+12125550166": (TwilioErrorCode.UNREGISTERED_SENDER, ["failed"]),
    }
    for to, (code, _) in expected.items():
        sandbox.fail_delivery(to, code)
    sandbox.fail_delivery("+12125550167", TwilioErrorCode.UNKNOWN_ERROR, TwilioMessageStatus.FAILED)
    callback = receiver.base_url + "/status"
    sids = {to: send(client, to=to, status_callback=callback).sid for to in expected}
    overridden = send(client, to="+12125550167", status_callback=callback).sid
    assert sandbox.wait_idle(5)

    for to, (code, statuses) in expected.items():
        assert receiver.statuses(sids[to]) == statuses, to
        final = receiver.for_message(sids[to])[-1].params
        assert final["ErrorCode"] == str(int(code))
        fetched = client.messages(sids[to]).fetch()
        assert (fetched.status, fetched.error_code) == (statuses[-1], code)
        assert fetched.error_message
    assert receiver.statuses(overridden) == ["failed"]


def test_an_unreachable_callback_url_is_recorded_not_fatal(sandbox: SandboxTwilio) -> None:
    client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, sandbox.base_url)
    message = send(client, status_callback=unused_loopback_url())
    assert sandbox.wait_idle(5)
    assert client.messages(message.sid).fetch().status == TwilioMessageStatus.DELIVERED
    records = sandbox.requests.callbacks
    assert len(records) == 3 and all(r.http_status is None and r.error for r in records)
    assert sandbox.requests.callbacks_failed == 3


def unused_loopback_url() -> str:
    """A loopback URL nothing listens on (its port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/status"


# ----------------------------------------------------------------- phone numbers


def test_search_and_buy_numbers(sandbox: SandboxTwilio, client: Client) -> None:
    found = client.available_phone_numbers("US").local.list(area_code="212")
    assert len(found) == 5 and all(n.phone_number.startswith("+1212") for n in found)
    assert found[0].capabilities["SMS"] is True and found[0].iso_country == "US"

    bought = client.incoming_phone_numbers.create(area_code="212")
    chosen = client.incoming_phone_numbers.create(
        phone_number=found[3].phone_number, sms_url="https://example.test/inbound"
    )

    assert re.fullmatch(r"PN[0-9a-f]{32}", bought.sid)
    assert bought.phone_number == found[0].phone_number
    assert chosen.phone_number == found[3].phone_number
    assert chosen.sms_url == "https://example.test/inbound"
    remaining = client.available_phone_numbers("US").local.list(area_code="212")
    assert {n.phone_number for n in remaining} == {n.phone_number for n in found} - {
        bought.phone_number,
        chosen.phone_number,
    }
    listed = client.incoming_phone_numbers.list()
    assert [n.sid for n in listed] == [bought.sid, chosen.sid]
    assert client.incoming_phone_numbers.list(phone_number=chosen.phone_number)[0].sid == chosen.sid
    assert sandbox.owned_numbers() == [bought.phone_number, chosen.phone_number]

    assert client.incoming_phone_numbers(bought.sid).delete() is True
    again = client.available_phone_numbers("US").local.list(area_code="212")
    assert bought.phone_number in {n.phone_number for n in again}
    assert sandbox.requests.numbers_bought == 2


def test_buying_a_taken_number_is_21422(client: Client) -> None:
    number = client.incoming_phone_numbers.create(area_code="646").phone_number
    with pytest.raises(TwilioRestException) as raised:
        client.incoming_phone_numbers.create(phone_number=number)
    assert raised.value.code == TwilioErrorCode.NUMBER_NOT_AVAILABLE


@pytest.mark.parametrize("area_code", ["533", "917"])  # Twilio's magic one, a configured one
def test_area_code_without_numbers(area_code: str, sandbox: SandboxTwilio, client: Client) -> None:
    sandbox.no_numbers_area_codes.add("917")
    assert client.available_phone_numbers("US").local.list(area_code=area_code) == []
    with pytest.raises(TwilioRestException) as raised:
        client.incoming_phone_numbers.create(area_code=area_code)
    assert raised.value.code == TwilioErrorCode.NO_NUMBERS_IN_AREA_CODE
    assert sandbox.requests.purchases_failed == 1


def test_provisioning_failure_is_configurable(sandbox: SandboxTwilio, client: Client) -> None:
    sandbox.purchase_error = TwilioErrorCode.NUMBER_NOT_AVAILABLE
    with pytest.raises(TwilioRestException) as raised:
        client.incoming_phone_numbers.create(area_code="212")
    assert raised.value.status == 400 and raised.value.code == TwilioErrorCode.NUMBER_NOT_AVAILABLE
    assert client.incoming_phone_numbers.list() == []
    assert sandbox.requests.purchases_failed == 1 and sandbox.requests.numbers_bought == 0


# ----------------------------------------------------------------------- adapter


def test_adapter_rewrites_scheme_and_host_and_keeps_path_and_query() -> None:
    adapter = SandboxHttpClient("http://127.0.0.1:8765/twilio/")
    url, host = adapter.rewrite("https://messaging.twilio.com/v1/Services?PageSize=1&Page=2")
    assert url == "http://127.0.0.1:8765/twilio/v1/Services?PageSize=1&Page=2"
    assert host == "messaging.twilio.com"
    with pytest.raises(ValueError):
        SandboxHttpClient("127.0.0.1:8765")


def test_adapter_follows_messaging_twilio_com_next_page_urls(
    sandbox: SandboxTwilio, client: Client
) -> None:
    created = [client.messaging.v1.services.create(friendly_name=f"svc {i}").sid for i in range(3)]

    listed = [s.sid for s in client.messaging.v1.services.stream(page_size=1)]
    fetched = client.messaging.v1.services(created[1]).fetch()

    assert listed == created
    assert fetched.friendly_name == "svc 1"
    assert sandbox.requests.endpoint(Endpoint.SERVICE_LIST) == 3  # three pages, one each


def test_domains_the_sandbox_does_not_serve_are_404(sandbox: SandboxTwilio, client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.lookups.v2.phone_numbers(LEAD).fetch()
    assert raised.value.status == 404
    # The same path on another domain is another resource: the original host decides.
    conversations = requests.get(
        f"{sandbox.base_url}/v1/Services",
        auth=(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN),
        headers={ORIGINAL_HOST_HEADER: "conversations.twilio.com"},
        timeout=5,
    )
    assert conversations.status_code == 404
    assert sandbox.requests.endpoint(Endpoint.UNROUTED) == 2


def test_live_client_keeps_twilio_hosts_and_sets_a_timeout() -> None:
    live = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, None, timeout=3)
    assert type(live.http_client) is TwilioHttpClient
    assert live.http_client.timeout == 3
    sandboxed = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, "http://127.0.0.1:1")
    assert isinstance(sandboxed.http_client, SandboxHttpClient)


# ------------------------------------------------------------- shared definitions


def test_message_status_covers_every_twilio_status() -> None:
    twilio_values = {
        value for name, value in vars(MessageInstance.Status).items() if not name.startswith("_")
    }
    assert {s.value for s in TwilioMessageStatus} == twilio_values
    lifecycle = ["accepted", "queued", "sending", "sent", "delivered", "read"]
    ranks = [TwilioMessageStatus(s).rank for s in lifecycle]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    in_definition_order = [s.rank for s in TwilioMessageStatus]
    assert in_definition_order == sorted(in_definition_order)
    assert not TwilioMessageStatus.UNDELIVERED.supersedes(TwilioMessageStatus.DELIVERED)
    assert TwilioMessageStatus.DELIVERED.is_final and not TwilioMessageStatus.SENT.is_final


# --------------------------------------------------------------------------- CLI


def test_cli_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "outreach_core.sandbox.twilio", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            client = twilio_client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, base_url)
            started = time.perf_counter()
            assert send(client).status == TwilioMessageStatus.QUEUED
            assert time.perf_counter() - started < 5
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
