"""Typed provider errors shared by the Apollo client and the resilience helpers.

Messages are composed by our code from status codes, endpoint paths and error class
names only. They never carry request headers, and callers raise them ``from None`` so
that no chained httpx exception (whose ``.request`` holds the headers) travels with them.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "CircuitOpen",
    "MalformedResponse",
    "PermanentError",
    "ProviderError",
    "RateLimited",
    "RequestRejected",
    "TransientError",
]


class ProviderError(Exception):
    """Base class for every failure talking to an external provider."""

    def __init__(
        self, message: str, *, status_code: int | None = None, endpoint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"endpoint={self.endpoint!r})"
        )


class RateLimited(ProviderError):
    """HTTP 429: the provider is healthy but we must wait ``retry_after`` seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status_code: int | None = 429,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, endpoint=endpoint)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"RateLimited({self.message!r}, retry_after={self.retry_after!r})"


class TransientError(ProviderError):
    """Worth retrying: 5xx, 408, timeouts, connection failures, non-JSON bodies.

    ``outcome_unknown`` is True when the request may have reached the provider and been
    billed (read timeouts, resets after sending); a cost ledger should record such
    attempts as "possibly charged" rather than free.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        endpoint: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code, endpoint=endpoint)
        self.outcome_unknown = outcome_unknown


class PermanentError(ProviderError):
    """Retrying will not help: 4xx other than 408/429, redirects, unusable responses.

    Raised as such (not as a subclass below) it means no request of ours can succeed
    until our configuration is fixed: a redirect, or a 4xx such as 402 (plan or
    payment), 404 or 405 (wrong base URL or endpoint). Nothing was billed.
    """


class RequestRejected(PermanentError):
    """HTTP 400, 413 or 422: the provider refused this request's content (for a bulk call,
    something about the people in it); other requests may well succeed. Not billed."""


class AccessDenied(PermanentError):
    """HTTP 401 or 403: the provider refuses our key or account; no request will succeed
    until that is fixed. Not billed."""


class MalformedResponse(PermanentError):
    """A 2xx JSON body we cannot map back to the request (the call may have been billed).

    ``credits_consumed`` is what the body claimed, if it said anything.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        endpoint: str | None = None,
        credits_consumed: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, endpoint=endpoint)
        self.credits_consumed = credits_consumed


class CircuitOpen(ProviderError):
    """Fail-fast rejection while a circuit breaker is open; no request was made."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"CircuitOpen({self.message!r}, retry_after={self.retry_after!r})"
