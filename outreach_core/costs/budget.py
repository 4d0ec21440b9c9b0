"""Budgets for every cost category: reserve a paid call's worst case first, then commit
(write the ledger row of what it really cost, in the caller's transaction with the call's
result) or release.

A reservation must fit under three limits at once: the team's monthly cap for its category,
the team's monthly cap on the total, and, when it names a campaign, the campaign's budget.
Spend is month-to-date (UTC) ledger rows plus live reservations (a campaign's budget counts
all of its spend). Reservations a crashed run left stop counting at ``expires_at``.

Concurrency: a reservation locks the team's ``team_budgets`` row (``SELECT ... FOR
UPDATE``), so reservations of one team are serialised across processes; under READ
COMMITTED each following statement sees what the previous lock holder committed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CostCategory

__all__ = [
    "DEFAULT_TTL",
    "LedgerEntry",
    "Limit",
    "Reservation",
    "Room",
    "SpendRow",
    "campaign_subject",
    "cap_column",
    "commit",
    "commit_by_id",
    "get_monthly_cap",
    "hold",
    "month_spend",
    "release",
    "release_ids",
    "reserve",
    "room",
    "set_monthly_cap",
    "team_subject",
]

DEFAULT_TTL = timedelta(minutes=15)
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def cap_column(category: CostCategory | None) -> str:
    """The ``team_budgets`` column of a category's cap; None is the cap on the total."""
    return f"{category or 'total'}_monthly_cap"


@dataclass(frozen=True)
class Reservation:
    team_id: uuid.UUID
    id: uuid.UUID
    category: CostCategory
    provider: str
    amount: Decimal
    expires_at: datetime
    campaign_id: uuid.UUID | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One cost_ledger row; ``amount`` defaults to ``units * unit_cost``."""

    provider: str
    operation: str
    units: int
    unit_cost: Decimal
    amount: Decimal | None = None
    upload_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    reference: str | None = None
    category: CostCategory = field(kw_only=True)

    @property
    def total(self) -> Decimal:
        return self.amount if self.amount is not None else self.units * self.unit_cost


@dataclass(frozen=True)
class SpendRow:
    category: CostCategory
    provider: str
    operation: str
    units: int
    amount: Decimal


@dataclass(frozen=True)
class Limit:
    """One cap and what counts against it; `subject` names it in `budget_alerts`."""

    subject: str
    cap: Decimal
    used: Decimal
    campaign_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Room:
    """What may still be reserved, and which limit binds (None: no limit applies)."""

    left: Decimal | None
    limit: str | None
    binding: Limit | None = None
    # Of what the binding limit counts, the live reservations: worst cases of calls whose
    # price is not known yet, which free room when it is.
    held: Decimal = Decimal(0)

    def fits(self, amount: Decimal) -> bool:
        return self.left is None or amount <= self.left


def team_subject(category: CostCategory | None, when: datetime) -> str:
    """A team's monthly cap (None: on the total) in the month of `when` (UTC)."""
    return f"team:{category or 'total'}:{when.astimezone(UTC):%Y-%m}"


def campaign_subject(campaign_id: uuid.UUID) -> str:
    return f"campaign:{campaign_id}"


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """UTC [start, end) of a 'YYYY-MM' period."""
    m = _PERIOD.match(period)
    if m is None:
        raise ValueError("period must be YYYY-MM")
    return month_bounds(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC))


def _amount(value: Decimal | int | str) -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError("amount must be a non-negative number")
    return amount


# One statement, so one snapshot: a concurrent commit swaps a reservation for its ledger
# row atomically, and separate reads could see neither (or both).
_SPOKEN_FOR = text(
    "SELECT "
    "(SELECT coalesce(sum(amount), 0) FROM cost_ledger WHERE team_id = :t "
    " AND created_at >= :start AND created_at < :end AND category = :c) AS category_spent, "
    "(SELECT coalesce(sum(amount), 0) FROM budget_reservations WHERE team_id = :t "
    " AND expires_at > now() AND category = :c) AS category_held, "
    "(SELECT coalesce(sum(amount), 0) FROM cost_ledger WHERE team_id = :t "
    " AND created_at >= :start AND created_at < :end) AS total_spent, "
    "(SELECT coalesce(sum(amount), 0) FROM budget_reservations WHERE team_id = :t "
    " AND expires_at > now()) AS total_held, "
    "(SELECT coalesce(sum(amount), 0) FROM cost_ledger WHERE team_id = :t "
    " AND campaign_id = :campaign) AS campaign_spent, "
    "(SELECT coalesce(sum(amount), 0) FROM budget_reservations WHERE team_id = :t "
    " AND expires_at > now() AND campaign_id = :campaign) AS campaign_held"
)


