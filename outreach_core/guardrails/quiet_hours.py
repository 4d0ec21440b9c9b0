"""The quiet-hours guardrail: may a message reach this recipient now? Pure, no database.

`check_quiet_hours` locates the recipient (guardrails.timezones), takes the effective rule for
the states they may be in (guardrails.rules), and checks the window in their local time
(guardrails.windows). The per-24h cap is only reported, as `max_messages_per_24h`: counting
what was sent needs the database, so the database-backed guardrail enforces it.

When nothing tells where the recipient is (no usable ZIP, no state, no geographic phone number)
the message is blocked with `BlockReason.UNKNOWN_TIMEZONE` and no `retry_at`. The alternative,
sending only when every US zone is inside its window, was rejected because:
  - without a state the state rules are unknown too, so the caller would also have to assume
    every state's cap (3 a day in Florida) for everyone, which this module cannot express;
  - "every zone" including Hawaii and the Pacific territories leaves an hour or two a day, or
    none, and limiting it to the continental zones is exactly the guess that can be wrong;
  - the cause is a data gap that waiting will not fix. A blocked message is recorded with its
    reason, so the gap is visible and fixable; and any lead we can text has a phone number,
    whose area code answers, so in practice this catches only broken or non-geographic data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from outreach_core.guardrails.reasons import BlockReason
from outreach_core.guardrails.rules import QuietHoursRule, QuietHoursRules, load_quiet_hours_rules
from outreach_core.guardrails.timezones import TimeZoneResolution, locate_recipient
from outreach_core.guardrails.windows import (
    is_allowed,
    next_window_start,
    twilio_validity_period_s,
    window_closes_at,
)


@dataclass(frozen=True)
class QuietHoursDecision:
    allowed: bool
    # QUIET_HOURS or UNKNOWN_TIMEZONE when blocked, None when allowed.
    reason: BlockReason | None
    # UTC. When blocked for quiet hours: the next moment the window opens. Otherwise None
    # (allowed: send now; unknown zone: waiting does not help).
    retry_at: datetime | None
    # UTC. When the open window closes or, when blocked, when the next one does; None when the
    # zone is unknown.
    closes_at: datetime | None
    # Twilio's ValidityPeriod for a message sent at the decision's `now`; None when blocked.
    # Recompute with windows.twilio_validity_period_s if the message leaves later.
    validity_period_s: int | None
    # The effective rule (default tightened by every state in `states`).
    rule: QuietHoursRule
    # Every state the recipient may be in; see guardrails.timezones.
    states: tuple[str, ...]
    # The zone used and which source decided it; None when unknown.
    time_zone: TimeZoneResolution | None

    @property
    def max_messages_per_24h(self) -> int | None:
        """The cap for the database-backed guardrail to enforce; None means no cap."""
        return self.rule.max_messages_per_24h


def check_quiet_hours(
    *,
    now_utc: datetime,
    zip_code: str | None,
    state: str | None,
    phone: str | None,
    rules: QuietHoursRules | None = None,
) -> QuietHoursDecision:
    """Decide whether a message to this recipient may go out at `now_utc` (timezone-aware).

    `now` is a parameter, not read from the clock, so the caller can use its transaction's
    time and tests need no clock tricks. `rules` defaults to the packaged rules."""
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        # A naive datetime would silently be read as the server's local time.
        raise ValueError(f"now_utc must be timezone-aware, got {now_utc!r}")
    rules = rules if rules is not None else load_quiet_hours_rules()
    location = locate_recipient(zip_code, state, phone)
    rule = rules.for_states(location.states)
    resolution = location.time_zone
    if resolution is None:
        return QuietHoursDecision(
            allowed=False,
            reason=BlockReason.UNKNOWN_TIMEZONE,
            retry_at=None,
            closes_at=None,
            validity_period_s=None,
            rule=rule,
            states=location.states,
            time_zone=None,
        )

    zone = resolution.zone
    now = now_utc.astimezone(UTC)
    closes_at = window_closes_at(now, zone, rule)
    allowed = is_allowed(now, zone, rule)
    return QuietHoursDecision(
        allowed=allowed,
        reason=None if allowed else BlockReason.QUIET_HOURS,
        retry_at=None if allowed else next_window_start(now, zone, rule),
        closes_at=closes_at,
        validity_period_s=twilio_validity_period_s(now, closes_at) if allowed else None,
        rule=rule,
        states=location.states,
        time_zone=resolution,
    )
