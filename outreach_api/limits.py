"""Abuse protection for the public endpoints (`/v1/*`, `/webhooks/*`): rate limits per API
key and per source address, a lock-out for addresses that keep sending bad API keys, and a
cap on request bodies. One pure ASGI middleware, `Shield`, installed by `protect(app)`.

Everything is counted in this process's memory, with no lock and no database: the limits are
a shield, not state whose loss matters. With N worker processes the effective limits are N
times these; a restart forgets the counters and nothing is lost (a caller at most gets one
fresh burst). Counting in PostgreSQL or Redis instead would cost a round trip on every
request, the webhook's included (~700 requests/s on 2 cores), to guard against floods that
per-process buckets already stop.

Every counter runs on the event loop's thread (the middleware and `current_team` are both
`async`), which is why none needs a lock.

Source addresses are `request.client.host`: X-Forwarded-For is read only from the proxies in
`Limits.trusted_proxies`. Loopback is exempt from the per-address limits (rate and lock-out)
by default: behind a local reverse proxy every caller would share 127.0.0.1, and local
benchmarks and tools run from there (the webhook bench sends ~700 requests/s). The per-key
limit and the body cap still apply to it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Hashable, MutableMapping
from dataclasses import dataclass
from functools import partial
from time import monotonic
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outreach_api.errors import ErrorOut
from outreach_core.settings import Settings, get_settings

log = logging.getLogger("outreach_api.limits")

# The limits' values are settings (OUTREACH_API_*, outreach_core.settings): Limits.from_settings.
# Routes that stream their bodies and enforce a limit of their own: uploads answer 413 past
# OUTREACH_MAX_UPLOAD_BYTES.
OWN_BODY_LIMIT_PATHS = frozenset({"/v1/uploads"})
PUBLIC_PREFIXES = ("/v1/", "/webhooks/")
# Names tracked per kind of counter before idle ones are dropped (memory stays bounded when
# a flood comes from many addresses or random keys).
MAX_TRACKED = 50_000

# The `responses` descriptions the OpenAPI document gives these statuses on every /v1 route.
TOO_MANY_REQUESTS = (
    "Too many requests: over the rate for this API key or for the caller's address, or too "
    "many invalid API keys from the caller's address. `detail` names the limit; `Retry-After` "
    "says how many seconds to wait."
)
TOO_LARGE = "The request body is over this route's size limit; `detail` says how large it may be."


@dataclass(frozen=True)
class Limits:
    """What `Shield` allows. Rates are requests a second; a burst is how many may come at
    once after a quiet spell."""

    per_key_rate: float
    per_key_burst: int
    per_address_rate: float
    per_address_burst: int
    failed_auth_limit: int
    failed_auth_window_seconds: float
    max_body_bytes: int
    # Never throttled per address (the per-key limit still applies).
    exempt_addresses: frozenset[str]
    # Proxies whose X-Forwarded-For (its last address: the one the proxy saw) is the caller.
    trusted_proxies: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Limits:
        """The configured limits, with `overrides` (tests, benchmarks)."""
        s = settings or get_settings()
        values: dict[str, Any] = {
            "per_key_rate": s.api_rate_per_key,
            "per_key_burst": s.api_burst_per_key,
            "per_address_rate": s.api_rate_per_address,
            "per_address_burst": s.api_burst_per_address,
            "failed_auth_limit": s.api_failed_auth_limit,
            "failed_auth_window_seconds": s.api_failed_auth_window_seconds,
            "max_body_bytes": s.api_max_body_bytes,
            "exempt_addresses": frozenset(s.api_rate_exempt_addresses),
            "trusted_proxies": frozenset(s.api_trusted_proxies),
        }
        return cls(**{**values, **overrides})

    def __post_init__(self) -> None:
        if min(self.per_key_rate, self.per_address_rate, self.failed_auth_window_seconds) <= 0:
            raise ValueError("rates and the failed-authentication window must be positive")
        if min(self.per_key_burst, self.per_address_burst, self.failed_auth_limit) < 1:
            raise ValueError("bursts and the failed-authentication limit must be at least 1")
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")


class TokenBuckets:
    """One token bucket per name: `burst` tokens, refilled at `rate` a second."""

    def __init__(self, rate: float, burst: int, max_names: int = MAX_TRACKED) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_names = max_names
        # name -> [tokens, when they were counted]; a list, so a hit updates it in place.
        self._buckets: dict[Hashable, list[float]] = {}

    def take(self, name: Hashable, now: float) -> float:
        """0.0 when `name` may go (its token is spent), else the seconds until it may."""
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= self.max_names:
                self._prune(now)
            self._buckets[name] = [self.burst - 1, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0.0
        bucket[0] = tokens
        return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full = [
            name
            for name, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * self.rate >= self.burst
        ]
        for name in full:
            del self._buckets[name]
        if len(self._buckets) >= self.max_names:
            log.warning("%d names over their rate at once: forgetting them all", self.max_names)
            self._buckets.clear()


class FailedAuths:
    """Bad API keys per address. `limit` of them within `window` seconds lock the address
    out until a full window has passed since the last one. A good key does not reset the
    count: a caller holding one key could otherwise interleave it to try others forever."""

    def __init__(self, limit: int, window: float, max_names: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window
        self.max_names = max_names
        # address -> [failures, end of their window]
        self._records: dict[str, list[float]] = {}

    def locked_for(self, address: str, now: float) -> float:
        """0.0 when `address` may try keys, else the seconds it stays locked out."""
        record = self._records.get(address)
        if record is None or record[0] < self.limit:
            return 0.0
        if now >= record[1]:
            del self._records[address]
            return 0.0
        return record[1] - now

    def fail(self, address: str) -> None:
        now = monotonic()
        record = self._records.get(address)
        if record is None or now >= record[1]:
            if record is None and len(self._records) >= self.max_names:
                self._prune(now)
            record = self._records[address] = [0, now + self.window]
        record[0] += 1
        if record[0] >= self.limit:
            record[1] = now + self.window

    def _prune(self, now: float) -> None:
        for address in [a for a, (_, end) in self._records.items() if now >= end]:
            del self._records[address]
        if len(self._records) >= self.max_names:
            log.warning("%d addresses sending bad keys: forgetting them all", self.max_names)
            self._records.clear()


# The scope entry `Shield` leaves for `note_failed_auth` (absent for exempt addresses).
_FAILED_AUTH = "outreach.failed_auth"


def note_failed_auth(scope: MutableMapping[str, Any]) -> None:
    """Count a bad API key against the request's source address."""
    failed = scope.get(_FAILED_AUTH)
    if failed is not None:
        failed()


