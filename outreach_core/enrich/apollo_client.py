"""HTTP client for Apollo.io People Enrichment (``people/match`` and ``people/bulk_match``).

One method call is one HTTP attempt: it raises typed errors and never retries by itself.
Compose it with ``RetryPolicy`` and ``CircuitBreaker`` (``outreach_core.enrich.resilience``)
and, for limits shared between workers, a ``RequestGate`` (a PostgreSQL rate limiter):

    breaker = CircuitBreaker()
    retry = RetryPolicy()
    with ApolloClient(url, key, gate=pg_gate) as apollo:
        result = retry.call(lambda: apollo.bulk_match(batch), breaker=breaker)

The dedup cache sits in front (``MatchInput.identity_key``) and the cost ledger behind
(``BulkResult.credits_consumed``, ``TransientError.outcome_unknown``).

The API key is sent only in the ``X-Api-Key`` header, is held as a ``SecretStr`` and is
never part of an exception, a repr or a log line.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from outreach_core.db.states import EnrichmentStatus
from outreach_core.enrich.apollo_models import ApolloOrganization, ApolloPerson
from outreach_core.enrich.defaults import HTTP_TIMEOUT_SECONDS
from outreach_core.enrich.errors import (
    AccessDenied,
    CircuitOpen,
    MalformedResponse,
    PermanentError,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from outreach_core.enrich.resilience import BreakerState, CircuitBreaker, RetryEvent, RetryPolicy

__all__ = [
    "BULK_MATCH_PATH",
    "CREDITS_PER_MATCH",
    "CREDITS_PER_MOBILE",
    "DENIED_STATUSES",
    "INSUFFICIENT_DATA",
    "LOOPBACK_HOSTS",
    "MATCH_PATH",
    "MAX_BULK",
    "REJECTED_STATUSES",
    "AccessDenied",
    "ApolloClient",
    "ApolloOrganization",
    "ApolloPerson",
    "BreakerState",
    "BulkResult",
    "CircuitBreaker",
    "CircuitOpen",
    "MalformedResponse",
    "MatchInput",
    "MatchResult",
    "MatchStatus",
    "PermanentError",
    "ProviderError",
    "QuotaInfo",
    "RateLimited",
    "RequestGate",
    "RequestRejected",
    "RetryEvent",
    "RetryPolicy",
    "TransientError",
    "credits_for",
    "match_eligibility",
    "max_credits",
    "parse_retry_after",
    "plan_bulk_batches",
]

logger = logging.getLogger(__name__)

MATCH_PATH: Final = "/api/v1/people/match"
BULK_MATCH_PATH: Final = "/api/v1/people/bulk_match"
MAX_BULK: Final = 10
# Apollo's price list: a match costs a credit, a revealed mobile number 8 more; a miss is free.
CREDITS_PER_MATCH: Final = 1
CREDITS_PER_MOBILE: Final = 8
# The reason match_eligibility gives, which is also the lead's status.
INSUFFICIENT_DATA: Final = EnrichmentStatus.INSUFFICIENT_DATA
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Bad request, payload too large, unprocessable: about this request's content.
REJECTED_STATUSES: Final = frozenset({400, 413, 422})
# Unauthorized, forbidden: about our key or account.
DENIED_STATUSES: Final = frozenset({401, 403})
_MAX_REASON: Final = 300


# -------------------------------------------------------------------------- input


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text or None


@dataclass(frozen=True, slots=True)
class MatchInput:
    """What we know about a lead, in Apollo's request field names."""

    id: str | None = None  # Apollo's person id, once a match has told us
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    email: str | None = None
    linkedin_url: str | None = None
    organization_name: str | None = None
    domain: str | None = None
    reveal_phone_number: bool = False

    def details(self) -> dict[str, str]:
        """The identifiers as one ``details`` element: trimmed, empty ones omitted."""
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "reveal_phone_number":
                continue
            value = _clean(getattr(self, f.name))
            if value is not None:
                out[f.name] = value
        return out

    def identity_key(self) -> str:
        """Stable hash of the normalised identifiers, for a dedup cache of paid lookups.

        The reveal flag is left out on purpose: the cache decides whether a stored match
        without phones satisfies a request with ``reveal_phone_number``. Once Apollo's
        person id is known it is the identity, whatever else we hold about the person.
        """
        if self.id and self.id.strip():
            return hashlib.sha256(f"id={self.id.strip().lower()}".encode()).hexdigest()
        parts = [f"{k}={v.lower()}" for k, v in sorted(self.details().items())]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _plausible_email(value: str | None) -> bool:
    if value is None:
        return False
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain.strip(".") and " " not in value)


