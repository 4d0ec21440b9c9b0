"""Monthly enrichment budget: reservations under a row lock never overspend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text

from outreach_core.costs import budget
from outreach_core.costs.budget import LedgerEntry, SpendRow
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CostCategory

# What enrichment reserves under.
ENRICH = {"category": CostCategory.ENRICHMENT, "provider": "apollo"}


def _ledger_sum(team_id) -> Decimal:  # type: ignore[no-untyped-def]
    with tenant_session(team_id) as s:
        return s.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM cost_ledger WHERE team_id = :t"),
            {"t": team_id},
        )


def _entry(units: int = 1) -> LedgerEntry:
    return LedgerEntry(
        "apollo", "people_match", units, Decimal("1"), category=CostCategory.ENRICHMENT
    )


def _period() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def test_concurrent_reservations_never_exceed_the_cap(team) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, 100)
    barrier = threading.Barrier(20)

    def attempt(i: int) -> bool:
        if i < 20:
            barrier.wait()
        reservation = budget.reserve(team.team_id, 1, **ENRICH)
        if reservation is None:
            return False
        with tenant_session(team.team_id) as s:
            budget.commit(s, reservation, [_entry()])
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(150)))

    assert outcomes.count(True) == 100
    assert _ledger_sum(team.team_id) == Decimal(100)
    with tenant_session(team.team_id) as s:
        assert s.scalar(text("SELECT count(*) FROM budget_reservations")) == 0
    assert budget.month_spend(team.team_id, _period()) == [
        SpendRow(CostCategory.ENRICHMENT, "apollo", "people_match", 100, Decimal("100.0000"))
    ]


def test_reservations_count_until_released_or_expired(team) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, Decimal("10.00"))
    held = budget.reserve(team.team_id, Decimal("9.5"), **ENRICH)
    assert held is not None
    assert budget.reserve(team.team_id, 1, **ENRICH) is None
    budget.release(held)
    crashed = budget.reserve(team.team_id, 10, **ENRICH)
    assert crashed is not None
    assert budget.reserve(team.team_id, Decimal("0.01"), **ENRICH) is None
    # The run holding `crashed` died; once it expires the money is available again.
    with tenant_session(team.team_id) as s:
        s.execute(text("UPDATE budget_reservations SET expires_at = now() - interval '1 second'"))
    late = budget.reserve(team.team_id, 10, **ENRICH)
    assert late is not None
    with tenant_session(team.team_id) as s:
        # The expired one was purged under the lock.
        assert s.scalar(text("SELECT count(*) FROM budget_reservations")) == 1


def test_commit_records_actual_spend_and_cap_can_be_removed(team) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, 10)
    reservation = budget.reserve(team.team_id, 9, **ENRICH)  # a match with a phone reveal
    assert reservation is not None
    with tenant_session(team.team_id) as s:
        total = budget.commit(
            s,
            reservation,
            [
                _entry(1),
                LedgerEntry(
                    "apollo",
                    "phone_reveal",
                    0,
                    Decimal("1"),
                    reference="x",
                    category=CostCategory.ENRICHMENT,
                ),
            ],
        )
    assert total == Decimal(1)
    assert budget.reserve(team.team_id, 9, **ENRICH) is not None
    assert budget.reserve(team.team_id, 1, **ENRICH) is None
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, None)
    assert budget.get_monthly_cap(team.team_id, CostCategory.ENRICHMENT) is None
    assert budget.reserve(team.team_id, 1000, **ENRICH) is not None


def test_other_teams_spend_never_counts_and_is_invisible(team, other_team) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, 5)
    for _ in range(3):
        r = budget.reserve(other_team.team_id, 10, **ENRICH)  # no cap for the other team
        assert r is not None
        with tenant_session(other_team.team_id) as s:
            budget.commit(
                s,
                r,
                [
                    LedgerEntry(
                        "apollo", "people_match", 10, Decimal("1"), category=CostCategory.ENRICHMENT
                    )
                ],
            )
    assert budget.reserve(other_team.team_id, 1000, **ENRICH) is not None  # left reserved

    for _ in range(5):
        assert budget.reserve(team.team_id, 1, **ENRICH) is not None
    assert budget.reserve(team.team_id, 1, **ENRICH) is None
    assert budget.month_spend(team.team_id, _period()) == []
    with tenant_session(team.team_id) as s:
        for table in ("cost_ledger", "budget_reservations"):
            seen = s.scalar(
                text(f"SELECT count(*) FROM {table} WHERE team_id = :t"),
                {"t": other_team.team_id},
            )
            assert seen == 0, table
    assert budget.month_spend(other_team.team_id, _period())[0].amount == Decimal(30)


def test_month_spend_filters_by_period(team) -> None:
    r = budget.reserve(team.team_id, 2, **ENRICH)
    assert r is not None
    with tenant_session(team.team_id) as s:
        budget.commit(s, r, [_entry(2)])
    assert budget.month_spend(team.team_id, "2001-01") == []
    assert budget.month_spend(team.team_id, _period())[0].units == 2
    try:
        budget.month_spend(team.team_id, "2026-13")
    except ValueError:
        pass
    else:
        raise AssertionError("bad period accepted")
