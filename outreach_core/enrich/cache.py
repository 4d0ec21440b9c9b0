"""Dedup cache of paid lookups, keyed per team by ``MatchInput.identity_key()``.

``claim`` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``: the unique
key decides who pays, never a check-then-insert. A run that gets ``CLAIMED`` calls the
provider and then ``store``s the answer (in the same transaction as the ledger rows);
others get ``CACHED`` (a settled answer: no call, no charge) or ``BUSY`` (someone else holds
a fresh claim: come back later).

Claim in a short transaction and commit it before calling the provider: the claimed row
stays locked until that transaction ends, and other runs' claims wait on it meanwhile.

Lock order: every transaction locks entries in identity-key order (byte order, as Python
sorts). A claim locks its row even when it does not take it over, so claiming a batch
key by key in sorted order does that; a statement that writes several entries first
locks them with an ordered ``SELECT ... FOR UPDATE``, because an UPDATE or DELETE locks
rows in whatever order its plan visits them. Two transactions taking the same rows in
different orders deadlock.

Life of an entry: ``pending`` (claimed) -> ``sent`` (``mark_sent``: the request is about
to leave, the budget reservation is recorded) -> ``matched`` / ``no_match`` /
``quarantined`` (``store``), or back to nothing (``release``: certainly not billed). A
``sent`` entry whose run died is ``in_doubt`` (``settle_in_doubt``): the provider may have
billed it, so it is never bought again automatically before it expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from outreach_core.db.states import CACHE_IN_FLIGHT, CACHE_SETTLED, CacheStatus, sql_in
from outreach_core.enrich.defaults import CACHE_WINDOW_DAYS, CLAIM_STALE_AFTER

__all__ = [
    "ClaimOutcome",
    "ClaimResult",
    "InDoubt",
    "claim",
    "mark_sent",
    "release",
    "settle_in_doubt",
    "store",
]

_PENDING = f"'{CacheStatus.PENDING}'"
_SENT = f"'{CacheStatus.SENT}'"


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # call the provider, then store()
    CACHED = "cached"  # settled answer below: no call, no charge
    BUSY = "busy"  # a run holds a fresh claim (or has a request in flight)


@dataclass(frozen=True)
class ClaimResult:
    outcome: ClaimOutcome
    status: CacheStatus | None = None  # one of CACHE_SETTLED when CACHED
    apollo_person_id: str | None = None
    result: dict[str, Any] | None = None
    credits: int = 0
    claimed_by: str | None = None


_CLAIM = text(f"""
    INSERT INTO enrichment_cache AS c
        (team_id, identity_key, status, credits, claimed_by, claimed_at, expires_at)
    VALUES (:t, :k, {_PENDING}, 0, :run, now(), now() + :window)
    ON CONFLICT (team_id, identity_key) DO UPDATE
    SET status = {_PENDING}, apollo_person_id = NULL, result = NULL, credits = 0,
        claimed_by = EXCLUDED.claimed_by, claimed_at = now(), expires_at = EXCLUDED.expires_at
    WHERE c.expires_at <= now() OR (c.status = {_PENDING} AND c.claimed_at < now() - :stale)
    RETURNING c.identity_key
""")
_READ = text("""
    SELECT status, apollo_person_id, result, credits, claimed_by FROM enrichment_cache
    WHERE team_id = :t AND identity_key = :k
""")
# COLLATE "C": byte order, the order Python's sorted() gives the runner's batches.
_LOCK_KEYS = text("""
    SELECT identity_key FROM enrichment_cache
    WHERE team_id = :t AND identity_key = ANY(:keys)
    ORDER BY identity_key COLLATE "C" FOR UPDATE
""")
_LOCK_STALE_SENT = text(f"""
    SELECT identity_key FROM enrichment_cache
    WHERE team_id = :t AND status = {_SENT} AND claimed_at < now() - :stale
    ORDER BY identity_key COLLATE "C" FOR UPDATE