def match_eligibility(inp: MatchInput) -> str | None:
    """None when Apollo can plausibly match ``inp``; else the reason not to pay for a call.

    Apollo needs an email, a LinkedIn URL, or first + last name with a company name or
    domain. A full ``name`` of two or more words stands in for first + last, as it does
    in Apollo's API. Values that cannot be identifiers (an email without a domain) count
    as missing: a request built on them is billed for a guaranteed miss.
    """
    d = inp.details()
    if "id" in d or _plausible_email(d.get("email")):
        return None
    if "linkedin.com/" in d.get("linkedin_url", "").lower():
        return None
    has_person = ("first_name" in d and "last_name" in d) or len(d.get("name", "").split()) >= 2
    if has_person and ("organization_name" in d or "domain" in d):
        return None
    return INSUFFICIENT_DATA


def plan_bulk_batches(people: Sequence[MatchInput], size: int = MAX_BULK) -> list[list[int]]:
    """Indices of eligible inputs grouped into bulk calls.

    ``reveal_phone_number`` is a per-request flag in Apollo, so people asking for phones
    (8 extra credits each) never share a call with people who do not.
    """
    if not 1 <= size <= MAX_BULK:
        raise ValueError(f"size must be between 1 and {MAX_BULK}")
    batches: list[list[int]] = []
    for reveal in (False, True):
        picked = [
            i
            for i, p in enumerate(people)
            if p.reveal_phone_number is reveal and match_eligibility(p) is None
        ]
        batches.extend(picked[i : i + size] for i in range(0, len(picked), size))
    return batches


# ------------------------------------------------------------------------- output


class MatchStatus(StrEnum):
    MATCHED = "matched"
    NO_MATCH = "no_match"  # Apollo answered null: cache it, do not ask again soon
    QUARANTINED = "quarantined"  # Apollo answered something we cannot parse
    SKIPPED = "skipped"  # not sent (see ``reason``), nothing billed


@dataclass(frozen=True)
class MatchResult:
    """Outcome for one input. ``index`` is its position in the list given to the call.

    ``raw`` is the element exactly as received (for storage or the quarantine table).
    ``credits_consumed`` is set by ``match()``; in a bulk call Apollo only reports the
    total, which is on ``BulkResult``.
    """

    index: int
    status: MatchStatus
    person: ApolloPerson | None = None
    raw: Any = None
    reason: str | None = None
    credits_consumed: int | None = None

    @property
    def matched(self) -> bool:
        return self.status is MatchStatus.MATCHED


@dataclass(frozen=True)
class BulkResult:
    """One ``MatchResult`` per input, in input order; ``requested`` people were sent."""

    results: tuple[MatchResult, ...]
    credits_consumed: int | None
    requested: int

    def with_status(self, status: MatchStatus) -> list[MatchResult]:
        return [r for r in self.results if r.status is status]

    @property
    def matched(self) -> list[MatchResult]:
        return self.with_status(MatchStatus.MATCHED)

    @property
    def no_match(self) -> list[MatchResult]:
        return self.with_status(MatchStatus.NO_MATCH)

    @property
    def quarantined(self) -> list[MatchResult]:
        return self.with_status(MatchStatus.QUARANTINED)

    @property
    def skipped(self) -> list[MatchResult]:
        return self.with_status(MatchStatus.SKIPPED)


@dataclass(frozen=True)
class QuotaInfo:
    """Apollo's per-minute quota headers, when present."""

    limit_per_minute: int | None = None
    remaining_minute: int | None = None


class RequestGate(Protocol):
    """Seam for a limiter shared across processes (e.g. a token bucket row in PostgreSQL).

    ``before_request`` runs before every HTTP attempt (retries included) and may block or
    raise; ``after_response`` sees every HTTP answer, so a 429's ``retry_after`` can pause
    all workers, not just this one.
    """

    def before_request(self, endpoint: str, people: int) -> None: ...

    def after_response(
        self, endpoint: str, status_code: int, quota: QuotaInfo, retry_after: float | None
    ) -> None: ...


class _OpenGate:
    def before_request(self, endpoint: str, people: int) -> None:
        return None

    def after_response(
        self, endpoint: str, status_code: int, quota: QuotaInfo, retry_after: float | None
    ) -> None:
        return None


def credits_for(person: ApolloPerson | None) -> int:
    """What Apollo bills for one answer (it reports only a bulk call's total)."""
    if person is None:
        return 0
    return CREDITS_PER_MATCH + (CREDITS_PER_MOBILE if person.mobile_numbers else 0)


def max_credits(reveal_phone_number: bool) -> int:
    """The most one person can cost: the amount to reserve before asking."""
    return CREDITS_PER_MATCH + (CREDITS_PER_MOBILE if reveal_phone_number else 0)


# ------------------------------------------------------------------------ helpers


