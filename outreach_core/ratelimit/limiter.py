"""The rate limiter every provider call goes through (Apollo lookups, SMS per sending
number, ...). Its state lives in PostgreSQL, so the limits hold across threads, processes
and concurrent Dagster runs (DESIGN.md, Scale-out). A limiter is named by its key: a
provider ("apollo") or one of its resources ("twilio:+12125550100").

Fixed windows aligned to UTC (minute, hour, day). A 429 stores a provider-wide pause
that every process honours before its next request.

Windows alone let a whole minute's quota go out in the window's first second, and a
provider whose windows are not aligned with ours (or that counts a request on arrival,
a few milliseconds after we counted it) then sees more than the limit in its own window
and answers 429. So requests are also paced: a shared schedule in ``provider_pacing``
spaces them evenly at ``pace_margin`` below the smallest window's rate. The schedule is
absolute (each slot is the previous slot plus the interval, not the previous request's end
plus the interval), so the caller's own work between requests does not lower the rate as
long as it fits in the interval on average; any 60-second span holds at most the
per-minute limit, however the provider aligns its windows.

Taking a request is one call of ``outreach_rate_limit_take`` (migration 0015), one round
trip: unless a pause is in force, it takes the next pacing slot and one slot in every
window of the slot's time (``INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit``),
all or nothing: if any window is full nothing is taken and the caller sleeps until that
window ends. A hot caller (the send engine, 50 requests a second) passes a connection it
holds in autocommit mode; otherwise each request checks one out of the pool.

Usage::

    limiter = PgRateLimiter(app_engine(), "twilio:+12125550100", {"minute": 3_000})
    with limiter.in_flight():
        limiter.acquire()      # blocks until a slot is ours (or raises RateLimitReached)
        ...call the provider...
    limiter.pause(30)          # on a 429: every process waits 30 s
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

__all__ = ["WINDOW_SECONDS", "PgRateLimiter", "RateLimitReached", "window_start"]

logger = logging.getLogger(__name__)

# Largest first: every process locks the window rows in the same order.
WINDOW_SECONDS: dict[str, int] = {"day": 86_400, "hour": 3_600, "minute": 60}

# A limiter's own settings are literals in its statement, built once: binding three arrays
# and two intervals cost more of our CPU than the rest of the request.
_TAKE = """
    SELECT taken, due_at FROM outreach_rate_limit_take(
        :provider, :now, {interval}, {catch_up},
        ARRAY[{windows}]::text[], ARRAY[{seconds}]::integer[], ARRAY[{limits}]::integer[])
"""
_PAUSE = text("""
    INSERT INTO provider_pauses AS p (provider, until) VALUES (:provider, :until)
    ON CONFLICT (provider) DO UPDATE SET until = GREATEST(p.until, EXCLUDED.until)
""")
_PURGE = text("""
    DELETE FROM provider_rate_windows WHERE provider = :provider AND window_start < :cutoff
""")


class RateLimitReached(Exception):
    """The next free slot is further away than the caller is willing to wait."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"{key}: rate limit reached, next slot in {retry_after:.0f}s")
        self.key = key
        self.retry_after = retry_after


def window_start(window: str, now: float) -> float:
    """Start (epoch seconds) of the UTC-aligned fixed window containing ``now``."""
    size = WINDOW_SECONDS[window]
    return now - (now % size)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _interval(value: timedelta | None) -> str:
    """An SQL literal of `value`, to the microsecond (as a bound timedelta would be)."""
    if value is None:
        return "CAST(NULL AS interval)"
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return f"INTERVAL '{micros} microseconds'"


