"""Sending-window arithmetic in the recipient's local time. Pure functions, no I/O.

A rule's window is local wall-clock time, so its length in real time changes on DST days and its
position in UTC changes with the season; everything here turns local times into instants through
the zone for the local date in question instead of adding fixed offsets or 24-hour steps.

Wall-clock times that do not exist (the hour skipped when clocks go forward) or happen twice
(the hour repeated when they go back) resolve towards the stricter side: a window opens at the
later of the candidate instants and closes at the earlier one. US zones change at 02:00, far from
any sensible window edge, so this only matters for unusual rules or zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from outreach_core.guardrails.rules import QuietHoursRule

# Twilio accepts a message's ValidityPeriod (seconds it may wait in Twilio's queue before being
# dropped as expired) from 1 to 36,000 (10 hours).
TWILIO_VALIDITY_PERIOD_MIN_S = 1
TWILIO_VALIDITY_PERIOD_MAX_S = 36_000

# How many local days ahead to look for an open window. Every validated rule opens every day, so
# the first or second day always has one; the margin covers a window swallowed by a DST shift.
_SEARCH_DAYS = 7


def is_allowed(now_utc: datetime, tz: ZoneInfo, rule: QuietHoursRule) -> bool:
    """Whether `now_utc` falls inside the rule's window [start, end) in `tz`'s local time."""
    now = _as_utc(now_utc)
    opens, closes = _window_on(now.astimezone(tz).date(), tz, rule)
    return opens <= now < closes


def next_window_start(now_utc: datetime, tz: ZoneInfo, rule: QuietHoursRule) -> datetime:
    """The first moment at or after `now_utc` when sending is allowed, in UTC: `now_utc` itself
    when the window is open, otherwise the next local `start` (today's or a later day's)."""
    return _current_or_next_window(now_utc, tz, rule)[0]


def window_closes_at(now_utc: datetime, tz: ZoneInfo, rule: QuietHoursRule) -> datetime:
    """When the window open at `now_utc` closes, in UTC; when none is open, when the next one
    (the one `next_window_start` returns) closes. Set the message's ValidityPeriod from this so
    a message stuck in Twilio's queue expires instead of arriving after hours."""
    return _current_or_next_window(now_utc, tz, rule)[1]


def twilio_validity_period_s(now_utc: datetime, closes_at: datetime) -> int:
    """Twilio's ValidityPeriod for a message sent at `now_utc` that must not arrive after
    `closes_at`: whole seconds rounded down (so it never outlives the window), clamped to
    Twilio's accepted range. Check `is_allowed` first: a closed window still yields the minimum,
    because Twilio accepts nothing lower."""
    seconds = (_as_utc(closes_at) - _as_utc(now_utc)) // timedelta(seconds=1)
    return max(TWILIO_VALIDITY_PERIOD_MIN_S, min(TWILIO_VALIDITY_PERIOD_MAX_S, seconds))


def _current_or_next_window(
    now_utc: datetime, tz: ZoneInfo, rule: QuietHoursRule
) -> tuple[datetime, datetime]:
    """(max(now, opens), closes) of the first window that has not closed yet at `now_utc`."""
    now = _as_utc(now_utc)
    today = now.astimezone(tz).date()
    for offset in range(_SEARCH_DAYS):
        opens, closes = _window_on(today + timedelta(days=offset), tz, rule)
        if opens < closes and now < closes:
            return max(now, opens), closes
    raise ValueError(
        f"no sending window within {_SEARCH_DAYS} days in {tz.key} for "
        f"{rule.start:%H:%M}-{rule.end:%H:%M}"
    )


def _window_on(day: date, tz: ZoneInfo, rule: QuietHoursRule) -> tuple[datetime, datetime]:
    """The window of local date `day` as UTC instants; empty (opens >= closes) if DST ate it."""
    return _instant(day, rule.start, tz, latest=True), _instant(day, rule.end, tz, latest=False)


def _instant(day: date, wall: time, tz: ZoneInfo, *, latest: bool) -> datetime:
    # fold=0 and fold=1 give the two readings of a repeated wall time, and straddle the gap for
    # a skipped one; for an ordinary time they agree.
    first = datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)
    second = datetime.combine(day, wall, tzinfo=tz).replace(fold=1).astimezone(UTC)
    return max(first, second) if latest else min(first, second)


def _as_utc(moment: datetime) -> datetime:
    # A naive datetime would silently be read as the server's local time.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    return moment.astimezone(UTC)
