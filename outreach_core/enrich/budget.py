"""Per-team monthly enrichment budget: reserve before a paid call, then commit (write the
cost ledger, in the caller's transaction with the enrichment result) or release.

Concurrency: ``reserve`` locks the team's ``team_budgets`` row (``SELECT ... FOR
UPDATE``), so reservations of one team are serialised across processes; under READ
COMMITTED each following statement sees what the previous lock holder committed. Spend
is month-to-date (UTC) ledger rows of the enrichment providers plus live reservations;
reservations left by a crashed run stop counting at ``expires_at``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session

__all__ = [
    "DEFAULT_TTL",
    "ENRICHMENT_PROVIDERS",
    "LedgerEntry",
    "Reservation",
    "SpendRow",
    "commit",
    "commit_by_id",
    "get_monthly_cap",
    "month_spend",
    "release",
    "reserve",
    "set_monthly_cap",
]

# Ledger providers whose spend counts against `enrichment_monthly_cap`.
ENRICHMENT_PROVIDERS: tuple[str, ...] = ("apollo",)
DEFAULT_TTL = timedelta(minutes=15)
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Reservation:
    team_id: uuid.UUID
    id: uuid.UUID
    provider: str
    amount: Decimal
    expires_at: datetime


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

    @property
    def total(self) -> Decimal:
        return self.amount if self.amount is not None else self.units * self.unit_cost


@dataclass(frozen=True)
class SpendRow:
    provider: str
    operation: str
    units: int
    amount: Decimal


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """UTC [start, end) of a 'YYYY-MM' period."""
    m = _PERIOD.match(period)
    if m is None:
        raise ValueError("period must be YYYY-MM")
    return _month_bounds(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC))


def _amount(value: Decimal | int | str) -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError("amount must be a non-negative number")
    return amount


def reserve(
    team_id: uuid.UUID,
    amount: Decimal | int | str,
    *,
    provider: str = "apollo",
    ttl: timedelta = DEFAULT_TTL,
    engine: Engine | None = None,
) -> Reservation | None:
    """Set ``amount`` aside for a paid call; None when it would exceed the monthly cap."""
    amount = _amount(amount)
    with tenant_session(team_id, engine) as s:
        cap = s.scalar(
            text("SELECT enrichment_monthly_cap FROM team_budgets WHERE team_id = :t FOR UPDATE"),
            {"t": team_id},
        )
        now = s.scalar(text("SELECT now()"))
        if cap is not None:
            start, end = _month_bounds(now)
            # One statement, so one snapshot: a concurrent commit() swaps a reservation
            # for its ledger row atomically, and two separate reads could see neither.
            spoken_for = s.scalar(
                text(
                    "SELECT (SELECT coalesce(sum(amount), 0) FROM cost_ledger WHERE team_id = :t "
                    "AND provider = ANY(:p) AND created_at >= :start AND created_at < :end) + "
                    "(SELECT coalesce(sum(amount), 0) FROM budget_reservations "
                    "WHERE team_id = :t AND expires_at > now())"
                ),
                {"t": team_id, "p": list(ENRICHMENT_PROVIDERS), "start": start, "end": end},
            )
            if spoken_for + amount > cap:
                return None
            # Under the lock anyway: drop reservations that no longer count. Skipping those
            # another transaction is deleting (a run booking a dead run's calls, several
            # in one transaction) means this never waits on them in some other order.
            s.execute(
                text(
                    "DELETE FROM budget_reservations WHERE team_id = :t AND id IN ("
                    "SELECT id FROM budget_reservations WHERE team_id = :t "
                    "AND expires_at <= now() FOR UPDATE SKIP LOCKED)"
                ),
                {"t": team_id},
            )
        reservation = Reservation(
            team_id=team_id,
            id=uuid.uuid4(),
            provider=provider,
            amount=amount,
            expires_at=now + ttl,
        )
        s.execute(
            text(
                "INSERT INTO budget_reservations (team_id, id, provider, amount, expires_at) "
                "VALUES (:t, :id, :p, :a, :e)"
            ),
            {"t": team_id, "id": reservation.id, "p": provider, "a": amount, "e": now + ttl},
        )
    return reservation


def commit(session: Session, reservation: Reservation, entries: Sequence[LedgerEntry]) -> Decimal:
    """Replace ``reservation`` by the ledger rows of what was really spent, in the caller's
    transaction (a tenant session for the reservation's team, which also writes the
    enrichment result). Returns the total recorded."""
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
        session.execute(
            text("DELETE FROM budget_reservations WHERE team_id = :t AND id = :id"),
            {"t": team_id, "id": reservation_id},
        )
    total = Decimal(0)
    if entries:
        rows = [
            {
                "t": team_id,
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
                "INSERT INTO cost_ledger (team_id, provider, operation, units, unit_cost, "
                "amount, upload_id, campaign_id, reference) VALUES (:t, :provider, "
                ":operation, :units, :unit_cost, :amount, :upload_id, :campaign_id, :reference)"
            ),
            rows,
        )
        total = sum((r["amount"] for r in rows), Decimal(0))
    return total


def release(reservation: Reservation, *, engine: Engine | None = None) -> None:
    """Give back a reservation whose call was not made (or certainly not billed)."""
    with tenant_session(reservation.team_id, engine) as s:
        s.execute(
            text("DELETE FROM budget_reservations WHERE team_id = :t AND id = :id"),
            {"t": reservation.team_id, "id": reservation.id},
        )


def set_monthly_cap(
    team_id: uuid.UUID, amount: Decimal | int | str | None, *, engine: Engine | None = None
) -> None:
    """Set the team's monthly enrichment cap; None removes it."""
    cap = None if amount is None else _amount(amount)
    with tenant_session(team_id, engine) as s:
        s.execute(
            text(
                "INSERT INTO team_budgets (team_id, enrichment_monthly_cap) VALUES (:t, :c) "
                "ON CONFLICT (team_id) DO UPDATE SET "
                "enrichment_monthly_cap = EXCLUDED.enrichment_monthly_cap, updated_at = now()"
            ),
            {"t": team_id, "c": cap},
        )


def get_monthly_cap(team_id: uuid.UUID, *, engine: Engine | None = None) -> Decimal | None:
    with tenant_session(team_id, engine) as s:
        return s.scalar(
            text("SELECT enrichment_monthly_cap FROM team_budgets WHERE team_id = :t"),
            {"t": team_id},
        )


def month_spend(team_id: uuid.UUID, period: str, *, engine: Engine | None = None) -> list[SpendRow]:
    """The team's ledger for a 'YYYY-MM' (UTC) period, by provider and operation."""
    start, end = period_bounds(period)
    with tenant_session(team_id, engine) as s:
        rows = s.execute(
            text(
                "SELECT provider, operation, sum(units)::bigint AS units, sum(amount) AS amount "
                "FROM cost_ledger WHERE team_id = :t AND created_at >= :start "
                "AND created_at < :end GROUP BY provider, operation ORDER BY provider, operation"
            ),
            {"t": team_id, "start": start, "end": end},
        ).all()
    return [SpendRow(r.provider, r.operation, int(r.units), Decimal(r.amount)) for r in rows]
