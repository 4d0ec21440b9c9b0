"""Why a guardrail blocked an outbound message.

Every guardrail (quiet hours here; suppression, caps, budget, consent and the daily limit in the
database-backed checks) reports its block with one of these values, and the value is what gets
recorded with the blocked message. Add new reasons to this enum rather than inventing strings
elsewhere, so the list of possible reasons stays in one place. The values are stored in the
database: never rename or reuse one."""

from __future__ import annotations

from enum import StrEnum


class BlockReason(StrEnum):
    SUPPRESSED = "suppressed"  # on the team's suppression list or opted out on any team number
    QUIET_HOURS = "quiet_hours"  # outside the sending window in the recipient's local time
    LEAD_CAP = "lead_cap"  # per-lead cap reached (follow-ups, auto-replies, per-24h state cap)
    BUDGET = "budget"  # campaign or team budget exhausted
    DAILY_LIMIT = "daily_limit"  # the sending number's or team's daily limit reached
    NO_CONSENT = "no_consent"  # first contact without recorded consent
    INVALID_PHONE = "invalid_phone"  # the number cannot be parsed or is not a valid number
    LANDLINE = "landline"  # the number cannot receive SMS
    # No ZIP, state or geographic phone number tells where the recipient is, so neither the
    # local time nor the state's rules are known (see guardrails.quiet_hours for why this blocks
    # instead of guessing).
    UNKNOWN_TIMEZONE = "unknown_timezone"
    CAMPAIGN_PAUSED = "campaign_paused"  # the campaign was paused or stopped
    NUMBER_HALTED = "number_halted"  # the sending number is halted (carrier filtering, errors)
    # A follow-up to a contact who never consented waits for a person to approve it.
    AWAITING_APPROVAL = "awaiting_approval"