def _error_body(detail: str) -> bytes:
    return json.dumps(ErrorOut(detail=detail).model_dump()).encode()


class Shield:
    """Pure ASGI middleware: on a public path, answer 429 or 413 before the app runs, or
    pass the request on with its body capped. Costs a few microseconds a request (one pass
    over the headers, dictionary look-ups, float arithmetic)."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits = limits or Limits.from_settings()
        self.per_key = TokenBuckets(limits.per_key_rate, limits.per_key_burst)
        self.per_address = TokenBuckets(limits.per_address_rate, limits.per_address_burst)
        self.failed_auths = FailedAuths(limits.failed_auth_limit, limits.failed_auth_window_seconds)
        # Bodies rendered once: under a flood, refusing must stay cheap.
        self._locked_out = _error_body(
            f"too many invalid API keys from your address ({limits.failed_auth_limit} within "
            f"{limits.failed_auth_window_seconds:g} s): locked out until Retry-After"
        )
        self._address_limited = _error_body(
            f"rate limit per source address exceeded: {limits.per_address_rate:g} requests/s "
            f"(bursts of {limits.per_address_burst})"
        )
        self._key_limited = _error_body(
            f"rate limit per API key exceeded: {limits.per_key_rate:g} requests/s "
            f"(bursts of {limits.per_key_burst})"
        )
        self._too_large_detail = (
            f"request body too large: at most {limits.max_body_bytes:,} bytes on this route"
        )
        self._too_large = _error_body(self._too_large_detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        authorization = length = forwarded = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == b"x-forwarded-for":
                forwarded = value
        now = monotonic()
        address = self._address(scope, forwarded)
        if address is not None:
            if wait := self.failed_auths.locked_for(address, now):
                await _refuse(send, 429, self._locked_out, wait)
                return
            if wait := self.per_address.take(address, now):
                await _refuse(send, 429, self._address_limited, wait)
                return
            scope[_FAILED_AUTH] = partial(self.failed_auths.fail, address)
        # hash(): the key itself is not kept in memory after the request; a collision (one in
        # 2^64) would only make two keys share a bucket.
        if authorization is not None and (wait := self.per_key.take(hash(authorization), now)):
            await _refuse(send, 429, self._key_limited, wait)
            return
        if scope["path"] not in OWN_BODY_LIMIT_PATHS:
            limit = self.limits.max_body_bytes
            if length is None:
                # Chunked, or no body: count what arrives. With a Content-Length the server
                # delivers no more than it says.
                receive = _capped(receive, limit, self._too_large_detail)
            elif not length.isdigit() or int(length) > limit:
                # Not digits: a server would have refused it; the body is not read either way.
                await _refuse(send, 413, self._too_large, close=True)
                return
        await self.app(scope, receive, send)

    def _address(self, scope: Scope, forwarded: bytes | None) -> str | None:
        """The caller's address, or None when it is exempt or unknown (a Unix socket)."""
        client = scope.get("client")
        if client is None:
            return None
        address: str = client[0]
        if forwarded is not None and address in self.limits.trusted_proxies:
            address = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip() or address
        return None if address in self.limits.exempt_addresses else address


