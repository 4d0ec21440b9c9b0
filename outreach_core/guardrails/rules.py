"""Quiet-hours rules: the default sending window, per-state rules, and how they combine.

The data lives in `quiet_hours.yaml` next to this module (see its header for the format). It is
parsed and validated once per process by `load_quiet_hours_rules()`; a bad file fails at load
time with a message naming the entry, rather than letting a send through at the wrong hour.

Combining rules: the effective rule for a recipient is the strictest combination of the default
and every applicable state rule (latest start, earliest end, smallest cap). A state rule can only
tighten the house default, never loosen it, so adding a state to the file is always safe."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time
from functools import cache
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from outreach_core.catalog import US_STATES
from outreach_core.guardrails._data import GuardrailDataError, describe, read_yaml_resource
from outreach_core.settings import get_settings

RULES_RESOURCE = "quiet_hours.yaml"

# Leads store states as capitalised USPS codes; the catalogue keeps the list in lower case.
USPS_CODES: frozenset[str] = frozenset(code.upper() for code in US_STATES)

_HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class QuietHoursRule(BaseModel):
    """A sending window in local wall-clock time, [start, end), and an optional per-24h cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time
    max_messages_per_24h: StrictInt | None = Field(default=None, ge=1)
    basis: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_hh_mm(cls, value: Any) -> Any:
        if isinstance(value, time):
            return value  # built in code rather than read from YAML
        if not isinstance(value, str):
            raise ValueError(
                f"must be a quoted 'HH:MM' string, got {value!r} "
                "(YAML reads an unquoted 20:00 as the number 1200)"
            )
        match = _HH_MM.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a 24-hour 'HH:MM' time")
        return time(int(match.group(1)), int(match.group(2)))

    @model_validator(mode="after")
    def _window_not_empty(self) -> QuietHoursRule:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start:%H:%M} must be before end {self.end:%H:%M} "
                "(a window cannot span midnight)"
            )
        return self

    def stricter(self, other: QuietHoursRule) -> QuietHoursRule:
        """Both rules at once: latest start, earliest end, smallest cap.

        Raises ValueError when the two windows do not overlap; `QuietHoursRules` checks at load
        time that its rules all overlap, so combining rules from one file never raises."""
        caps = [c for c in (self.max_messages_per_24h, other.max_messages_per_24h) if c is not None]
        bases = dict.fromkeys(b for b in (self.basis, other.basis) if b)
        return QuietHoursRule(
            start=max(self.start, other.start),
            end=min(self.end, other.end),
            max_messages_per_24h=min(caps, default=None),
            basis=" + ".join(bases) or None,
        )


class QuietHoursRules(BaseModel):
    """The default rule and the per-state rules, keyed by capitalised USPS code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: QuietHoursRule
    states: dict[str, QuietHoursRule] = Field(default_factory=dict)

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: dict[str, QuietHoursRule]) -> dict[str, QuietHoursRule]:
        unknown = sorted(code for code in states if code not in USPS_CODES)
        if unknown:
            raise ValueError(
                f"unknown state code(s) {unknown}: use USPS codes in capitals, such as 'FL'"
            )
        return states

    @model_validator(mode="after")
    def _rules_overlap(self) -> QuietHoursRules:
        # A recipient can fall under several states (their address, their ZIP, their area code):
        # checking that all rules share a window means no combination can leave none.
        rules = [self.default, *self.states.values()]
        start = max(rule.start for rule in rules)
        end = min(rule.end for rule in rules)
        if start >= end:
            raise ValueError(
                f"the rules share no window (latest start {start:%H:%M}, earliest end "
                f"{end:%H:%M}): a recipient under several of them could never be messaged"
            )
        return self

    def for_states(self, states: Iterable[str | None]) -> QuietHoursRule:
        """The effective rule for a recipient who may be in any of `states` (codes, any case;
        None and states without a rule are skipped): the default tightened by each state rule."""
        rule = self.default
        for state in dict.fromkeys(s.strip().upper() for s in states if s):
            state_rule = self.states.get(state)
            if state_rule is not None:
                rule = rule.stricter(state_rule)
        return rule


def parse_quiet_hours_rules(data: Any, source: str = RULES_RESOURCE) -> QuietHoursRules:
    """Validate an already parsed YAML document; GuardrailDataError names each problem."""
    try:
        return QuietHoursRules.model_validate(data)
    except ValidationError as exc:
        raise describe(exc, source) from None


@cache
def load_quiet_hours_rules() -> QuietHoursRules:
    """The rules of OUTREACH_QUIET_HOURS_FILE when set (an operator's own policy, in the
    packaged file's format), else the packaged ones; parsed and validated once per process."""
    path = get_settings().quiet_hours_file
    if path is None:
        return parse_quiet_hours_rules(read_yaml_resource(RULES_RESOURCE))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GuardrailDataError(f"{path}: cannot be read as YAML: {exc}") from None
    return parse_quiet_hours_rules(document, source=str(path))
