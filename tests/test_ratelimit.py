"""PostgreSQL rate limiter: fixed windows shared by every connection, 429 pauses, and a
shared pacing schedule. The window tests switch pacing off to look at windows alone."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from outreach_core.db.engine import app_engine
from outreach_core.ratelimit import PgRateLimiter, RateLimitReached

MINUTE = 1_800_000_000.0  # a UTC minute boundary (divisible by 60)


class FakeClock:
    """Shared fake time: sleeping advances it, so nothing really waits. A sleep wakes at
    (the time that thread last read) + seconds, as a real sleep would."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.wakes: list[float] = []
        self._lock = threading.Lock()
        self._last = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._last.value = self.t
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            wake = self._last.value + seconds
            self.wakes.append(wake)
            self.t = max(self.t, wake)


def _provider() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _windows(provider: str) -> dict[tuple[str, datetime], int]:
    with app_engine().connect() as conn:
        rows = conn.execute(
            text(
                'SELECT "window", window_start, used FROM provider_rate_windows WHERE provider = :p'
            ),
            {"p": provider},
        ).all()
    return {(r.window, r.window_start): r.used for r in rows}


def test_limit_holds_across_threads_and_the_rest_wait_for_the_next_window() -> None:
    provider = _provider()
    clock = FakeClock(MINUTE + 10)
    done: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def worker() -> None:
        # One limiter per thread, as separate processes would have; each has its own
        # connection from the pool for every attempt.
        limiter = PgRateLimiter(
            app_engine(), provider, {"minute": 5}, clock=clock, sleep=clock.sleep, pace_margin=None
        )
        start.wait()
        for _ in range(4):
            limiter.acquire()
            with lock:
                done.append(clock())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(done) == 8
    assert _windows(provider) == {
        ("minute", _ts(MINUTE)): 5,
        ("minute", _ts(MINUTE + 60)): 3,
    }
    # Whoever waited, waited exactly until the full window ended; never longer.
    # (When each thread *recorded* its time is racy: a sleeping thread moves the shared
    # fake clock, so the window rows above are the evidence of who went when.)
    assert clock.wakes and set(clock.wakes) == {MINUTE + 60}


def test_every_window_must_have_room_and_a_full_one_takes_nothing_from_the_others() -> None:
    provider = _provider()
    hour = MINUTE - (MINUTE % 3600)
    clock = FakeClock(MINUTE)
    limiter = PgRateLimiter(
        app_engine(),
        provider,
        {"minute": 5, "hour": 6},
        clock=clock,
        sleep=clock.sleep,
        pace_margin=None,
    )
    for _ in range(7):
        limiter.acquire()
    # 5 in the first minute, 1 in the next, then the hour was full until its end.
    assert clock.wakes == [MINUTE + 60, hour + 3600]
    windows = _windows(provider)
    assert windows[("hour", _ts(hour))] == 6
    assert windows[("minute", _ts(MINUTE))] == 5
    assert windows[("minute", _ts(MINUTE + 60))] == 1
    assert windows[("hour", _ts(hour + 3600))] == 1


def test_max_wait_raises_instead_of_sleeping() -> None:
    clock = FakeClock(MINUTE)
    limiter = PgRateLimiter(
        app_engine(),
        _provider(),
        {"day": 1},
        clock=clock,
        sleep=clock.sleep,
        max_wait=120,
        pace_margin=None,
    )
    limiter.acquire()
    with pytest.raises(RateLimitReached) as info:
        limiter.acquire()
    assert info.value.retry_after > 120
    assert clock.wakes == []


def test_a_pause_holds_every_limiter_of_the_key() -> None:
    provider = _provider()
    clock = FakeClock(MINUTE + 5)
    first = PgRateLimiter(
        app_engine(), provider, {"minute": 50}, clock=clock, sleep=clock.sleep, pace_margin=None
    )
    second = PgRateLimiter(
        app_engine(), provider, {"minute": 50}, clock=clock, sleep=clock.sleep, pace_margin=None
    )
    other = PgRateLimiter(
        app_engine(), _provider(), {"minute": 50}, clock=clock, sleep=clock.sleep, pace_margin=None
    )

    first.pause(30.0)
    other.acquire()  # another provider is not paused
    assert clock.wakes == []

    second.acquire()
    assert clock.wakes == [MINUTE + 35]
    # A shorter Retry-After later never shortens a pause already in force.
    first.pause(60.0)
    second.pause(1.0)
    first.acquire()
    assert clock.wakes == [MINUTE + 35, MINUTE + 95]
    first.acquire()
    assert len(clock.wakes) == 2


def test_in_flight_is_capped_per_process() -> None:
    limiter = PgRateLimiter(app_engine(), _provider(), {"minute": 5}, max_in_flight=2)
    with limiter.in_flight(), limiter.in_flight():
        assert not limiter._in_flight.acquire(blocking=False)
    assert limiter._in_flight.acquire(blocking=False)
    limiter._in_flight.release()
    # Without a cap, nothing holds a caller back.
    uncapped = PgRateLimiter(app_engine(), _provider(), {"minute": 5})
    with uncapped.in_flight(), uncapped.in_flight(), uncapped.in_flight():
        pass


def test_requests_are_spaced_evenly_across_limiters_below_the_smallest_window_rate() -> None:
    provider = _provider()
    clock = FakeClock(MINUTE + 30)
    # 60 a minute with a 50% margin: one request every 2 s, whoever sends it.
    first, second = (
        PgRateLimiter(
            app_engine(),
            provider,
            {"minute": 60, "day": 10_000},
            clock=clock,
            sleep=clock.sleep,
            pace_margin=0.5,
        )
        for _ in range(2)
    )
    sent = []
    for limiter in (first, second, first, second, second):
        limiter.acquire()
        sent.append(clock())
    assert sent == [MINUTE + 30 + 2 * i for i in range(5)]
    # Idle time is not banked: after a pause the next request goes at once, the
    # following one a full interval later.
    clock.t += 100
    first.acquire()
    second.acquire()
    assert clock() - (MINUTE + 30 + 8 + 100) == 2


def test_a_pace_that_fell_behind_is_made_up_within_the_catch_up_only() -> None:
    from datetime import timedelta

    clock = FakeClock(MINUTE + 30)
    limiter = PgRateLimiter(
        app_engine(),
        _provider(),
        {"minute": 600},  # one every 0.1 s
        clock=clock,
        sleep=clock.sleep,
        pace_margin=0.0,
        catch_up=timedelta(seconds=0.5),
    )
    limiter.acquire()
    # The caller's own work took 0.8 s: the request now and the five slots of the 0.5 s it
    # may make up go out without waiting; the rest of the delay is lost; the pace resumes.
    clock.t += 0.8
    sent = []
    for _ in range(8):
        limiter.acquire()
        sent.append(round(clock() - (MINUTE + 30.8), 3))
    assert sent == [0.0] * 6 + [0.1, 0.2]
