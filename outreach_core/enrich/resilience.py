"""Retry policy and circuit breaker for provider calls (provider-agnostic).

Both are in-process. They bound how hard *this* worker pushes a failing provider; the
limits that must hold across workers (request rate, budget) belong to PostgreSQL-backed
components layered around the client (see ``RequestGate`` in ``apollo_client``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from outreach_core.enrich.errors import CircuitOpen, ProviderError, RateLimited, TransientError

__all__ = ["BreakerState", "CircuitBreaker", "RetryEvent", "RetryPolicy"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryEvent:
    """Passed to ``RetryPolicy.on_retry`` before each wait (for metrics or a ledger)."""

    attempt: int  # 1-based number of the attempt that just failed
    error: ProviderError
    delay: float


@dataclass
class RetryPolicy:
    """Retry transient failures with backoff and honour 429 Retry-After.

    * ``TransientError``: up to ``max_attempts`` attempts in total, sleeping
      ``backoff(n)`` between them; then the last error is raised.
    * ``RateLimited``: sleep exactly ``retry_after`` and try again, up to
      ``max_rate_limit_waits`` times. These waits do not use up ``max_attempts``: a 429
      says nothing about the request being bad. A Retry-After above ``max_retry_after``
      is raised at once so a worker is not parked for minutes; the caller reschedules.
    * Anything else (``PermanentError``, ``CircuitOpen``) is raised immediately, and so
      is a transient error that has just opened the ``breaker``.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_rate_limit_waits: int = 5
    max_retry_after: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random
    on_retry: Callable[[RetryEvent], None] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, failures: int) -> float:
        """Delay after the ``failures``-th consecutive transient failure.

        "Equal jitter": half the exponential step is fixed so we always back off, half is
        random so workers that failed together do not retry in lockstep.
        """
        step = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return step / 2 + self.jitter() * step / 2

    def call(self, fn: Callable[[], T], *, breaker: CircuitBreaker | None = None) -> T:
        failures = 0
        waits = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                return breaker.call(fn) if breaker is not None else fn()
            except RateLimited as exc:
                waits += 1
                if waits > self.max_rate_limit_waits or exc.retry_after > self.max_retry_after:
                    raise
                delay = max(0.0, exc.retry_after)
                error: ProviderError = exc
            except TransientError as exc:
                failures += 1
                if failures >= self.max_attempts:
                    raise
                # Sleeping only to be refused by our own open breaker wastes a worker; the
                # real failure is more useful to the caller than CircuitOpen.
                if breaker is not None and breaker.state is BreakerState.OPEN:
                    raise
                delay = self.backoff(failures)
                error = exc
            logger.warning(
                "provider call failed (%s), retrying in %.2fs (attempt %d)",
                type(error).__name__,
                delay,
                attempt,
            )
            if self.on_retry is not None:
                self.on_retry(RetryEvent(attempt=attempt, error=error, delay=delay))
            self.sleep(delay)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Open after ``failure_threshold`` consecutive failed calls; probe after ``cooldown``.

    Only exceptions in ``failure_types`` count as failures (by default transient ones:
    the provider is down or broken). A 4xx or 429 proves the provider is answering, so
    it counts as a healthy response. In half-open state a single trial call is let
    through; concurrent callers get ``CircuitOpen`` until it finishes.
    """

    failure_threshold: int = 5
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failure_types: tuple[type[BaseException], ...] = (TransientError,)
    name: str = "provider"
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _trial_running: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._cooled_down():
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def _cooled_down(self) -> bool:
        return self.clock() - self._opened_at >= self.cooldown

    def _admit(self) -> bool:
        """Raise CircuitOpen or return whether this call is the half-open trial."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                if not self._cooled_down():
                    remaining = self.cooldown - (self.clock() - self._opened_at)
                    raise CircuitOpen(f"{self.name} circuit open", retry_after=remaining)
                self._state = BreakerState.HALF_OPEN
            if self._state is BreakerState.HALF_OPEN:
                if self._trial_running:
                    raise CircuitOpen(
                        f"{self.name} circuit half-open, probe in flight", retry_after=self.cooldown
                    )
                self._trial_running = True
                return True
            return False

    def call(self, fn: Callable[[], T]) -> T:
        trial = self._admit()
        try:
            result = fn()
        except self.failure_types:
            self._record(failed=True, trial=trial)
            raise
        except Exception:
            self._record(failed=False, trial=trial)
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt, worker shutdown): learned nothing.
            with self._lock:
                if trial:
                    self._trial_running = False
            raise
        self._record(failed=False, trial=trial)
        return result

    def _record(self, *, failed: bool, trial: bool) -> None:
        with self._lock:
            if trial:
                self._trial_running = False
            if not failed:
                self._failures = 0
                self._state = BreakerState.CLOSED
                return
            self._failures += 1
            if trial or self._failures >= self.failure_threshold:
                if self._state is not BreakerState.OPEN:
                    logger.warning(
                        "%s circuit opened after %d consecutive failures", self.name, self._failures
                    )
                self._state = BreakerState.OPEN
                self._opened_at = self.clock()

    def reset(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._trial_running = False
