"""A fake Twilio REST server speaking the real wire API, for the real ``twilio`` client.

Point the client at it with ``outreach_core.messaging.twilio_client.twilio_client(sid,
token, sandbox.base_url)``. Served (JSON, HTTP Basic auth with account SID + auth token):

* ``api.twilio.com/2010-04-01/Accounts/{AC}/``
  ``Messages.json`` (POST create, GET list with To/From/DateSent[<>] filters and paging),
  ``Messages/{SM}.json`` (GET), ``AvailablePhoneNumbers/{country}/Local.json`` (GET),
  ``IncomingPhoneNumbers.json`` (POST buy, GET list), ``IncomingPhoneNumbers/{PN}.json``
  (GET, DELETE releases).
* ``messaging.twilio.com/v1/Services`` (POST, GET list) and ``/v1/Services/{MG}`` (GET).

The host a request was meant for comes from ``X-Forwarded-Host`` (set by the client
adapter); without it the path decides. After a message is created, a scheduler advances
it (queued -> sending -> sent -> delivered, or undelivered/failed with an error code) and
POSTs signed status callbacks, optionally twice or out of order. Faults: error codes per
recipient at create time or in the callback, queued HTTP faults (500, 503, 429, timeouts,
slow answers, resets), and an account-wide throughput limit answering 429 / 20429.

Only the standard library serves requests (plus the project's signing helper, which is
twilio's own RequestValidator), so it starts in milliseconds in tests and under ``make dev``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import heapq
import hmac
import http.client
import io
import itertools
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import format_datetime
from enum import StrEnum
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from outreach_core.messaging.segments import count_segments
from outreach_core.messaging.twilio_client import (
    API_VERSION,
    IDEMPOTENCY_HEADER,
    ORIGINAL_HOST_HEADER,
    SIGNATURE_HEADER,
    TwilioErrorCode,
    TwilioMessageStatus,
    sign_callback,
)

__all__ = [
    "API_HOST",
    "DEFAULT_CALLBACK_TIMEOUT_SECONDS",
    "DEFAULT_CALLBACK_WORKERS",
    "DEFAULT_NUMBERS_PER_AREA_CODE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SEARCH_AREA_CODE",
    "DEFAULT_STATUS_INTERVAL_SECONDS",
    "DEFAULT_THROUGHPUT_PER_SECOND",
    "FAULT_KINDS",
    "MAX_PAGE_SIZE",
    "MESSAGING_HOST",
    "NO_NUMBERS_AREA_CODES",
    "PRICE_PER_SEGMENT",
    "PRICE_UNIT",
    "SANDBOX_ACCOUNT_SID",
    "SANDBOX_AUTH_TOKEN",
    "TEST_NUMBER_REJECTIONS",
    "CallbackRecord",
    "Endpoint",
    "SandboxTwilio",
    "TwilioCounters",
    "TwilioCountersSnapshot",
    "final_status_for",
    "main",
]

from outreach_core.sandbox.http_server import LoopbackSandbox, SandboxServer, serve_until_stopped

logger = logging.getLogger(__name__)

API_HOST: Final = "api.twilio.com"
MESSAGING_HOST: Final = "messaging.twilio.com"

SANDBOX_ACCOUNT_SID: Final = "AC" + "5a4d" * 8
SANDBOX_AUTH_TOKEN: Final = "sandbox-auth-token"

# Twilio's defaults and limits for list pages.
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
# Seconds between one status and the next (and between create and the first step):
# short, so tests see final statuses quickly, long enough to watch "sending" happen.
DEFAULT_STATUS_INTERVAL_SECONDS: Final = 0.05
DEFAULT_CALLBACK_TIMEOUT_SECONDS: Final = 5.0
# Threads posting callbacks: one slow receiver must not stall every other message.
DEFAULT_CALLBACK_WORKERS: Final = 16
DEFAULT_TIMEOUT_FAULT_SECONDS: Final = 10.0
DEFAULT_NUMBERS_PER_AREA_CODE: Final = 5
# Messages a second an account may create when served for development (CLI, `make dev`):
# above what the benchmark sends (50/s), but a limit, so 429 handling is exercised.
# In-process test sandboxes have none unless asked.
DEFAULT_THROUGHPUT_PER_SECOND: Final = 100.0
MAX_BODY_CHARS: Final = 1600
MAX_REQUEST_BYTES: Final = 1_000_000
# ValidityPeriod bounds, seconds (Twilio's documented range).
VALIDITY_PERIOD_RANGE: Final = (1, 36_000)

# US long-code price a segment (Twilio answers prices as negative strings).
PRICE_PER_SEGMENT: Final = Decimal("0.0079")
PRICE_UNIT: Final = "USD"

# Twilio's magic test numbers (test credentials), honoured here too so demo data and
# tests can reach the create-time errors without configuring anything.
TEST_NUMBER_REJECTIONS: Final[Mapping[str, int]] = {
    "+15005550001": TwilioErrorCode.INVALID_TO,
    "+15005550002": TwilioErrorCode.CANNOT_ROUTE,
    "+15005550003": TwilioErrorCode.REGION_NOT_ENABLED,
    "+15005550004": TwilioErrorCode.UNSUBSCRIBED,
    "+15005550009": TwilioErrorCode.NOT_MOBILE,
}
# Twilio's magic "no numbers available" area code.
NO_NUMBERS_AREA_CODES: Final = frozenset({"533"})
# The sender a Messaging Service message goes out from when the account owns no number
# (Twilio's magic valid From).
SERVICE_FALLBACK_SENDER: Final = "+15005550006"

# Delivery errors after which the message never left Twilio (status failed); the other
# 30xxx codes are carrier verdicts on a sent message (status undelivered).
_FAILED_CODES: Final = frozenset(
    {
        TwilioErrorCode.QUEUE_OVERFLOW,
        TwilioErrorCode.ACCOUNT_SUSPENDED,
        TwilioErrorCode.UNREGISTERED_SENDER,
    }
)
# The code a message picked by ``undelivered_rate`` fails with.
_RANDOM_UNDELIVERED_CODE: Final = TwilioErrorCode.UNREACHABLE

_ERROR_MESSAGES: Final[Mapping[int, str]] = {
    TwilioErrorCode.AUTHENTICATE: "Authenticate",
    TwilioErrorCode.NOT_FOUND: "The requested resource was not found",
    TwilioErrorCode.TOO_MANY_REQUESTS: "Too Many Requests",
    TwilioErrorCode.INVALID_TO: "The 'To' number is not a valid phone number.",
    TwilioErrorCode.INVALID_FROM: "The 'From' number is not a valid phone number.",
    TwilioErrorCode.REGION_NOT_ENABLED: "Permission to send an SMS has not been enabled "
    "for the region indicated by the 'To' number",
    TwilioErrorCode.NUMBER_NOT_AVAILABLE: "Phone number is not available",
    TwilioErrorCode.NO_NUMBERS_IN_AREA_CODE: "No phone numbers found in area code",
    TwilioErrorCode.BODY_REQUIRED: "Message body is required.",
    TwilioErrorCode.FROM_REQUIRED: "A 'From' phone number or MessagingServiceSid is required.",
    TwilioErrorCode.TO_REQUIRED: "A 'To' phone number is required.",
    TwilioErrorCode.UNSUBSCRIBED: "Attempt to send to unsubscribed recipient",
    TwilioErrorCode.CANNOT_ROUTE: "The 'To' phone number is not currently reachable via SMS",
    TwilioErrorCode.NOT_MOBILE: "'To' number is not a valid mobile number",
    TwilioErrorCode.BODY_TOO_LONG: "The concatenated message body exceeds the 1600 character limit",
    TwilioErrorCode.INVALID_MESSAGING_SERVICE: "The Messaging Service Sid is invalid",
    TwilioErrorCode.QUEUE_OVERFLOW: "Queue overflow",
    TwilioErrorCode.ACCOUNT_SUSPENDED: "Account suspended",
    TwilioErrorCode.UNREACHABLE: "Unreachable destination handset",
    TwilioErrorCode.BLOCKED: "Message blocked",
    TwilioErrorCode.UNKNOWN_DESTINATION: "Unknown destination handset",
    TwilioErrorCode.LANDLINE: "Landline or unreachable carrier",
    TwilioErrorCode.CARRIER_FILTERED: "Message filtered",
    TwilioErrorCode.UNKNOWN_ERROR: "Unknown error",
    TwilioErrorCode.UNREGISTERED_SENDER: "Message from an unregistered number",
}
# The sandbox's code for malformed parameters (a bad PageSize, ValidityPeriod, DateSent);
# the project reacts to the HTTP 400, not to Twilio's exact code for these.
_INVALID_PARAMETER_CODE: Final = 21200
# Twilio's HTTP-level errors are 20000 + the HTTP status (20404, 20429, 20500, 20503).
_HTTP_ERROR_BASE: Final = 20_000

FAULT_KINDS: Final = (
    "pass",  # no fault: answer normally, so the next fault hits a later request
    "<3-digit status>",
    "429",
    "timeout[:secs]",  # wait, then hang up without answering (nothing is processed)
    "slow:secs",  # process the request, then wait before answering
    "reset",
)

_FICTIONAL_LINES: Final = 100  # 555-0100 .. 555-0199
# What an AvailablePhoneNumbers search without an AreaCode lists.
DEFAULT_SEARCH_AREA_CODE: Final = "212"

_E164: Final = re.compile(r"\+[1-9]\d{1,14}")
_SERVICE_SID: Final = re.compile(r"MG[0-9a-f]{32}")
_AREA_CODE: Final = re.compile(r"[2-9]\d\d")


def final_status_for(error_code: int) -> TwilioMessageStatus:
    """The status a message reported with ``error_code`` in a callback ends in."""
    return (
        TwilioMessageStatus.FAILED
        if error_code in _FAILED_CODES
        else TwilioMessageStatus.UNDELIVERED
    )


def _error_message(code: int) -> str:
    return _ERROR_MESSAGES.get(code, f"Error {code}")


def _rfc2822(timestamp: float) -> str:
    # The 2010 API's date format, e.g. "Thu, 30 Jul 2015 20:12:31 +0000".
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))


def _iso8601(timestamp: float) -> str:
    # The v1 APIs' date format.
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _unit(key: str) -> float:
    """A stable draw in [0, 1) for ``key`` (rates apply to the same messages every run)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# ----------------------------------------------------------------------- records


