"""Derived lead fields and the lead score, computed from a matched Apollo person.

Pure functions: no I/O except loading the scoring table (once), and ``today`` is always
passed in so results are reproducible in tests and backfills.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from outreach_core.enrich.apollo_models import ApolloPerson
from outreach_core.replies.classes import ReplyClass

__all__ = [
    "ESTABLISHED_YEARS",
    "MAIN_STREET_MAX",
    "MAIN_STREET_MIN",
    "DerivedFields",
    "ScoringTable",
    "derive",
    "has_linkedin",
    "has_verified_email",
    "is_established",
    "is_main_street",
    "is_owner_or_c_level",
    "load_scoring_table",
    "revenue_tier",
    "score",
    "years_in_business",
]

# Upper bounds (exclusive) of each revenue tier in USD; above the last is "enterprise".
_REVENUE_TIERS: Final = (
    (500_000, "startup"),
    (2_500_000, "main_street"),
    (10_000_000, "growth"),
    (50_000_000, "established"),
)
MAIN_STREET_MIN: Final = 500_000
MAIN_STREET_MAX: Final = 10_000_000  # exclusive
ESTABLISHED_YEARS: Final = 5
_TOP_SENIORITY: Final = frozenset({"owner", "founder", "c_suite"})
# Whole words only ("Principal" but not "Principality"); a "Vice"/"Assistant"/"Associate"
# in front of President/Principal/Partner is a rank below the top, not at it.
_TOP_TITLE: Final = re.compile(
    r"\b(?<!vice )(?<!vice-)(?<!assistant )(?<!associate )"
    r"(ceo|owner|president|co-?founder|founder|principal|partner)\b",
    re.IGNORECASE,
)


def revenue_tier(annual_revenue: float | None) -> str | None:
    """startup <$500K, main_street <$2.5M, growth <$10M, established <$50M, else enterprise.

    Zero, negative or non-finite revenue is a data gap, not a tier: treating it as
    "startup" would invent a fact about the business.
    """
    if annual_revenue is None or not math.isfinite(annual_revenue) or annual_revenue <= 0:
        return None
    for upper, tier in _REVENUE_TIERS:
        if annual_revenue < upper:
            return tier
    return "enterprise"


def years_in_business(founded_year: int | None, today: date) -> int | None:
    """Whole calendar years since founding; None if unknown or in the future (bad data)."""
    if founded_year is None or founded_year > today.year:
        return None
    return today.year - founded_year


def has_verified_email(person: ApolloPerson) -> bool:
    return bool(person.email) and person.email_status == "verified"


def has_linkedin(person: ApolloPerson) -> bool:
    return bool(person.linkedin_url and person.linkedin_url.strip())


def is_owner_or_c_level(seniority: str | None, title: str | None) -> bool:
    if seniority is not None and seniority.strip().lower() in _TOP_SENIORITY:
        return True
    return bool(title) and _TOP_TITLE.search(title) is not None


def is_main_street(annual_revenue: float | None) -> bool:
    """$500K up to (not including) $10M: the main-street and growth tiers together."""
    if annual_revenue is None or not math.isfinite(annual_revenue):
        return False
    return MAIN_STREET_MIN <= annual_revenue < MAIN_STREET_MAX


def is_established(years: int | None) -> bool:
    return years is not None and years >= ESTABLISHED_YEARS


@dataclass(frozen=True)
class DerivedFields:
    revenue_tier: str | None
    years_in_business: int | None
    has_verified_email: bool
    has_linkedin: bool
    is_owner_or_c_level: bool
    is_main_street: bool
    is_established: bool
    score: int

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FLAG_NAMES: Final = frozenset(f.name for f in fields(DerivedFields) if f.type in ("bool", bool))


_EVENT_NAMES: Final = frozenset(ReplyClass)


@dataclass(frozen=True)
class ScoringTable:
    base: int
    cap: int
    bonuses: Mapping[str, int]
    # Reply events: what each adds to the score, and those that set it instead.
    events: Mapping[str, int] = field(default_factory=dict)
    set_to: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ScoringTable:
        bonuses = dict(data.get("bonuses") or {})
        unknown = set(bonuses) - _FLAG_NAMES
        if unknown:
            raise ValueError(f"scoring table names unknown flags: {sorted(unknown)}")
        events = dict(data.get("events") or {})
        set_to = dict(data.get("set") or {})
        unknown = (set(events) | set(set_to)) - _EVENT_NAMES
        if unknown:
            raise ValueError(f"scoring table names unknown reply classes: {sorted(unknown)}")
        if both := set(events) & set(set_to):
            raise ValueError(f"scoring events both move and set the score: {sorted(both)}")
        values = [
            data.get("base"),
            data.get("cap"),
            *bonuses.values(),
            *events.values(),
            *set_to.values(),
        ]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError("scoring table values must be integers")
        if not 0 <= data["base"] <= data["cap"] or not all(
            0 <= v <= data["cap"] for v in set_to.values()
        ):
            raise ValueError("the base and the scores set must lie within 0..cap")
        return cls(data["base"], data["cap"], bonuses, events, set_to)


@functools.cache
def load_scoring_table(path: str | None = None) -> ScoringTable:
    """The table in ``scoring.yaml`` next to this module, or in ``path``; read once."""
    if path is None:
        text = resources.files(__package__).joinpath("scoring.yaml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError("scoring table must be a mapping")
    return ScoringTable.from_mapping(data)


def score(flags: Mapping[str, bool], table: ScoringTable | None = None) -> int:
    table = table or load_scoring_table()
    total = table.base + sum(bonus for name, bonus in table.bonuses.items() if flags.get(name))
    return min(table.cap, total)


def derive(person: ApolloPerson, today: date, table: ScoringTable | None = None) -> DerivedFields:
    org = person.organization
    revenue = org.annual_revenue if org is not None else None
    years = years_in_business(org.founded_year if org is not None else None, today)
    flags = {
        "has_verified_email": has_verified_email(person),
        "has_linkedin": has_linkedin(person),
        "is_owner_or_c_level": is_owner_or_c_level(person.seniority, person.title),
        "is_main_street": is_main_street(revenue),
        "is_established": is_established(years),
    }
    return DerivedFields(
        revenue_tier=revenue_tier(revenue),
        years_in_business=years,
        score=score(flags, table),
        **flags,
    )