""")
_IN_FLIGHT = sql_in("status", CACHE_IN_FLIGHT)


def _lock_in_key_order(session: Session, team_id: uuid.UUID, keys: Sequence[str]) -> None:
    """Lock the entries of ``keys`` in identity-key order (see the module docstring)."""
    session.execute(_LOCK_KEYS, {"t": team_id, "keys": list(keys)})


def claim(
    session: Session,
    team_id: uuid.UUID,
    identity_key: str,
    run_id: str,
    window_days: int = CACHE_WINDOW_DAYS,
    *,
    stale_after: timedelta = CLAIM_STALE_AFTER,
) -> ClaimResult:
    """Claim the right to pay for ``identity_key`` (``session``: a tenant session).

    Claimed when there is no entry, the entry expired, or a pending claim is stale (its
    run died before sending anything). A claim this run already holds is BUSY too: one
    run never buys the same identity twice in parallel. Claim several keys of one
    transaction in sorted order."""
    params = {
        "t": team_id,
        "k": identity_key,
        "run": run_id,
        "window": timedelta(days=window_days),
        "stale": stale_after,
    }
    if session.execute(_CLAIM, params).first() is not None:
        return ClaimResult(ClaimOutcome.CLAIMED, status=CacheStatus.PENDING, claimed_by=run_id)
    # ON CONFLICT waited for any concurrent claimer and locked the row; under READ
    # COMMITTED this read sees the committed state that made the WHERE false.
    row = session.execute(_READ, {"t": team_id, "k": identity_key}).one()
    status = CacheStatus(row.status)
    if status in CACHE_SETTLED:
        return ClaimResult(
            ClaimOutcome.CACHED,
            status=status,
            apollo_person_id=row.apollo_person_id,
            result=row.result,
            credits=row.credits,
            claimed_by=row.claimed_by,
        )
    return ClaimResult(ClaimOutcome.BUSY, status=status, claimed_by=row.claimed_by)


_STORE = text("""
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


def store(
    session: Session,
    team_id: uuid.UUID,
    identity_key: str,
    status: CacheStatus,
    person_id: str | None,
    result: dict[str, Any] | None,
    credits: int,
    window_days: int = CACHE_WINDOW_DAYS,
    *,
    run_id: str | None = None,
) -> None:
    """Record the provider's answer; it is served as CACHED for ``window_days``. Store
    several keys of one transaction in sorted order."""
    if status not in CACHE_SETTLED:
        raise ValueError(f"status must be one of {[str(s) for s in CACHE_SETTLED]}")
    session.execute(
        _STORE,
        {
            "t": team_id,
            "k": identity_key,
            "status": CacheStatus(status),
            "pid": person_id,
            "result": result,
            "credits": credits,
            "run": run_id,
            "window": timedelta(days=window_days),
        },
    )


_MARK_SENT = text(f"""
    UPDATE enrichment_cache SET status = {_SENT}, reservation_id = :r, credits = :c,
        claimed_at = now()
    WHERE team_id = :t AND identity_key = ANY(:keys) AND claimed_by = :run AND {_IN_FLIGHT}
""")


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
    _lock_in_key_order(session, team_id, identity_keys)
    result = session.execute(
        _MARK_SENT,
        {
            "t": team_id,
            "keys": identity_keys,
            "run": run_id,
            "r": reservation_id,
            "c": credits_each,
        },
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


_RELEASE = text(f"""
    DELETE FROM enrichment_cache
    WHERE team_id = :t AND identity_key = ANY(:keys) AND claimed_by = :run AND {_IN_FLIGHT}
""")


def release(session: Session, team_id: uuid.UUID, identity_keys: list[str], run_id: str) -> None:
    """Give up this run's claims on keys that were certainly not billed."""
    _lock_in_key_order(session, team_id, identity_keys)
    session.execute(_RELEASE, {"t": team_id, "keys": identity_keys, "run": run_id})


@dataclass(frozen=True)
class InDoubt:
    identity_key: str
    credits: int
    reservation_id: uuid.UUID | None


_SETTLE_IN_DOUBT = text(f"""
    UPDATE enrichment_cache SET status = '{CacheStatus.IN_DOUBT}', claimed_at = now()
    WHERE team_id = :t AND identity_key = ANY(:keys)
      AND status = {_SENT} AND claimed_at < now() - :stale
    RETURNING identity_key, credits, reservation_id
""")


def settle_in_doubt(
    session: Session, team_id: uuid.UUID, stale_after: timedelta = CLAIM_STALE_AFTER
) -> list[InDoubt]:
    """Turn requests whose run died while they were in flight into ``in_doubt`` entries
    (in identity-key order; they stay locked until ``session`` commits)."""
    params = {"t": team_id, "stale": stale_after}
    keys = list(session.scalars(_LOCK_STALE_SENT, params))
    if not keys:
        return []
    rows = session.execute(_SETTLE_IN_DOUBT, {**params, "keys": keys}).all()
    found = {r.identity_key: InDoubt(r.identity_key, r.credits, r.reservation_id) for r in rows}
    return [found[k] for k in keys if k in found]
