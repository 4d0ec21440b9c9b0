"""The Twilio client the project uses, and the small definitions shared by the sandbox
(``outreach_core.sandbox.twilio``) and the code that sends and tracks messages.

``twilio_client(sid, token, base_url)`` builds the real ``twilio.rest.Client``. In sandbox
mode its HTTP layer is ``SandboxHttpClient``, which sends every request to ``base_url``
instead of ``*.twilio.com``: the library builds absolute URLs per domain
(``api.twilio.com``, ``messaging.twilio.com``, ...) and takes next-page URLs from response
bodies, so rewriting at the one place every request passes through covers all of them,
and the code under test is exactly the code that runs live.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

__all__ = [
    "API_VERSION",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_TIMEOUT_SECONDS",
    "IDEMPOTENCY_HEADER",
    "ORIGINAL_HOST_HEADER",
    "SIGNATURE_HEADER",
    "SandboxHttpClient",
    "TwilioErrorCode",
    "TwilioMessageStatus",
    "sign_callback",
    "twilio_client",
]

API_VERSION: Final = "2010-04-01"
# Every provider call has a timeout (the library's default is none at all).
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
# Connections kept per host: enough for the send engine's worker threads to share one client.
DEFAULT_POOL_SIZE: Final = 32

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# Twilio puts the same token on every delivery of one webhook event, retries included.
IDEMPOTENCY_HEADER: Final = "I-Twilio-Idempotency-Token"
# The host a sandboxed request was meant for: several Twilio domains share paths
# (``/v1/Services`` exists on messaging, conversations, ...), so the path alone is ambiguous.
ORIGINAL_HOST_HEADER: Final = "X-Forwarded-Host"


class TwilioMessageStatus(StrEnum):
    """Every status a Twilio message can have (``MessageInstance.Status``), in lifecycle
    order: a status callback may arrive late or twice, and only a later status may replace
    an earlier one (see ``rank``)."""

    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"  # outbound through a Messaging Service, sender not chosen yet
    QUEUED = "queued"
    SENDING = "sending"
    RECEIVING = "receiving"  # inbound
    SENT = "sent"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    RECEIVED = "received"  # inbound, final
    READ = "read"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]

    @property
    def is_final(self) -> bool:
        """No further status is expected (``read`` may still follow ``delivered`` on
        channels with read receipts; SMS has none)."""
        return self in _FINAL_STATUSES

    def supersedes(self, current: TwilioMessageStatus | None) -> bool:
        """Whether a callback reporting ``self`` should replace ``current``: never go back,
        and never swap one outcome for another of the same rank."""
        return current is None or self.rank > current.rank


# Statuses of the same rank are alternatives, not steps (a message ends delivered *or*
# undelivered); read comes after delivered.
_STATUS_RANK: Final[Mapping[TwilioMessageStatus, int]] = {
    TwilioMessageStatus.SCHEDULED: 0,
    TwilioMessageStatus.ACCEPTED: 1,
    TwilioMessageStatus.QUEUED: 2,
    TwilioMessageStatus.SENDING: 3,
    TwilioMessageStatus.RECEIVING: 3,
    TwilioMessageStatus.SENT: 4,
    TwilioMessageStatus.PARTIALLY_DELIVERED: 5,
    TwilioMessageStatus.DELIVERED: 6,
    TwilioMessageStatus.UNDELIVERED: 6,
    TwilioMessageStatus.FAILED: 6,
    TwilioMessageStatus.CANCELED: 6,
    TwilioMessageStatus.RECEIVED: 6,
    TwilioMessageStatus.READ: 7,
}
_FINAL_STATUSES: Final = frozenset(
    {
        TwilioMessageStatus.DELIVERED,
        TwilioMessageStatus.UNDELIVERED,
        TwilioMessageStatus.FAILED,
        TwilioMessageStatus.CANCELED,
        TwilioMessageStatus.RECEIVED,
        TwilioMessageStatus.READ,
    }
)


class TwilioErrorCode(IntEnum):
    """Twilio error codes the project reacts to (https://www.twilio.com/docs/api/errors).
    Twilio may answer others; keep them as plain ints."""

    AUTHENTICATE = 20003
    NOT_FOUND = 20404
    TOO_MANY_REQUESTS = 20429
    INVALID_TO = 21211
    INVALID_FROM = 21212
    REGION_NOT_ENABLED = 21408
    NUMBER_NOT_AVAILABLE = 21422
    NO_NUMBERS_IN_AREA_CODE = 21452
    BODY_REQUIRED = 21602
    FROM_REQUIRED = 21603
    TO_REQUIRED = 21604
    FROM_NOT_OWNED = 21606
    UNSUBSCRIBED = 21610  # the recipient replied STOP to this sender
    CANNOT_ROUTE = 21612
    NOT_MOBILE = 21614
    BODY_TOO_LONG = 21617
    INVALID_MESSAGING_SERVICE = 21701
    QUEUE_OVERFLOW = 30001
    ACCOUNT_SUSPENDED = 30002
    UNREACHABLE = 30003
    BLOCKED = 30004
    UNKNOWN_DESTINATION = 30005
    LANDLINE = 30006
    CARRIER_FILTERED = 30007
    UNKNOWN_ERROR = 30008
    UNREGISTERED_SENDER = 30034  # US A2P 10DLC: sending number not in a registered campaign


# -------------------------------------------------------------------- signatures


def sign_callback(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio puts on a form-encoded webhook to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, dict(params))


# ------------------------------------------------------------------------ client


class SandboxHttpClient(TwilioHttpClient):
    """A ``TwilioHttpClient`` that sends every request to ``base_url``: scheme and host
    (and any path prefix of ``base_url``) are replaced, path and query are kept, and the
    host the library meant goes along in ``X-Forwarded-Host``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        target = urlsplit(base_url)
        if target.scheme not in ("http", "https") or not target.netloc:
            raise ValueError(f"sandbox base URL must be http(s)://host[:port], not {base_url!r}")
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self._scheme = target.scheme
        self._netloc = target.netloc
        self._prefix = target.path.rstrip("/")
        session = self.session
        assert session is not None  # pool_connections=True always makes one
        # Proxy variables are meant for the real internet, not for a loopback sandbox.
        session.trust_env = False
        session.mount(f"{self._scheme}://", HTTPAdapter(pool_maxsize=pool_size))

    def rewrite(self, url: str) -> tuple[str, str]:
        """(URL to request, host the library meant) for a URL the library built."""
        parts = urlsplit(url)
        rewritten = urlunsplit(
            (self._scheme, self._netloc, self._prefix + parts.path, parts.query, "")
        )
        return rewritten, parts.netloc

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        rewritten, original_host = self.rewrite(url)
        return super().request(
            method,
            rewritten,
            params=params,
            data=data,
            headers={**(headers or {}), ORIGINAL_HOST_HEADER: original_host},
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def twilio_client(
    account_sid: str,
    auth_token: str,
    base_url: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Client:
    """The real Twilio client; pointed at ``base_url`` (a sandbox) when one is given."""
    if base_url is None:
        http_client: TwilioHttpClient = TwilioHttpClient(timeout=timeout)
    else:
        http_client = SandboxHttpClient(base_url, timeout=timeout)
    return Client(account_sid, auth_token, http_client=http_client)