class PgRateLimiter:
    """Limits backed by ``provider_rate_windows``, ``provider_pauses`` and ``provider_pacing``.

    ``limits`` maps window kind (``minute``/``hour``/``day``) to requests allowed per
    window; one call (a bulk request of 10 people, one SMS) takes one slot.
    ``max_wait``: when the next free slot is further away than this many seconds,
    ``acquire`` raises ``RateLimitReached`` instead of sleeping (e.g. the daily quota is
    spent: end the run cleanly, resume later). ``in_flight()`` caps concurrent calls of
    this process at ``max_in_flight`` (None: no cap).
    """

    def __init__(
        self,
        engine: Engine,
        provider: str,
        limits: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_in_flight: int | None = None,
        max_wait: float | None = None,
        pace_margin: float | None = 0.02,
        catch_up: timedelta = timedelta(0),
    ) -> None:
        unknown = set(limits) - set(WINDOW_SECONDS)
        if unknown:
            raise ValueError(f"unknown rate windows: {sorted(unknown)}")
        if any(n < 1 for n in limits.values()):
            raise ValueError("every limit must be at least 1")
        self.engine = engine
        self.provider = provider
        self.limits = {w: limits[w] for w in WINDOW_SECONDS if w in limits}
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.interval: timedelta | None = None
        if pace_margin is not None and self.limits:
            if not 0 <= pace_margin < 1:
                raise ValueError("pace_margin must be in [0, 1)")
            window = min(self.limits, key=lambda w: WINDOW_SECONDS[w])
            seconds = WINDOW_SECONDS[window] / (self.limits[window] * (1 - pace_margin))
            self.interval = timedelta(seconds=seconds)
        # How far behind schedule the pace may fall and still be made up: a caller whose
        # own work between requests sometimes overruns the interval (a sender doing database
        # work per message) gets those slots back instead of losing them for good.
        self.catch_up = catch_up
        self._in_flight = (
            threading.BoundedSemaphore(max_in_flight) if max_in_flight is not None else None
        )
        self._last_purge_day: float | None = None
        self.waits = 0  # times this instance had to sleep (full window or pause)
        self._take_sql = text(
            _TAKE.format(
                interval=_interval(self.interval),
                catch_up=_interval(self.catch_up),
                windows=", ".join(f"'{w}'" for w in self.limits),  # names from WINDOW_SECONDS
                seconds=", ".join(str(WINDOW_SECONDS[w]) for w in self.limits),
                limits=", ".join(str(int(n)) for n in self.limits.values()),
            )
        )

    def acquire(self, conn: Connection | None = None) -> None:
        """Block until this process may make one call; every window counts it. ``conn``: a
        connection the caller holds in autocommit mode (and uses from one thread), else one
        from the pool for each attempt."""
        while True:
            now = self.clock()
            taken, due_at = self._take(conn, now)
            wait = due_at.timestamp() - now
            if taken:
                # Our slot in the pacing schedule; the windows already count the call.
                if wait > 0:
                    self.sleep(wait)
                return
            if self.max_wait is not None and wait > self.max_wait:
                raise RateLimitReached(self.provider, wait)
            self.waits += 1
            logger.debug("%s rate limit: waiting %.2fs", self.provider, wait)
            # Then a fresh slot: workers woken together by a pause or a new window still go
            # out one interval apart.
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Make every process wait ``seconds`` from now before the next request."""
        until = _ts(self.clock() + seconds)
        with self.engine.begin() as conn:
            conn.execute(_PAUSE, {"provider": self.provider, "until": until})
        logger.warning("%s: every worker pauses for %.1fs", self.provider, seconds)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Hold one of this process's in-flight call slots for the duration."""
        with self._in_flight if self._in_flight is not None else nullcontext():
            yield

    def _take(self, conn: Connection | None, now: float) -> tuple[bool, datetime]:
        """(True, the slot's time) when a request is ours, else (False, when to try again)."""
        if conn is None:
            with self.engine.connect() as own:
                own.execution_options(isolation_level="AUTOCOMMIT")
                return self._take(own, now)
        taken, due_at = conn.execute(
            self._take_sql, {"provider": self.provider, "now": _ts(now)}
        ).one()
        if taken:
            self._maybe_purge(conn, now)
        return bool(taken), due_at

    def _maybe_purge(self, conn: Connection, now: float) -> None:
        # Old windows are dead rows; drop them about once a day per process.
        day = window_start("day", now)
        if self._last_purge_day == day:
            return
        self._last_purge_day = day
        conn.execute(
            _PURGE, {"provider": self.provider, "cutoff": _ts(day - WINDOW_SECONDS["day"])}
        )