def room(
    session: Session,
    team_id: uuid.UUID,
    category: CostCategory,
    *,
    campaign_id: uuid.UUID | None = None,
    campaign_budget: Decimal | None = None,
) -> Room:
    """What the team (and the campaign) may still reserve in ``category``, with the team's
    budget row locked until the caller's transaction ends (so reserve within it)."""
    caps = session.execute(
        text(
            f"SELECT {cap_column(category)} AS category_cap, total_monthly_cap AS total_cap "
            "FROM team_budgets WHERE team_id = :t FOR UPDATE"
        ),
        {"t": team_id},
    ).one_or_none()
    category_cap = caps.category_cap if caps else None
    total_cap = caps.total_cap if caps else None
    if category_cap is None and total_cap is None and campaign_budget is None:
        return Room(None, None)
    now = session.scalar(text("SELECT now()"))
    start, end = month_bounds(now)
    spent = session.execute(
        _SPOKEN_FOR,
        {"t": team_id, "c": str(category), "start": start, "end": end, "campaign": campaign_id},
    ).one()
    limits = [
        (
            category_cap,
            spent.category_spent,
            spent.category_held,
            f"the team's monthly {category} budget",
            team_subject(category, now),
        ),
        (
            total_cap,
            spent.total_spent,
            spent.total_held,
            "the team's monthly budget",
            team_subject(None, now),
        ),
        (
            campaign_budget,
            spent.campaign_spent,
            spent.campaign_held,
            "the campaign's budget",
            campaign_subject(campaign_id) if campaign_id else None,
        ),
    ]
    best = Room(None, None)
    for cap, spent_part, held, name, subject in limits:
        if cap is None:
            continue
        used = Decimal(spent_part) + Decimal(held)
        left = max(Decimal(cap) - used, Decimal(0))
        if best.left is None or left < best.left:
            binding = None
            if subject is not None:
                binding = Limit(subject, Decimal(cap), used, campaign_id)
            best = Room(left, f"{name} of ${Decimal(cap):.2f}", binding, Decimal(held))
    return best


_HOLD = text(
    "INSERT INTO budget_reservations "
    "(team_id, id, category, provider, amount, campaign_id, expires_at) "
    "SELECT :t, r.id, :c, :p, r.amount, :campaign, :e "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:amounts AS numeric[])) AS r(id, amount)"
)


