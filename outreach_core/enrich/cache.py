"""Dedup cache of paid lookups, keyed per team by ``MatchInput.identity_key()``.

``claim`` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``: the unique
key decides who pays, never a check-then-insert. A run that gets ``CLAIMED`` calls the
provider and then ``store``s the answer (in the same transaction as the ledger rows);
others get ``CACHED`` (a settled answer: no call, no charge) or ``BUSY`` (someone else holds
a fresh claim: come back later).

Claim in a short transaction and commit it before calling the provider: the claimed row
stays locked until that transaction ends, and other runs' claims wait on it meanwhile.

Life of an entry: ``pending`` (claimed) -> ``sent`` (``mark_sent``: the request is about
to leave, the budget reservation is recorded) -> ``matched`` / ``no_match`` /
``quarantined`` (``store``), or back to nothing (``release``: certainly not billed). A
``sent`` entry whose run died is ``in_doubt`` (``settle_in_doubt``): the provider may have
billed it, so it is never bought again automatically before it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

__all__ = [
    "DEFAULT_STALE_AFTER",
    "DEFAULT_WINDOW_DAYS",
    "ClaimOutcome",
    "ClaimResult",
    "claim",
    "store",
]

DEFAULT_WINDOW_DAYS = 30
# A pending claim older than this belongs to a run that died; another run may take over.
DEFAULT_STALE_AFTER = timedelta(minutes=10)
SETTLED = ("matched", "no_match", "quarantined", "in_doubt")


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # call the provider, then store()
    CACHED = "cached"  # settled answer below: no call, no charge
    BUSY = "busy"  # a run holds a fresh claim (or has a request in flight)


@dataclass(frozen=True)
class ClaimResult:
    outcome: ClaimOutcome
    status: str | None = None  # one of SETTLED when CACHED
    apollo_person_id: str | None = None
    result: dict[str, Any] | None = None
    credits: int = 0
    claimed_by: str | None = None


_CLAIM = text("""
    INSERT INTO enrichment_cache AS c
        (team_id, identity_key, status, credits, claimed_by, claimed_at, expires_at)
    VALUES (:t, :k, 'pending', 0, :run, now(), now() + :window)
    ON CONFLICT (team_id, identity_key) DO UPDATE
    SET status = 'pending', apollo_person_id = NULL, result = NULL, credits = 0,
        claimed_by = EXCLUDED.claimed_by, claimed_at = now(), expires_at = EXCLUDED.expires_at
    WHERE c.expires_at <= now() OR (c.status = 'pending' AND c.claimed_at < now() - :stale)
    RETURNING c.identity_key
""")
_READ = text("""
    SELECT status, apollo_person_id, result, credits, claimed_by FROM enrichment_cache
    WHERE team_id = :t AND identity_key = :k