class Endpoint(StrEnum):
    MESSAGE_CREATE = "POST Messages"
    MESSAGE_LIST = "GET Messages"
    MESSAGE_FETCH = "GET Message"
    NUMBERS_AVAILABLE = "GET AvailablePhoneNumbers"
    NUMBER_BUY = "POST IncomingPhoneNumbers"
    NUMBER_LIST = "GET IncomingPhoneNumbers"
    NUMBER_FETCH = "GET IncomingPhoneNumber"
    NUMBER_RELEASE = "DELETE IncomingPhoneNumber"
    SERVICE_CREATE = "POST Services"
    SERVICE_LIST = "GET Services"
    SERVICE_FETCH = "GET Service"
    UNROUTED = "unrouted"


@dataclass(frozen=True, slots=True)
class _Step:
    status: TwilioMessageStatus
    error_code: int | None = None


@dataclass(slots=True)
class _Message:
    sid: str
    account_sid: str
    seq: int
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: TwilioMessageStatus
    status_callback: str | None
    validity_period: int | None
    created_at: float
    updated_at: float
    plan: tuple[_Step, ...] = ()
    duplicate_callbacks: bool = False
    out_of_order: bool = False
    sent_at: float | None = None
    error_code: int | None = None
    price: str | None = None
    held_callback: dict[str, str] | None = None

    @property
    def segments(self) -> int:
        # A Messaging Service message has no sender (so no encoding) until it is queued.
        return 0 if self.from_ is None else count_segments(self.body).segments

    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        base = self.uri().removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.created_at),
            "date_sent": None if self.sent_at is None else _rfc2822(self.sent_at),
            "date_updated": _rfc2822(self.updated_at),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None if self.error_code is None else _error_message(self.error_code),
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.segments),
            "price": self.price,
            "price_unit": PRICE_UNIT,
            "sid": self.sid,
            "status": str(self.status),
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": self.uri(),
        }


@dataclass(slots=True)
class _Number:
    sid: str
    account_sid: str
    phone_number: str
    friendly_name: str
    sms_url: str | None
    status_callback: str | None
    created_at: float

    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": _rfc2822(self.created_at),
            "date_updated": _rfc2822(self.created_at),
            "friendly_name": self.friendly_name,
            "origin": "twilio",
            "phone_number": self.phone_number,
            "sid": self.sid,
            "sms_method": "POST",
            "sms_url": self.sms_url or "",
            "status": "in-use",
            "status_callback": self.status_callback or "",
            "status_callback_method": "POST",
            "type": "local",
            "uri": self.uri(),
        }


@dataclass(slots=True)
class _Service:
    sid: str
    account_sid: str
    friendly_name: str
    status_callback: str | None
    inbound_request_url: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        url = f"https://{MESSAGING_HOST}/v1/Services/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "date_created": _iso8601(self.created_at),
            "date_updated": _iso8601(self.created_at),
            "friendly_name": self.friendly_name,
            "inbound_method": "POST",
            "inbound_request_url": self.inbound_request_url,
            "links": {"phone_numbers": f"{url}/PhoneNumbers"},
            "sid": self.sid,
            "status_callback": self.status_callback,
            "sticky_sender": True,
            "url": url,
            "validity_period": VALIDITY_PERIOD_RANGE[1],
        }