def hold(
    session: Session,
    team_id: uuid.UUID,
    amounts: Sequence[Decimal],
    *,
    category: CostCategory,
    provider: str,
    campaign_id: uuid.UUID | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> list[Reservation]:
    """Write reservations the caller checked against ``room`` in this transaction."""
    if not amounts:
        return []
    now = session.scalar(text("SELECT now()"))
    held = [
        Reservation(team_id, uuid.uuid4(), category, provider, _amount(a), now + ttl, campaign_id)
        for a in amounts
    ]
    # One statement for the whole batch (the send engine holds 50 at a time): the rows'
    # own values travel as two arrays, not as one parameter set a row.
    session.execute(
        _HOLD,
        {
            "t": team_id,
            "ids": [r.id for r in held],
            "amounts": [r.amount for r in held],
            "c": str(category),
            "p": provider,
            "campaign": campaign_id,
            "e": now + ttl,
        },
    )
    return held


def reserve(
    team_id: uuid.UUID,
    amount: Decimal | int | str,
    *,
    category: CostCategory,
    provider: str,
    ttl: timedelta = DEFAULT_TTL,
    engine: Engine | None = None,
) -> Reservation | None:
    """Set ``amount`` aside for a paid call in its own transaction; None when it would
    exceed a cap."""
    amount = _amount(amount)
    with tenant_session(team_id, engine) as s:
        if not room(s, team_id, category).fits(amount):
            return None
        # Under the lock anyway: drop reservations that no longer count. Skipping those
        # another transaction is deleting (a run booking a dead run's calls, several in
        # one transaction) means this never waits on them in some other order.
        s.execute(
            text(
                "DELETE FROM budget_reservations WHERE team_id = :t AND id IN ("
                "SELECT id FROM budget_reservations WHERE team_id = :t "
                "AND expires_at <= now() FOR UPDATE SKIP LOCKED)"
            ),
            {"t": team_id},
        )
        (reservation,) = hold(s, team_id, [amount], category=category, provider=provider, ttl=ttl)
    return reservation


def commit(session: Session, reservation: Reservation, entries: Sequence[LedgerEntry]) -> Decimal:
    """Replace ``reservation`` by the ledger rows of what was really spent, in the caller's
    transaction (a tenant session for the reservation's team, which also writes the call's
    result). Returns the total recorded."""
    return commit_by_id(session, reservation.team_id, reservation.id, entries)


def commit_by_id(
    session: Session,
    team_id: uuid.UUID,
    reservation_id: uuid.UUID | None,
    entries: Sequence[LedgerEntry],
) -> Decimal:
    """``commit`` for a reservation known only by its id (one a dead run left, which may
    have expired already, or none)."""
    if reservation_id is not None:
        release_ids(session, team_id, [reservation_id])
    total = Decimal(0)
    if entries:
        rows = [
            {
                "t": team_id,
                "category": str(e.category),
                "provider": e.provider,
                "operation": e.operation,
                "units": e.units,
                "unit_cost": e.unit_cost,
                "amount": _amount(e.total),
                "upload_id": e.upload_id,
                "campaign_id": e.campaign_id,
                "reference": e.reference,
            }
            for e in entries
        ]
        session.execute(
            text(
                "INSERT INTO cost_ledger (team_id, category, provider, operation, units, "
                "unit_cost, amount, upload_id, campaign_id, reference) VALUES (:t, :category, "
                ":provider, :operation, :units, :unit_cost, :amount, :upload_id, "
                ":campaign_id, :reference)"
            ),
            rows,
        )
        total = sum((r["amount"] for r in rows), Decimal(0))
        # Late import: alerts builds on this module. Spend grows here and only here, so
        # every category (enrichment too) is checked against its thresholds.
        from outreach_core.costs.alerts import check_spend

        check_spend(session, team_id, entries)
    return total


def release_ids(session: Session, team_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
    """Give back reservations in the caller's transaction."""
    if ids:
        session.execute(
            text("DELETE FROM budget_reservations WHERE team_id = :t AND id = ANY(:ids)"),
            {"t": team_id, "ids": list(ids)},
        )


def release(reservation: Reservation, *, engine: Engine | None = None) -> None:
    """Give back a reservation whose call was not made (or certainly not billed)."""
    with tenant_session(reservation.team_id, engine) as s:
        release_ids(s, reservation.team_id, [reservation.id])


def set_monthly_cap(
    team_id: uuid.UUID,
    category: CostCategory | None,
    amount: Decimal | int | str | None,
    *,
    engine: Engine | None = None,
) -> None:
    """Set the team's monthly cap for ``category`` (None: on the total); None removes it."""
    cap = None if amount is None else _amount(amount)
    column = cap_column(category)
    with tenant_session(team_id, engine) as s:
        s.execute(
            text(
                f"INSERT INTO team_budgets (team_id, {column}) VALUES (:t, :c) "
                f"ON CONFLICT (team_id) DO UPDATE SET {column} = EXCLUDED.{column}, "
                "updated_at = now()"
            ),
            {"t": team_id, "c": cap},
        )


def get_monthly_caps(
    team_id: uuid.UUID, *, engine: Engine | None = None
) -> dict[CostCategory | None, Decimal | None]:
    """Every cap of the team, by category (None: the total)."""
    keys: list[CostCategory | None] = [*CostCategory, None]
    with tenant_session(team_id, engine) as s:
        row = s.execute(
            text(
                f"SELECT {', '.join(cap_column(k) for k in keys)} "
                "FROM team_budgets WHERE team_id = :t"
            ),
            {"t": team_id},
        ).one_or_none()
    return {k: (row[i] if row else None) for i, k in enumerate(keys)}


def get_monthly_cap(
    team_id: uuid.UUID, category: CostCategory | None, *, engine: Engine | None = None
) -> Decimal | None:
    return get_monthly_caps(team_id, engine=engine)[category]


def month_spend(team_id: uuid.UUID, period: str, *, engine: Engine | None = None) -> list[SpendRow]:
    """The team's ledger for a 'YYYY-MM' (UTC) period, by category, provider and operation."""
    start, end = period_bounds(period)
    with tenant_session(team_id, engine) as s:
        rows = s.execute(
            text(
                "SELECT category, provider, operation, sum(units)::bigint AS units, "
                "sum(amount) AS amount FROM cost_ledger WHERE team_id = :t "
                "AND created_at >= :start AND created_at < :end "
                "GROUP BY category, provider, operation ORDER BY category, provider, operation"
            ),
            {"t": team_id, "start": start, "end": end},
        ).all()
    return [
        SpendRow(CostCategory(r.category), r.provider, r.operation, int(r.units), Decimal(r.amount))
        for r in rows
    ]