""")


def claim(
    session: Session,
    team_id: uuid.UUID,
    identity_key: str,
    run_id: str,
    window_days: int = DEFAULT_WINDOW_DAYS,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> ClaimResult:
    """Claim the right to pay for ``identity_key`` (``session``: a tenant session).

    Claimed when there is no entry, the entry expired, or a pending claim is stale (its
    run died before sending anything). A claim this run already holds is BUSY too: one
    run never buys the same identity twice in parallel."""
    params = {
        "t": team_id,
        "k": identity_key,
        "run": run_id,
        "window": timedelta(days=window_days),
        "stale": stale_after,
    }
    if session.execute(_CLAIM, params).first() is not None:
        return ClaimResult(ClaimOutcome.CLAIMED, status="pending", claimed_by=run_id)
    # ON CONFLICT waited for any concurrent claimer and locked the row; under READ
    # COMMITTED this read sees the committed state that made the WHERE false.
    row = session.execute(_READ, {"t": team_id, "k": identity_key}).one()
    if row.status in SETTLED:
        return ClaimResult(
            ClaimOutcome.CACHED,
            status=row.status,
            apollo_person_id=row.apollo_person_id,
            result=row.result,
            credits=row.credits,
            claimed_by=row.claimed_by,
        )
    return ClaimResult(ClaimOutcome.BUSY, status=row.status, claimed_by=row.claimed_by)


def store(
    session: Session,
    team_id: uuid.UUID,
    identity_key: str,
    status: str,
    person_id: str | None,
    result: dict[str, Any] | None,
    credits: int,
    window_days: int = DEFAULT_WINDOW_DAYS,
    *,
    run_id: str | None = None,
) -> None:
    """Record the provider's answer; it is served as CACHED for ``window_days``."""
    if status not in SETTLED:
        raise ValueError(f"status must be one of {SETTLED}")
    stmt = text("""
        INSERT INTO enrichment_cache AS c (team_id, identity_key, status, apollo_person_id,
            result, credits, claimed_by, claimed_at, expires_at)
        VALUES (:t, :k, :status, :pid, :result, :credits, :run, now(), now() + :window)
        ON CONFLICT (team_id, identity_key) DO UPDATE
        SET status = EXCLUDED.status, apollo_person_id = EXCLUDED.apollo_person_id,
            result = EXCLUDED.result, credits = EXCLUDED.credits,
            claimed_by = coalesce(EXCLUDED.claimed_by, c.claimed_by),
            expires_at = EXCLUDED.expires_at
        WHERE EXCLUDED.claimed_by IS NULL OR c.claimed_by = EXCLUDED.claimed_by
    """).bindparams(bindparam("result", type_=JSONB))
    session.execute(
        stmt,
        {
            "t": team_id,
            "k": identity_key,
            "status": status,
            "pid": person_id,
            "result": result,
            "credits": credits,
            "run": run_id,
            "window": timedelta(days=window_days),
        },
    )


def mark_sent(
    session: Session,
    team_id: uuid.UUID,
    identity_keys: list[str],
    run_id: str,
    reservation_id: uuid.UUID,
    credits_each: int,
) -> int:
    """The request for these claims is about to leave: from now on a crash leaves them
    in doubt. ``credits_each`` is the most the provider can bill for one of them. Returns
    how many claims this run still held (fewer: another run took some over, do not send)."""
    result = session.execute(
        text("""
            UPDATE enrichment_cache SET status = 'sent', reservation_id = :r, credits = :c,
                claimed_at = now()
            WHERE team_id = :t AND identity_key = ANY(:keys) AND claimed_by = :run
              AND status IN ('pending', 'sent')
        """),
        {
            "t": team_id,
            "keys": identity_keys,
            "run": run_id,
            "r": reservation_id,
            "c": credits_each,
        },
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


def release(session: Session, team_id: uuid.UUID, identity_keys: list[str], run_id: str) -> None:
    """Give up this run's claims on keys that were certainly not billed."""
    session.execute(
        text("""
            DELETE FROM enrichment_cache
            WHERE team_id = :t AND identity_key = ANY(:keys) AND claimed_by = :run
              AND status IN ('pending', 'sent')
        """),
        {"t": team_id, "keys": identity_keys, "run": run_id},
    )


@dataclass(frozen=True)
class InDoubt:
    identity_key: str
    credits: int
    reservation_id: uuid.UUID | None


def settle_in_doubt(
    session: Session, team_id: uuid.UUID, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> list[InDoubt]:
    """Turn requests whose run died while they were in flight into ``in_doubt`` entries."""
    rows = session.execute(
        text("""
            UPDATE enrichment_cache SET status = 'in_doubt', claimed_at = now()
            WHERE team_id = :t AND status = 'sent' AND claimed_at < now() - :stale
            RETURNING identity_key, credits, reservation_id
        """),
        {"t": team_id, "stale": stale_after},
    ).all()
    return [InDoubt(r.identity_key, r.credits, r.reservation_id) for r in rows]
