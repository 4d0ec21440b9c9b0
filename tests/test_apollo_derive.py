"""Derived lead fields and the lead score (pure functions, table-driven)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from outreach_core.enrich.apollo_models import ApolloPerson
from outreach_core.enrich.derive import (
    ScoringTable,
    derive,
    is_established,
    is_main_street,
    is_owner_or_c_level,
    load_scoring_table,
    revenue_tier,
    score,
    years_in_business,
)
from outreach_core.sandbox.apollo import lookup_person

TODAY = date(2026, 3, 15)


@pytest.mark.parametrize(
    ("revenue", "tier", "main_street"),
    [
        (None, None, False),
        (0, None, False),
        (-5, None, False),
        (float("nan"), None, False),
        (1, "startup", False),
        (499_999, "startup", False),
        (500_000, "main_street", True),
        (2_499_999, "main_street", True),
        (2_500_000, "growth", True),
        (9_999_999, "growth", True),
        (10_000_000, "established", False),
        (49_999_999, "established", False),
        (50_000_000, "enterprise", False),
        (3e9, "enterprise", False),
    ],
)
def test_revenue_tier_and_main_street(
    revenue: float | None, tier: str | None, main_street: bool
) -> None:
    assert revenue_tier(revenue) == tier
    assert is_main_street(revenue) is main_street


@pytest.mark.parametrize(
    ("founded", "years", "established"),
    [
        (None, None, False),
        (2027, None, False),
        (2026, 0, False),
        (2022, 4, False),
        (2021, 5, True),
        (1950, 76, True),
    ],
)
def test_years_in_business(founded: int | None, years: int | None, established: bool) -> None:
    assert years_in_business(founded, TODAY) == years
    assert is_established(years) is established


@pytest.mark.parametrize(
    ("seniority", "title", "expected"),
    [
        ("owner", None, True),
        ("founder", "", True),
        ("c_suite", "Chief Financial Officer", True),
        ("C_Suite", None, True),
        ("vp", "VP of Sales", False),
        ("manager", "Office Manager", False),
        (None, "CEO", True),
        (None, "Owner & Operator", True),
        (None, "President", True),
        (None, "Co-Founder", True),
        (None, "Founder", True),
        (None, "Principal", True),
        (None, "Managing Partner", True),
        (None, "ceo and chair", True),
        (None, "Vice President, Operations", False),
        (None, "Assistant Principal", False),
        (None, "Partnerships Manager", False),
        (None, "Ownership Analyst", False),
        (None, None, False),
    ],
)
def test_is_owner_or_c_level(seniority: str | None, title: str | None, expected: bool) -> None:
    assert is_owner_or_c_level(seniority, title) is expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, 50),
        ({"is_owner_or_c_level": True}, 70),
        ({"has_verified_email": True}, 60),
        ({"has_linkedin": True}, 60),
        ({"is_main_street": True}, 65),
        ({"is_established": True}, 50),  # a derived field, not a bonus
        ({"is_owner_or_c_level": True, "has_verified_email": True, "has_linkedin": True}, 90),
        (
            {
                "is_owner_or_c_level": True,
                "has_verified_email": True,
                "has_linkedin": True,
                "is_main_street": True,
            },
            100,
        ),  # 105 before the cap
        ({"is_owner_or_c_level": False, "has_linkedin": True}, 60),
    ],
)
def test_score(flags: dict[str, bool], expected: int) -> None:
    assert score(flags) == expected


def test_bonus_values_come_from_the_data_file() -> None:
    table = load_scoring_table()
    assert (table.base, table.cap) == (50, 100)
    assert dict(table.bonuses) == {
        "is_owner_or_c_level": 20,
        "has_verified_email": 10,
        "has_linkedin": 10,
        "is_main_street": 15,
    }


def test_custom_table_file(tmp_path: Path) -> None:
    path = tmp_path / "scoring.yaml"
    path.write_text("base: 10\ncap: 30\nbonuses:\n  has_linkedin: 25\n")
    table = load_scoring_table(str(path))
    assert score({"has_linkedin": True}, table) == 30
    assert score({"is_main_street": True}, table) == 10


@pytest.mark.parametrize(
    "data",
    [
        {"base": 50, "cap": 100, "bonuses": {"has_linkedn": 10}},
        {"base": 50, "cap": 100, "bonuses": {"has_linkedin": "10"}},
        {"base": None, "cap": 100, "bonuses": {}},
    ],
)
def test_bad_scoring_table_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ScoringTable.from_mapping(data)


def person(**overrides: Any) -> ApolloPerson:
    base: dict[str, Any] = {
        "id": "p1",
        "title": "Office Manager",
        "seniority": "manager",
        "email": "sam@shop.com",
        "email_status": "guessed",
        "linkedin_url": None,
        "organization": {"annual_revenue": 20_000_000, "founded_year": 2024},
    }
    return ApolloPerson.model_validate({**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            {
                "score": 50,
                "revenue_tier": "established",
                "years_in_business": 2,
                "is_established": False,
            },
        ),
        (
            {
                "seniority": "owner",
                "email_status": "verified",
                "linkedin_url": "http://www.linkedin.com/in/sam",
                "organization": {"annual_revenue": 1_200_000, "founded_year": 2001},
            },
            {
                "score": 100,
                "revenue_tier": "main_street",
                "years_in_business": 25,
                "has_verified_email": True,
                "has_linkedin": True,
                "is_owner_or_c_level": True,
                "is_main_street": True,
                "is_established": True,
            },
        ),
        ({"email": None, "email_status": "verified"}, {"has_verified_email": False}),
        ({"linkedin_url": "  "}, {"has_linkedin": False, "score": 50}),
        (
            {"title": "President", "organization": None},
            {"score": 70, "revenue_tier": None, "years_in_business": None, "is_main_street": False},
        ),
    ],
)
def test_derive(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    fields = derive(person(**overrides), TODAY).as_dict()
    assert {k: fields[k] for k in expected} == expected


def test_derive_accepts_every_sandbox_person() -> None:
    details = [
        {"first_name": "Sam", "last_name": f"P{i}", "domain": f"s{i}.com"} for i in range(300)
    ]
    scores = set()
    for d in details:
        raw = lookup_person(d)
        if raw is not None:
            derived = derive(ApolloPerson.model_validate(raw), TODAY)
            assert 50 <= derived.score <= 100
            scores.add(derived.score)
    assert len(scores) >= 5