def parse_retry_after(value: str | None, *, now: float, default: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else default


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _client_error(status: int) -> type[PermanentError]:
    """The error a 4xx (other than 408 and 429) means; see the classes in ``errors``."""
    if status in REJECTED_STATUSES:
        return RequestRejected
    if status in DENIED_STATUSES:
        return AccessDenied
    return PermanentError


def _credits(body: dict[str, Any]) -> int | None:
    value = body.get("credits_consumed")
    # bool is an int subclass; a JSON true is not a credit count.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _validation_reason(exc: ValidationError) -> str:
    # Built from locations and messages only: pydantic's own str() echoes input values,
    # which may be personal data.
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
    ]
    return ("malformed_match: " + "; ".join(parts))[:_MAX_REASON]


def _parse_person(index: int, raw: Any) -> MatchResult:
    if raw is None:
        return MatchResult(index=index, status=MatchStatus.NO_MATCH)
    if not isinstance(raw, dict):
        return MatchResult(
            index=index,
            status=MatchStatus.QUARANTINED,
            raw=raw,
            reason=f"malformed_match: expected object, got {type(raw).__name__}",
        )
    try:
        person = ApolloPerson.model_validate(raw)
    except ValidationError as exc:
        return MatchResult(
            index=index, status=MatchStatus.QUARANTINED, raw=raw, reason=_validation_reason(exc)
        )
    return MatchResult(index=index, status=MatchStatus.MATCHED, person=person, raw=raw)


# ------------------------------------------------------------------------- client