def _capped(receive: Receive, limit: int, detail: str) -> Receive:
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # Raised into whatever reads the body: FastAPI re-raises HTTPExceptions from
                # body parsing, and its handler answers {"detail": ...} with this status.
                raise HTTPException(413, detail)
        return message

    return capped


async def _refuse(
    send: Send, status: int, body: bytes, retry_after: float = 0.0, close: bool = False
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after:
        headers.append((b"retry-after", b"%d" % max(1, math.ceil(retry_after))))
    if close:
        # The body was not read: closing spares reading (and discarding) the rest of it.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protect(app: FastAPI, limits: Limits | None = None) -> None:
    """Install `Shield` and document its 413 and 429 on every /v1 operation (routes added
    later included: the document is completed when it is first generated)."""
    app.add_middleware(Shield, limits=limits)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document(generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def with_limits(app: FastAPI, limits: Limits) -> FastAPI:
    """`app`, protected by `protect`, with other limits: for tests and benchmarks, which need
    tiny or huge ones. Only before its first request (Starlette then builds the middleware)."""
    if app.middleware_stack is not None:
        raise RuntimeError("the app has started: its limits can no longer change")
    app.user_middleware = [
        Middleware(Shield, limits=limits) if entry.cls is Shield else entry
        for entry in app.user_middleware
    ]
    return app


def _document(schema: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "ErrorOut", ErrorOut.model_json_schema()
    )
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(PUBLIC_PREFIXES):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            body = {"content": {"application/json": {"schema": dict(error_ref)}}}
            # A route's own 413 (uploads: the upload limit) says more than ours.
            responses.setdefault("413", {"description": TOO_LARGE, **body})
            responses.setdefault(
                "429",
                {
                    "description": TOO_MANY_REQUESTS,
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds to wait before trying again.",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                    **body,
                },
            )