@dataclass(slots=True)
class _Account:
    sid: str
    token: str
    messages: dict[str, _Message] = field(default_factory=dict)
    message_order: list[_Message] = field(default_factory=list)
    numbers: dict[str, _Number] = field(default_factory=dict)  # by sid, in purchase order
    services: dict[str, _Service] = field(default_factory=dict)
    tokens: float = 0.0  # throughput bucket
    refilled_at: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One status callback POST (duplicates and failed posts included)."""

    message_sid: str
    status: str
    url: str
    params: Mapping[str, str]
    http_status: int | None  # None: no answer (refused, timed out)
    error: str | None
    posted_at: float
    duplicate: bool


# ----------------------------------------------------------------------- counters


@dataclass(frozen=True)
class TwilioCountersSnapshot:
    total: int
    by_endpoint: dict[str, int]
    responses: dict[int, int]
    messages_created: int
    duplicates: int
    rejected: dict[int, int]
    rate_limited: int
    unauthorized: int
    faults_injected: int
    callbacks_posted: int
    callbacks_failed: int
    numbers_bought: int
    purchases_failed: int


class TwilioCounters:
    """What the sandbox saw, updated from handler and callback threads, read from tests
    and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._total = 0
        self._by_endpoint: Counter[str] = Counter()
        self._responses: Counter[int] = Counter()
        self._created_by_to: Counter[str] = Counter()
        self._seen_bodies: set[tuple[str, str]] = set()
        self._duplicates = 0
        self._accepted_at: list[float] = []
        self._rejected: Counter[int] = Counter()
        self._rate_limited = 0
        self._unauthorized = 0
        self._faults = 0
        self._callbacks: list[CallbackRecord] = []
        self._callbacks_failed = 0
        self._numbers_bought = 0
        self._purchases_failed = 0

    def reset(self) -> None:
        with self._lock:
            self._clear()

    # -- updates (sandbox only) -------------------------------------------------------

    def _request(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._total += 1
            self._by_endpoint[str(endpoint)] += 1

    def _response(self, status: int) -> None:
        with self._lock:
            self._responses[status] += 1

    def _accept(self, to: str, body: str, at: float) -> None:
        with self._lock:
            self._created_by_to[to] += 1
            key = (to, body)
            if key in self._seen_bodies:
                self._duplicates += 1
            else:
                self._seen_bodies.add(key)
            self._accepted_at.append(at)

    def _reject(self, code: int) -> None:
        with self._lock:
            self._rejected[code] += 1

    def _callback(self, record: CallbackRecord) -> None:
        with self._lock:
            self._callbacks.append(record)
            if record.http_status is None or record.http_status >= 300:
                self._callbacks_failed += 1

    def _bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # -- reads ------------------------------------------------------------------------

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    @property
    def by_endpoint(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_endpoint)

    def endpoint(self, endpoint: Endpoint) -> int:
        with self._lock:
            return self._by_endpoint[str(endpoint)]

    @property
    def responses(self) -> dict[int, int]:
        """HTTP statuses answered, faults included."""
        with self._lock:
            return dict(self._responses)

    @property
    def messages_created(self) -> int:
        with self._lock:
            return sum(self._created_by_to.values())

    @property
    def created_by_to(self) -> dict[str, int]:
        with self._lock:
            return dict(self._created_by_to)

    def created_for(self, to: str) -> int:
        with self._lock:
            return self._created_by_to[to]

    @property
    def duplicates(self) -> int:
        """Messages accepted with a To and Body already accepted before."""
        with self._lock:
            return self._duplicates

    @property
    def accepted_at(self) -> list[float]:
        """Clock reading at each accepted create, in acceptance order."""
        with self._lock:
            return list(self._accepted_at)

    @property
    def rejected(self) -> dict[int, int]:
        """Creates refused with a Twilio error code (validation, per-number faults)."""
        with self._lock:
            return dict(self._rejected)

    @property
    def rate_limited(self) -> int:
        """429 answers: the throughput limit and injected 429 faults."""
        with self._lock:
            return self._rate_limited

    @property
    def unauthorized(self) -> int:
        with self._lock:
            return self._unauthorized

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return self._faults

    @property
    def callbacks(self) -> list[CallbackRecord]:
        with self._lock:
            return list(self._callbacks)

    @property
    def callbacks_posted(self) -> int:
        with self._lock:
            return len(self._callbacks)

    @property
    def callbacks_failed(self) -> int:
        with self._lock:
            return self._callbacks_failed

    @property
    def numbers_bought(self) -> int:
        with self._lock:
            return self._numbers_bought

    @property
    def purchases_failed(self) -> int:
        with self._lock:
            return self._purchases_failed

    def snapshot(self) -> TwilioCountersSnapshot:
        with self._lock:
            return TwilioCountersSnapshot(
                total=self._total,
                by_endpoint=dict(self._by_endpoint),
                responses=dict(self._responses),
                messages_created=sum(self._created_by_to.values()),
                duplicates=self._duplicates,
                rejected=dict(self._rejected),
                rate_limited=self._rate_limited,
                unauthorized=self._unauthorized,
                faults_injected=self._faults,
                callbacks_posted=len(self._callbacks),
                callbacks_failed=self._callbacks_failed,
                numbers_bought=self._numbers_bought,
                purchases_failed=self._purchases_failed,
            )

    def __repr__(self) -> str:
        return f"TwilioCounters({self.snapshot()})"


# ------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class _Fault:
    kind: str
    seconds: float | None = None


def _parse_fault(spec: str) -> _Fault:
    kind, _, arg = spec.strip().lower().partition(":")
    try:
        seconds = float(arg) if arg else None
    except ValueError:
        seconds = -1.0
    valid = (
        (kind.isdigit() and len(kind) == 3 and not arg)
        or (kind in {"pass", "reset"} and not arg)
        or (kind == "timeout" and (seconds is None or seconds >= 0))
        or (kind == "slow" and seconds is not None and seconds >= 0)
    )
    if not valid:
        raise ValueError(f"unknown fault {spec!r}; expected one of {', '.join(FAULT_KINDS)}")
    return _Fault(kind, seconds)


# ------------------------------------------------------------------------ scheduler


class _Scheduler:
    """Runs delayed steps: one thread keeps the heap, a pool runs what is due, so a slow
    callback receiver holds up only its own message."""

    def __init__(self, workers: int) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._pending = 0  # scheduled or running
        self._stopped = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="twilio-sandbox-step")
        self._thread = threading.Thread(target=self._run, name="twilio-sandbox-clock", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, step: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), step))
            self._pending += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, step = heapq.heappop(self._heap)
            self._pool.submit(self._execute, step)

    def _execute(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            logger.exception("twilio sandbox: status step failed")
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()


# ------------------------------------------------------------------------- server


class _TwilioError(Exception):
    """Short-circuits a request with Twilio's error JSON."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or _error_message(code)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "code": int(self.code),
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class _Abort(Exception):
    """The response was already handled (or deliberately withheld)."""


@dataclass(frozen=True)
class _Route:
    host: str
    method: str
    pattern: re.Pattern[str]
    endpoint: Endpoint


_ACCOUNT_PATH: Final = rf"/{re.escape(API_VERSION)}/Accounts/(?P<account>[^/]+)"
_ROUTES: Final = (
    _Route(
        API_HOST, "POST", re.compile(_ACCOUNT_PATH + r"/Messages\.json"), Endpoint.MESSAGE_CREATE
    ),
    _Route(API_HOST, "GET", re.compile(_ACCOUNT_PATH + r"/Messages\.json"), Endpoint.MESSAGE_LIST),
    _Route(
        API_HOST,
        "GET",
        re.compile(_ACCOUNT_PATH + r"/Messages/(?P<sid>[^/]+)\.json"),
        Endpoint.MESSAGE_FETCH,
    ),
    _Route(
        API_HOST,
        "GET",
        re.compile(_ACCOUNT_PATH + r"/AvailablePhoneNumbers/(?P<country>[A-Za-z]{2})/Local\.json"),
        Endpoint.NUMBERS_AVAILABLE,
    ),
    _Route(
        API_HOST,
        "POST",
        re.compile(_ACCOUNT_PATH + r"/IncomingPhoneNumbers\.json"),
        Endpoint.NUMBER_BUY,
    ),
    _Route(
        API_HOST,
        "GET",
        re.compile(_ACCOUNT_PATH + r"/IncomingPhoneNumbers\.json"),
        Endpoint.NUMBER_LIST,
    ),
    _Route(
        API_HOST,
        "GET",
        re.compile(_ACCOUNT_PATH + r"/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json"),
        Endpoint.NUMBER_FETCH,
    ),
    _Route(
        API_HOST,
        "DELETE",
        re.compile(_ACCOUNT_PATH + r"/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json"),
        Endpoint.NUMBER_RELEASE,
    ),
    _Route(MESSAGING_HOST, "POST", re.compile(r"/v1/Services"), Endpoint.SERVICE_CREATE),
    _Route(MESSAGING_HOST, "GET", re.compile(r"/v1/Services"), Endpoint.SERVICE_LIST),
    _Route(
        MESSAGING_HOST, "GET", re.compile(r"/v1/Services/(?P<sid>[^/]+)"), Endpoint.SERVICE_FETCH
    ),
)


@dataclass(frozen=True)
class _Request:
    account: _Account
    groups: Mapping[str, str]
    form: Mapping[str, str]
    query: Mapping[str, str]


# (HTTP status, JSON body or None for an empty answer)
_Answer = tuple[int, Mapping[str, Any] | None]


class _HasSid(Protocol):
    sid: str


@dataclass(frozen=True)
class _Window:
    """One page of a list: which items, and the tokens that lead to its neighbours."""

    items: Sequence[_HasSid]
    start: int
    page: int
    size: int
    next_token: str | None
    previous_token: str | None


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive as the real API does (the client pools them).
    protocol_version = "HTTP/1.1"
    server_version = "TwilioSandbox/1.0"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms a request on Linux), which would cap a send engine at
    # ~25 messages a second.
    disable_nagle_algorithm = True
    server: SandboxServer

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        self.server.sandbox._handle(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        self.server.sandbox._handle(self, "GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.sandbox._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request lines only (never headers, which carry credentials), and not to stderr.
        logger.debug("twilio sandbox: " + format, *args)


class SandboxTwilio(LoopbackSandbox):
    """Fake Twilio server on 127.0.0.1; see the module docstring for what it serves.

    Use as a context manager (or ``start()``/``stop()``). Settings are plain attributes and
    can be changed while it runs. Faults queued with ``inject()`` are consumed one per
    authenticated API request, in order; per-number faults (``reject``, ``fail_delivery``)
    apply to every message to that number. ``wait_idle()`` waits for every status change
    and callback still due.
    """

    handler_class = _Handler
    thread_name = "twilio-sandbox"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_sid: str = SANDBOX_ACCOUNT_SID,
        auth_token: str = SANDBOX_AUTH_TOKEN,
        latency: float = 0.0,
        status_interval: float = DEFAULT_STATUS_INTERVAL_SECONDS,
        throughput_per_second: float | None = None,
        throughput_burst: float | None = None,
        reject_numbers: Mapping[str, int] | None = None,
        delivery_failures: Mapping[str, int] | None = None,
        undelivered_rate: float = 0.0,
        duplicate_callback_rate: float = 0.0,
        out_of_order_rate: float = 0.0,
        no_numbers_area_codes: Iterable[str] = NO_NUMBERS_AREA_CODES,
        numbers_per_area_code: int = DEFAULT_NUMBERS_PER_AREA_CODE,
        purchase_error: int | None = None,
        max_page_size: int = MAX_PAGE_SIZE,
        faults: Iterable[str] = (),
        callback_timeout: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS,
        callback_workers: int = DEFAULT_CALLBACK_WORKERS,
        timeout_fault_seconds: float = DEFAULT_TIMEOUT_FAULT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.status_interval = status_interval
        # Account-wide creates a second; None for no limit. The bucket holds one second's
        # worth unless ``throughput_burst`` says otherwise.
        self.throughput_per_second = throughput_per_second
        self.throughput_burst = throughput_burst
        self.reject_numbers: dict[str, int] = {**TEST_NUMBER_REJECTIONS, **(reject_numbers or {})}
        self.delivery_failures: dict[str, int] = dict(delivery_failures or {})
        self.delivery_status_overrides: dict[str, TwilioMessageStatus] = {}
        self.undelivered_rate = undelivered_rate
        self.duplicate_callback_rate = duplicate_callback_rate
        self.out_of_order_rate = out_of_order_rate
        self.no_numbers_area_codes = set(no_numbers_area_codes)
        self.numbers_per_area_code = numbers_per_area_code
        self.purchase_error = purchase_error
        self.max_page_size = max_page_size
        self.callback_timeout = callback_timeout
        self.callback_workers = callback_workers
        self.timeout_fault_seconds = timeout_fault_seconds
        self.clock = clock
        self.requests = TwilioCounters()
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._owned: dict[str, str] = {}  # phone number -> account sid, across accounts
        self._message_seq = itertools.count()
        self._faults: list[_Fault] = []
        self._init_server_state()
        self._scheduler: _Scheduler | None = None
        self._handlers: dict[Endpoint, Callable[[_Request], _Answer]] = {
            Endpoint.MESSAGE_CREATE: self._create_message,
            Endpoint.MESSAGE_LIST: self._list_messages,
            Endpoint.MESSAGE_FETCH: self._fetch_message,
            Endpoint.NUMBERS_AVAILABLE: self._available_numbers,
            Endpoint.NUMBER_BUY: self._buy_number,
            Endpoint.NUMBER_LIST: self._list_numbers,
            Endpoint.NUMBER_FETCH: self._fetch_number,
            Endpoint.NUMBER_RELEASE: self._release_number,
            Endpoint.SERVICE_CREATE: self._create_service,
            Endpoint.SERVICE_LIST: self._list_services,
            Endpoint.SERVICE_FETCH: self._fetch_service,
        }
        self.add_account(account_sid, auth_token)
        self.inject(*faults)

    # -- lifecycle ---------------------------------------------------------------

    def _before_start(self) -> None:
        self._scheduler = _Scheduler(self.callback_workers)

    def _after_stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
        self._scheduler = None

    # -- control -----------------------------------------------------------------

    def add_account(self, account_sid: str, auth_token: str) -> None:
        """Another account (e.g. a team's subaccount), with its own data and limits."""
        with self._lock:
            self._accounts.setdefault(account_sid, _Account(account_sid, auth_token))

    def inject(self, *faults: str) -> None:
        """Queue faults; each applies to one authenticated request. See ``FAULT_KINDS``:
        e.g. ``inject("pass", "503")`` answers the next request normally and the one
        after it with a 503."""
        parsed = [_parse_fault(spec) for spec in faults]
        with self._lock:
            self._faults.extend(parsed)

    @property
    def faults_pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def reject(self, to: str, code: int) -> None:
        """Refuse every create to ``to`` with HTTP 400 and ``code`` (e.g. 21610)."""
        self.reject_numbers[to] = code

    def fail_delivery(self, to: str, code: int, status: TwilioMessageStatus | None = None) -> None:
        """Accept messages to ``to``, then report ``code`` in the callbacks; the final
        status is ``status`` or the one ``final_status_for(code)`` gives."""
        self.delivery_failures[to] = code
        if status is None:
            self.delivery_status_overrides.pop(to, None)
        else:
            self.delivery_status_overrides[to] = status

    def reset(self) -> None:
        """Zero the counters, drop queued faults and throughput windows; keep messages,
        numbers and settings."""
        with self._lock:
            self._faults.clear()
            for account in self._accounts.values():
                account.refilled_at = None
        self.requests.reset()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no status change or callback is due; False on timeout."""
        scheduler = self._scheduler
        return True if scheduler is None else scheduler.wait_idle(timeout)

    def message(self, sid: str) -> dict[str, Any] | None:
        """A message as the API would answer it (any account), or None."""
        with self._lock:
            for account in self._accounts.values():
                found = account.messages.get(sid)
                if found is not None:
                    return found.to_json()
        return None

    def owned_numbers(self, account_sid: str | None = None) -> list[str]:
        with self._lock:
            account = self._accounts[account_sid or self.account_sid]
            return [n.phone_number for n in account.numbers.values()]

    def available_numbers(self, area_code: str) -> list[str]:
        """The numbers ``AvailablePhoneNumbers`` would list for a US area code now."""
        if area_code in self.no_numbers_area_codes or not _AREA_CODE.fullmatch(area_code):
            return []
        # 555-01xx is reserved for fiction, so nothing here can reach a real phone.
        count = min(self.numbers_per_area_code, _FICTIONAL_LINES)
        candidates = (f"+1{area_code}55501{i:02d}" for i in range(count))
        with self._lock:
            return [n for n in candidates if n not in self._owned]

    # -- request handling --------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        split = urlsplit(h.path)
        status: int
        try:
            form = self._read_form(h)  # first: an unread body would corrupt the next request
            route, groups = self._route(h, method, split.path)
            self.requests._request(route.endpoint)
            account = self._authenticate(h, route, groups)
            if self.latency > 0:
                self._stopping.wait(self.latency)
            fault = self._next_fault()
            if fault is not None:
                self.requests._bump("_faults")
                self._apply_fault(h, fault)  # raises unless it only delays the answer
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            status, body = self._handlers[route.endpoint](_Request(account, groups, form, query))
            headers: Mapping[str, str] = {}
            if fault is not None and fault.kind == "slow":
                self._stopping.wait(fault.seconds or 0.0)
        except _TwilioError as error:
            status, body, headers = error.status, error.body(), error.headers
        except _Abort:
            return
        self.requests._response(status)
        self._send_json(h, status, body, headers)

    def _route(self, h: _Handler, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        host = self._target_host(h, path)
        allowed = []
        for route in _ROUTES:
            if route.host != host:
                continue
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict()
            allowed.append(route.method)
        self.requests._request(Endpoint.UNROUTED)
        if allowed:
            raise _TwilioError(
                405,
                _HTTP_ERROR_BASE + 405,
                "Method not allowed",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise _TwilioError(
            404, TwilioErrorCode.NOT_FOUND, f"The requested resource {path} was not found"
        )

    @staticmethod
    def _target_host(h: _Handler, path: str) -> str:
        forwarded = (h.headers.get(ORIGINAL_HOST_HEADER) or "").strip().lower()
        if forwarded:
            return forwarded.split(":", 1)[0]
        # A plain HTTP client (curl, httpx) reaches the 2010 API by its versioned paths.
        return API_HOST if path.startswith(f"/{API_VERSION}/") else MESSAGING_HOST

    @staticmethod
    def _read_form(h: _Handler) -> dict[str, str]:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_REQUEST_BYTES:
            h.close_connection = True  # the unread body would corrupt the next request
            raise _TwilioError(413, _HTTP_ERROR_BASE + 413, "Request entity too large")
        if length <= 0:
            return {}
        raw = h.rfile.read(length).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _authenticate(self, h: _Handler, route: _Route, groups: Mapping[str, str]) -> _Account:
        account = self._credentials_account(h.headers.get("Authorization") or "")
        path_account = groups.get("account")
        if account is None or (path_account is not None and path_account != account.sid):
            self.requests._bump("_unauthorized")
            raise _TwilioError(
                401,
                TwilioErrorCode.AUTHENTICATE,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        return account

    def _credentials_account(self, authorization: str) -> _Account | None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        with self._lock:
            account = self._accounts.get(username)
        if account is None or not hmac.compare_digest(account.token.encode(), password.encode()):
            return None
        return account

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        return None if fault is None or fault.kind == "pass" else fault

    def _apply_fault(self, h: _Handler, fault: _Fault) -> None:
        kind = fault.kind
        if kind == "slow":
            return  # handled after the request is processed
        if kind == "429":
            self.requests._bump("_rate_limited")
            raise _TwilioError(429, TwilioErrorCode.TOO_MANY_REQUESTS)
        if kind.isdigit():
            status = int(kind)
            raise _TwilioError(status, _HTTP_ERROR_BASE + status, f"Sandbox injected HTTP {status}")
        if kind == "timeout":
            # Wait past the client's timeout, then hang up without answering.
            wait = self.timeout_fault_seconds if fault.seconds is None else fault.seconds
            self._stopping.wait(wait)
            h.close_connection = True
            raise _Abort
        if kind == "reset":
            self._reset_connection(h)
            raise _Abort
        raise AssertionError(kind)  # _parse_fault admits nothing else

    @staticmethod
    def _reset_connection(h: _Handler) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        with contextlib.suppress(OSError):
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for stream in (h.rfile, h.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(OSError):
            h.connection.close()
        h.rfile, h.wfile = io.BytesIO(), io.BytesIO()
        h.close_connection = True

    @staticmethod
    def _send_json(
        h: _Handler, status: int, body: Mapping[str, Any] | None, headers: Mapping[str, str]
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            h.send_response(status)
            if body is not None:
                h.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    # -- paging --------------------------------------------------------------------

    def _window(self, items: Sequence[_HasSid], query: Mapping[str, str]) -> _Window:
        """Twilio paging: ``PageSize`` and ``Page``, with ``PageToken`` ("PA"/"PB" + the
        sid the previous page ended or the next one started at) taking precedence, so a
        list that grows while someone pages through it neither repeats nor skips."""
        size = self._page_size(query)
        page = self._int_param(query, "Page", 0, 0, None)
        start = page * size
        token = query.get("PageToken") or ""
        sids = [item.sid for item in items]
        if token[:2] == "PA" and token[2:] in sids:
            start = sids.index(token[2:]) + 1
        elif token[:2] == "PB" and token[2:] in sids:
            start = max(0, sids.index(token[2:]) - size)
        chunk = items[start : start + size]
        more = start + size < len(items)
        return _Window(
            items=chunk,
            start=start,
            page=page,
            size=size,
            next_token=f"PA{sids[start + len(chunk) - 1]}" if chunk and more else None,
            previous_token=f"PB{sids[start]}" if chunk and page > 0 else None,
        )

    def _page_size(self, query: Mapping[str, str]) -> int:
        # A larger PageSize than the maximum gets the maximum (the client derives PageSize
        # from ``limit``, so asking for more is ordinary).
        requested = self._int_param(query, "PageSize", DEFAULT_PAGE_SIZE, 1, None)
        return min(requested, self.max_page_size)

    @staticmethod
    def _int_param(
        query: Mapping[str, str], name: str, default: int, low: int, high: int | None
    ) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _TwilioError(400, _INVALID_PARAMETER_CODE, f"Invalid {name}: {raw}") from None
        if value < low or (high is not None and value > high):
            raise _TwilioError(400, _INVALID_PARAMETER_CODE, f"{name} out of range: {raw}")
        return value

    @staticmethod
    def _page_2010(
        window: _Window,
        key: str,
        path: str,
        filters: Sequence[tuple[str, str]],
        render: Callable[[Any], dict[str, Any]],
    ) -> dict[str, Any]:
        def uri(page: int, token: str | None) -> str:
            params = [*filters, ("PageSize", str(window.size)), ("Page", str(page))]
            if token:
                params.append(("PageToken", token))
            return f"{path}?{urlencode(params)}"

        return {
            key: [render(item) for item in window.items],
            "end": window.start + max(len(window.items) - 1, 0),
            "first_page_uri": uri(0, None),
            "next_page_uri": window.next_token and uri(window.page + 1, window.next_token),
            "page": window.page,
            "page_size": window.size,
            "previous_page_uri": window.previous_token
            and uri(window.page - 1, window.previous_token),
            "start": window.start,
            "uri": uri(window.page, None),
        }

    # -- messages ------------------------------------------------------------------

    def _create_message(self, req: _Request) -> _Answer:
        account = req.account
        if not self._take_throughput_slot(account):
            self.requests._bump("_rate_limited")
            raise _TwilioError(429, TwilioErrorCode.TOO_MANY_REQUESTS)
        try:
            fields = self._validate_message(req.form)
        except _TwilioError as error:
            self.requests._reject(error.code)
            raise
        to, from_, service_sid, body, callback, validity = fields
        now = self.clock()
        seq = next(self._message_seq)
        message = _Message(
            sid=_new_sid("SM"),
            account_sid=account.sid,
            seq=seq,
            to=to,
            from_=from_,
            messaging_service_sid=service_sid,
            body=body,
            # A Messaging Service picks the sender later; until then the message is accepted.
            status=TwilioMessageStatus.QUEUED if from_ else TwilioMessageStatus.ACCEPTED,
            status_callback=callback,
            validity_period=validity,
            created_at=now,
            updated_at=now,
            duplicate_callbacks=_unit(f"duplicate:{seq}") < self.duplicate_callback_rate,
            out_of_order=_unit(f"out_of_order:{seq}") < self.out_of_order_rate,
        )
        message.plan = self._plan(message)
        with self._lock:
            account.messages[message.sid] = message
            account.message_order.append(message)
            answer = message.to_json()
        self.requests._accept(to, body, now)
        self._schedule_step(message, 0)
        return 201, answer

    def _validate_message(
        self, form: Mapping[str, str]
    ) -> tuple[str, str | None, str | None, str, str | None, int | None]:
        to = form.get("To", "").strip()
        from_ = form.get("From", "").strip() or None
        service_sid = form.get("MessagingServiceSid", "").strip() or None
        body = form.get("Body", "")
        if not to:
            raise _TwilioError(400, TwilioErrorCode.TO_REQUIRED)
        if not _E164.fullmatch(to):
            raise _TwilioError(
                400,
                TwilioErrorCode.INVALID_TO,
                f"The 'To' number {to} is not a valid phone number.",
            )
        if from_ is None and service_sid is None:
            raise _TwilioError(400, TwilioErrorCode.FROM_REQUIRED)
        if from_ is not None and not _E164.fullmatch(from_):
            raise _TwilioError(
                400,
                TwilioErrorCode.INVALID_FROM,
                f"The 'From' number {from_} is not a valid phone number.",
            )
        if service_sid is not None and not _SERVICE_SID.fullmatch(service_sid):
            raise _TwilioError(400, TwilioErrorCode.INVALID_MESSAGING_SERVICE)
        if not body:
            raise _TwilioError(400, TwilioErrorCode.BODY_REQUIRED)
        if len(body) > MAX_BODY_CHARS:
            raise _TwilioError(400, TwilioErrorCode.BODY_TOO_LONG)
        validity = None
        if form.get("ValidityPeriod"):
            low, high = VALIDITY_PERIOD_RANGE
            validity = self._int_param(form, "ValidityPeriod", high, low, high)
        code = self.reject_numbers.get(to)
        if code is not None:
            raise _TwilioError(400, code)
        callback = form.get("StatusCallback", "").strip() or None
        return to, from_, service_sid, body, callback, validity

    def _take_throughput_slot(self, account: _Account) -> bool:
        """Token bucket: ``throughput_per_second`` tokens a second, holding at most
        ``throughput_burst`` (one second's worth by default)."""
        rate = self.throughput_per_second
        if not rate:
            return True
        capacity = self.throughput_burst or max(1.0, rate)
        now = self.clock()
        with self._lock:
            if account.refilled_at is None:
                tokens = capacity
            else:
                tokens = min(capacity, account.tokens + (now - account.refilled_at) * rate)
            account.refilled_at = now
            if tokens < 1.0:
                account.tokens = tokens
                return False
            account.tokens = tokens - 1.0
            return True

    def _plan(self, message: _Message) -> tuple[_Step, ...]:
        """The statuses the message will pass through after the one it was created in."""
        steps: list[_Step] = []
        if message.status is TwilioMessageStatus.ACCEPTED:
            steps.append(_Step(TwilioMessageStatus.QUEUED))
        code = self.delivery_failures.get(message.to)
        if code is None and _unit(f"undelivered:{message.seq}") < self.undelivered_rate:
            code = _RANDOM_UNDELIVERED_CODE
        if code is None:
            return (
                *steps,
                _Step(TwilioMessageStatus.SENDING),
                _Step(TwilioMessageStatus.SENT),
                _Step(TwilioMessageStatus.DELIVERED),
            )
        final = self.delivery_status_overrides.get(message.to) or final_status_for(code)
        if final is TwilioMessageStatus.FAILED:  # never left Twilio: no sending/sent
            return (*steps, _Step(final, code))
        return (
            *steps,
            _Step(TwilioMessageStatus.SENDING),
            _Step(TwilioMessageStatus.SENT),
            _Step(final, code),
        )

    def _fetch_message(self, req: _Request) -> _Answer:
        sid = req.groups["sid"]
        with self._lock:
            message = req.account.messages.get(sid)
            if message is not None:
                return 200, message.to_json()
        path = f"/{API_VERSION}/Accounts/{req.account.sid}/Messages/{sid}.json"
        raise _TwilioError(
            404, TwilioErrorCode.NOT_FOUND, f"The requested resource {path} was not found"
        )

    def _list_messages(self, req: _Request) -> _Answer:
        query = req.query
        filters = [
            (name, query[name])
            for name in ("To", "From", "DateSent", "DateSent<", "DateSent>")
            if query.get(name)
        ]
        matches = self._message_filter(dict(filters))
        with self._lock:
            # Newest first, as Twilio lists them.
            items = [m for m in reversed(req.account.message_order) if matches(m)]
            window = self._window(items, query)
            path = f"/{API_VERSION}/Accounts/{req.account.sid}/Messages.json"
            return 200, self._page_2010(window, "messages", path, filters, _Message.to_json)

    @staticmethod
    def _message_filter(filters: Mapping[str, str]) -> Callable[[_Message], bool]:
        to, from_ = filters.get("To"), filters.get("From")
        bounds = [
            (name, _parse_date_filter(filters[name]))
            for name in ("DateSent", "DateSent<", "DateSent>")
            if name in filters
        ]

        def matches(message: _Message) -> bool:
            if to is not None and message.to != to:
                return False
            if from_ is not None and message.from_ != from_:
                return False
            if not bounds:
                return True
            if message.sent_at is None:  # Twilio filters on date_sent, null until sent
                return False
            return all(_date_matches(name, bound, message.sent_at) for name, bound in bounds)

        return matches

    # -- status progression and callbacks ------------------------------------------

    def _schedule_step(self, message: _Message, index: int) -> None:
        scheduler = self._scheduler
        if scheduler is not None and index < len(message.plan):
            scheduler.schedule(self.status_interval, partial(self._advance, message, index))

    def _advance(self, message: _Message, index: int) -> None:
        step = message.plan[index]
        now = self.clock()
        with self._lock:
            self._apply_step(message, step, now)
            params = self._callback_params(message) if message.status_callback else None
        if params is not None:
            # Out of order: the second-to-last callback is held back and posted after the
            # last ("delivered" arrives before "sent").
            if message.out_of_order and len(message.plan) >= 2 and index == len(message.plan) - 2:
                message.held_callback = params
            else:
                self._post_callback(message, params)
                held, message.held_callback = message.held_callback, None
                if held is not None:
                    self._post_callback(message, held)
        self._schedule_step(message, index + 1)

    def _apply_step(self, message: _Message, step: _Step, now: float) -> None:
        message.status = step.status
        message.updated_at = now
        if step.status is TwilioMessageStatus.QUEUED and message.from_ is None:
            message.from_ = self._service_sender(message.account_sid)
        if step.status is TwilioMessageStatus.SENT:
            message.sent_at = now
            price = PRICE_PER_SEGMENT * message.segments
            message.price = f"-{price:.5f}"
        if step.error_code is not None:
            message.error_code = step.error_code

    def _service_sender(self, account_sid: str) -> str:
        numbers = self._accounts[account_sid].numbers
        return next(iter(numbers.values())).phone_number if numbers else SERVICE_FALLBACK_SENDER

    @staticmethod
    def _callback_params(message: _Message) -> dict[str, str]:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "TwilioMessageStatus": str(message.status),
            "SmsSid": message.sid,
            "SmsStatus": str(message.status),
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(int(message.error_code))
        if message.price is not None:
            params["Price"] = message.price
            params["PriceUnit"] = PRICE_UNIT
        return params

    def _post_callback(self, message: _Message, params: Mapping[str, str]) -> None:
        url = message.status_callback
        assert url is not None
        with self._lock:
            token = self._accounts[message.account_sid].token
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            SIGNATURE_HEADER: sign_callback(token, url, params),
            # The same event delivered twice carries the same token.
            IDEMPOTENCY_HEADER: f"{message.sid}-{params['TwilioMessageStatus']}",
        }
        body = urlencode(params).encode()
        copies = 2 if message.duplicate_callbacks else 1
        for copy in range(copies):
            if self._stopping.is_set():
                return
            status, error = _post_form(url, body, headers, self.callback_timeout)
            self.requests._callback(
                CallbackRecord(
                    message_sid=message.sid,
                    status=params["TwilioMessageStatus"],
                    url=url,
                    params=dict(params),
                    http_status=status,
                    error=error,
                    posted_at=self.clock(),
                    duplicate=copy > 0,
                )
            )

    # -- phone numbers -------------------------------------------------------------

    def _available_numbers(self, req: _Request) -> _Answer:
        country = req.groups["country"].upper()
        path = f"/{API_VERSION}/Accounts/{req.account.sid}/AvailablePhoneNumbers/{country}"
        if country != "US":
            raise _TwilioError(
                404, TwilioErrorCode.NOT_FOUND, f"The requested resource {path} was not found"
            )
        area_code = req.query.get("AreaCode") or DEFAULT_SEARCH_AREA_CODE
        numbers = self.available_numbers(area_code)
        size = self._page_size(req.query)
        return 200, {
            "available_phone_numbers": [_available_json(n) for n in numbers[:size]],
            "uri": f"{path}/Local.json?{urlencode(sorted(req.query.items()))}",
        }

    def _buy_number(self, req: _Request) -> _Answer:
        form = req.form
        if self.purchase_error is not None:
            self.requests._bump("_purchases_failed")
            raise _TwilioError(400, self.purchase_error)
        wanted = form.get("PhoneNumber", "").strip()
        area_code = form.get("AreaCode", "").strip()
        try:
            phone_number = self._pick_number(wanted, area_code)
        except _TwilioError:
            self.requests._bump("_purchases_failed")
            raise
        number = _Number(
            sid=_new_sid("PN"),
            account_sid=req.account.sid,
            phone_number=phone_number,
            friendly_name=form.get("FriendlyName") or _friendly(phone_number),
            sms_url=form.get("SmsUrl") or None,
            status_callback=form.get("StatusCallback") or None,
            created_at=self.clock(),
        )
        with self._lock:
            if phone_number in self._owned:  # bought by a concurrent request just now
                self.requests._bump("_purchases_failed")
                raise _TwilioError(400, TwilioErrorCode.NUMBER_NOT_AVAILABLE)
            self._owned[phone_number] = req.account.sid
            req.account.numbers[number.sid] = number
            answer = number.to_json()
        self.requests._bump("_numbers_bought")
        return 201, answer

    def _pick_number(self, wanted: str, area_code: str) -> str:
        if wanted:
            if not _E164.fullmatch(wanted) or not wanted.startswith("+1"):
                raise _TwilioError(400, TwilioErrorCode.NUMBER_NOT_AVAILABLE)
            if wanted not in self.available_numbers(wanted[2:5]):
                raise _TwilioError(
                    400, TwilioErrorCode.NUMBER_NOT_AVAILABLE, f"{wanted} is not available"
                )
            return wanted
        available = self.available_numbers(area_code) if area_code else []
        if not available:
            raise _TwilioError(
                400,
                TwilioErrorCode.NO_NUMBERS_IN_AREA_CODE,
                f"No phone numbers found in area code {area_code or '(none given)'}",
            )
        return available[0]

    def _list_numbers(self, req: _Request) -> _Answer:
        query = req.query
        filters = [(n, query[n]) for n in ("PhoneNumber", "FriendlyName") if query.get(n)]
        wanted = dict(filters)
        with self._lock:
            items = [
                n
                for n in req.account.numbers.values()
                if n.phone_number == wanted.get("PhoneNumber", n.phone_number)
                and n.friendly_name == wanted.get("FriendlyName", n.friendly_name)
            ]
            window = self._window(items, query)
            path = f"/{API_VERSION}/Accounts/{req.account.sid}/IncomingPhoneNumbers.json"
            body = self._page_2010(window, "incoming_phone_numbers", path, filters, _Number.to_json)
        return 200, body

    def _fetch_number(self, req: _Request) -> _Answer:
        with self._lock:
            number = req.account.numbers.get(req.groups["sid"])
            if number is not None:
                return 200, number.to_json()
        raise _TwilioError(404, TwilioErrorCode.NOT_FOUND)

    def _release_number(self, req: _Request) -> _Answer:
        with self._lock:
            number = req.account.numbers.pop(req.groups["sid"], None)
            if number is not None:
                self._owned.pop(number.phone_number, None)
        if number is None:
            raise _TwilioError(404, TwilioErrorCode.NOT_FOUND)
        return 204, None

    # -- messaging services (messaging.twilio.com/v1) ------------------------------

    def _create_service(self, req: _Request) -> _Answer:
        service = _Service(
            sid=_new_sid("MG"),
            account_sid=req.account.sid,
            friendly_name=req.form.get("FriendlyName", ""),
            status_callback=req.form.get("StatusCallback") or None,
            inbound_request_url=req.form.get("InboundRequestUrl") or None,
            created_at=self.clock(),
        )
        with self._lock:
            req.account.services[service.sid] = service
        return 201, service.to_json()

    def _list_services(self, req: _Request) -> _Answer:
        with self._lock:
            window = self._window(list(req.account.services.values()), req.query)
            services = [s.to_json() for s in window.items]

        # v1 APIs page with absolute URLs in "meta" (the client follows them verbatim,
        # which is what the adapter's host rewriting is for).
        def url(page: int, token: str | None) -> str:
            params = [("PageSize", str(window.size)), ("Page", str(page))]
            if token:
                params.append(("PageToken", token))
            return f"https://{MESSAGING_HOST}/v1/Services?{urlencode(params)}"

        return 200, {
            "services": services,
            "meta": {
                "page": window.page,
                "page_size": window.size,
                "first_page_url": url(0, None),
                "previous_page_url": window.previous_token
                and url(window.page - 1, window.previous_token),
                "url": url(window.page, None),
                "next_page_url": window.next_token and url(window.page + 1, window.next_token),
                "key": "services",
            },
        }

    def _fetch_service(self, req: _Request) -> _Answer:
        with self._lock:
            service = req.account.services.get(req.groups["sid"])
            if service is not None:
                return 200, service.to_json()
        raise _TwilioError(404, TwilioErrorCode.NOT_FOUND)


# ------------------------------------------------------------------------ helpers


def _parse_date_filter(value: str) -> date | datetime:
    """``DateSent`` filters: a day (YYYY-MM-DD) or an instant (ISO 8601, UTC)."""
    try:
        if len(value) == len("YYYY-MM-DD"):
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _TwilioError(400, _INVALID_PARAMETER_CODE, f"Invalid DateSent: {value}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date_matches(name: str, bound: date | datetime, sent_at: float) -> bool:
    sent = datetime.fromtimestamp(sent_at, UTC)
    value: date | datetime = sent if isinstance(bound, datetime) else sent.date()
    if name == "DateSent<":  # on or before, as Twilio documents it
        return value <= bound  # type: ignore[operator]
    if name == "DateSent>":  # on or after
        return value >= bound  # type: ignore[operator]
    return sent.date() == (bound.date() if isinstance(bound, datetime) else bound)


def _friendly(phone_number: str) -> str:
    digits = phone_number.removeprefix("+1")
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def _available_json(phone_number: str) -> dict[str, Any]:
    return {
        "address_requirements": "none",
        "beta": False,
        # The Available resource spells capabilities in capitals; IncomingPhoneNumbers not.
        "capabilities": {"voice": True, "SMS": True, "MMS": True, "fax": False},
        "friendly_name": _friendly(phone_number),
        "iso_country": "US",
        "lata": None,
        "latitude": None,
        "locality": None,
        "longitude": None,
        "phone_number": phone_number,
        "postal_code": None,
        "rate_center": None,
        "region": None,
    }


def _post_form(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """POST once; (HTTP status, None) or (None, why it failed). Never raises, never
    follows redirects and ignores proxy variables, as a callback to a local receiver must."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read()
        return response.status, None
    except (OSError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {error}"
    finally:
        connection.close()


# ---------------------------------------------------------------------------- CLI


def _number_code(spec: str) -> tuple[str, int]:
    number, sep, code = spec.partition("=")
    if not sep or not code.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected NUMBER=CODE, got {spec!r}")
    return number.strip(), int(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach_core.sandbox.twilio",
        description="Serve a fake Twilio API until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-sid", default=SANDBOX_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=SANDBOX_AUTH_TOKEN)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--status-interval",
        type=float,
        default=DEFAULT_STATUS_INTERVAL_SECONDS,
        help="seconds between a message's status changes",
    )
    parser.add_argument(
        "--throughput",
        type=float,
        default=DEFAULT_THROUGHPUT_PER_SECOND,
        help="messages a second an account may create (0: unlimited)",
    )
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--out-of-order-rate", type=float, default=0.0)
    parser.add_argument("--undelivered-rate", type=float, default=0.0)
    parser.add_argument(
        "--reject",
        type=_number_code,
        action="append",
        default=[],
        metavar="NUMBER=CODE",
        help="refuse creates to NUMBER with CODE (repeatable)",
    )
    parser.add_argument(
        "--fail-delivery",
        type=_number_code,
        action="append",
        default=[],
        metavar="NUMBER=CODE",
        help="report CODE in NUMBER's callbacks (repeatable)",
    )
    parser.add_argument(
        "--no-numbers",
        action="append",
        default=sorted(NO_NUMBERS_AREA_CODES),
        metavar="AREA_CODE",
        help="an area code with nothing to buy (repeatable)",
    )
    parser.add_argument("--purchase-error", type=int, default=None, help="fail every purchase")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help=f"queue a fault (repeatable): {', '.join(FAULT_KINDS)}",
    )
    args = parser.parse_args(argv)

    with SandboxTwilio(
        host=args.host,
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        latency=args.latency,
        status_interval=args.status_interval,
        throughput_per_second=args.throughput or None,
        reject_numbers=dict(args.reject),
        delivery_failures=dict(args.fail_delivery),
        undelivered_rate=args.undelivered_rate,
        duplicate_callback_rate=args.duplicate_rate,
        out_of_order_rate=args.out_of_order_rate,
        no_numbers_area_codes=args.no_numbers,
        purchase_error=args.purchase_error,
        faults=args.fault,
    ) as sandbox:
        serve_until_stopped(sandbox.base_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