class ApolloClient:
    """Apollo People Enrichment over httpx; thread-safe (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        timeout: float | httpx.Timeout = HTTP_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        *,
        gate: RequestGate | None = None,
        clock: Callable[[], float] = time.time,
        default_retry_after: float = 60.0,
        allow_insecure_http: bool = False,
    ) -> None:
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        raw_key = secret.get_secret_value()
        if not raw_key:
            raise ValueError("api_key is empty")
        # Checked here so httpx never builds an error message around an invalid header
        # value, which would quote the key.
        if not raw_key.isascii() or not raw_key.isprintable() or any(c.isspace() for c in raw_key):
            raise ValueError("api_key contains characters not allowed in an HTTP header")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        if (
            parts.scheme == "http"
            and parts.hostname not in LOOPBACK_HOSTS
            and not allow_insecure_http
        ):
            raise ValueError(
                "plain http would expose the API key; use https "
                "(or allow_insecure_http=True for a private sandbox)"
            )
        if isinstance(timeout, httpx.Timeout):
            if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
                raise ValueError("every timeout phase must be set")
            resolved = timeout
        else:
            if timeout is None or not timeout > 0:
                raise ValueError("timeout must be a positive number of seconds")
            resolved = httpx.Timeout(timeout)

        self._api_key = secret
        self.base_url = base_url.rstrip("/")
        self.timeout = resolved
        self._gate: RequestGate = gate or _OpenGate()
        self._clock = clock
        self._default_retry_after = default_retry_after
        # The key is not a client default header: httpx would keep it in client.headers,
        # whose repr masks only Authorization.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=resolved,
            transport=transport,
            follow_redirects=False,  # a redirect could hand the key to another host
            headers={"Accept": "application/json", "Cache-Control": "no-cache"},
        )

    def __repr__(self) -> str:
        return f"ApolloClient(base_url={self.base_url!r}, api_key=SecretStr('**********'))"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApolloClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------

    def match(self, person: MatchInput) -> MatchResult:
        """Enrich one person. Ineligible input returns SKIPPED without a request."""
        reason = match_eligibility(person)
        if reason is not None:
            return MatchResult(
                index=0, status=MatchStatus.SKIPPED, reason=reason, credits_consumed=0
            )
        payload: dict[str, Any] = person.details()
        if person.reveal_phone_number:
            payload["reveal_phone_number"] = True
        body = self._post(MATCH_PATH, payload, people=1)
        parsed = _parse_person(0, body.get("person"))
        return MatchResult(
            index=0,
            status=parsed.status,
            person=parsed.person,
            raw=parsed.raw,
            reason=parsed.reason,
            credits_consumed=_credits(body),
        )

    def bulk_match(self, people: Sequence[MatchInput]) -> BulkResult:
        """Enrich up to 10 people in one request; results map back to input indices.

        Ineligible inputs are SKIPPED and not sent; if none is eligible no request is
        made. All inputs must agree on ``reveal_phone_number`` (use ``plan_bulk_batches``).
        """
        if len(people) > MAX_BULK:
            raise ValueError(f"bulk_match accepts at most {MAX_BULK} people, got {len(people)}")
        if len({p.reveal_phone_number for p in people}) > 1:
            raise ValueError(
                "reveal_phone_number differs within one bulk call; "
                "split the batch (see plan_bulk_batches)"
            )
        results: list[MatchResult | None] = [None] * len(people)
        sent: list[int] = []
        for i, p in enumerate(people):
            reason = match_eligibility(p)
            if reason is None:
                sent.append(i)
            else:
                results[i] = MatchResult(index=i, status=MatchStatus.SKIPPED, reason=reason)
        if not sent:
            return BulkResult(
                results=tuple(r for r in results if r is not None), credits_consumed=0, requested=0
            )

        payload: dict[str, Any] = {"details": [people[i].details() for i in sent]}
        if people[sent[0]].reveal_phone_number:
            payload["reveal_phone_number"] = True
        body = self._post(BULK_MATCH_PATH, payload, people=len(sent))
        credits = _credits(body)
        matches = body.get("matches")
        if not isinstance(matches, list) or len(matches) != len(sent):
            # Without positional alignment no element can be attributed to an input.
            got = len(matches) if isinstance(matches, list) else type(matches).__name__
            raise MalformedResponse(
                f"{BULK_MATCH_PATH}: expected {len(sent)} matches, got {got}",
                status_code=200,
                endpoint=BULK_MATCH_PATH,
                credits_consumed=credits,
            )
        for i, raw in zip(sent, matches, strict=True):
            results[i] = _parse_person(i, raw)
        final = tuple(r for r in results if r is not None)
        return BulkResult(results=final, credits_consumed=credits, requested=len(sent))

    # -- transport ----------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key.get_secret_value(), "***")

    def _post(self, endpoint: str, payload: dict[str, Any], *, people: int) -> dict[str, Any]:
        self._gate.before_request(endpoint, people)
        started = time.monotonic()
        try:
            response = self._http.post(
                endpoint, json=payload, headers={"X-Api-Key": self._api_key.get_secret_value()}
            )
        # Every handler raises `from None`: the httpx exception's .request holds the key.
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise TransientError(
                f"{endpoint}: {type(exc).__name__}", endpoint=endpoint, outcome_unknown=sent
            ) from None
        except httpx.UnsupportedProtocol:
            raise PermanentError(
                f"{endpoint}: unsupported protocol in base_url", endpoint=endpoint
            ) from None
        except httpx.ConnectError as exc:
            raise TransientError(
                f"{endpoint}: {type(exc).__name__}", endpoint=endpoint, outcome_unknown=False
            ) from None
        except httpx.TransportError as exc:
            # Reset or protocol error mid-exchange: the provider may have done the work.
            raise TransientError(
                f"{endpoint}: {type(exc).__name__}", endpoint=endpoint, outcome_unknown=True
            ) from None
        logger.debug(
            "apollo %s -> %d in %.3fs", endpoint, response.status_code, time.monotonic() - started
        )
        return self._classify(endpoint, response)

    def _classify(self, endpoint: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        quota = QuotaInfo(
            _int_header(response.headers, "x-rate-limit-minute"),
            _int_header(response.headers, "x-minute-requests-left"),
        )
        retry_after = None
        if status == 429:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"),
                now=self._clock(),
                default=self._default_retry_after,
            )
        self._gate.after_response(endpoint, status, quota, retry_after)

        if retry_after is not None:
            raise RateLimited(
                f"{endpoint}: HTTP 429, retry after {retry_after:g}s",
                retry_after=retry_after,
                endpoint=endpoint,
            )
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).hostname or "unknown host"
            raise PermanentError(
                f"{endpoint}: HTTP {status} redirect to {target} not followed",
                status_code=status,
                endpoint=endpoint,
            )
        if status >= 500 or status == 408:
            raise TransientError(
                f"{endpoint}: HTTP {status}",
                status_code=status,
                endpoint=endpoint,
                outcome_unknown=status in (502, 504),
            )
        if status >= 400:
            raise _client_error(status)(
                f"{endpoint}: HTTP {status}{self._error_detail(response)}",
                status_code=status,
                endpoint=endpoint,
            )
        if not 200 <= status < 300:
            raise TransientError(
                f"{endpoint}: unexpected HTTP {status}", status_code=status, endpoint=endpoint
            )

        content_type = response.headers.get("Content-Type", "")
        body: Any = None
        if "json" in content_type.lower():
            try:
                body = response.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            # Proxies and maintenance pages answer 200 with HTML; the next try may be fine.
            kind = content_type.split(";")[0].strip() or "no content type"
            raise TransientError(
                f"{endpoint}: HTTP {status} with non-JSON body ({kind})",
                status_code=status,
                endpoint=endpoint,
            )
        return body

    def _error_detail(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        detail = body.get("error") if isinstance(body, dict) else None
        if not isinstance(detail, str):
            return ""
        return ": " + self._redact(detail)[:200]
