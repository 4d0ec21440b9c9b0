"""Enrichment dedup cache: the unique key decides who pays, never a check-then-insert."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.enrich.cache import (
    ClaimOutcome,
    claim,
    mark_sent,
    release,
    settle_in_doubt,
    store,
)


def _key() -> str:
    return uuid.uuid4().hex


def _claim(team_id: uuid.UUID, key: str, run: str) -> ClaimOutcome:
    with tenant_session(team_id) as s:
        return claim(s, team_id, key, run).outcome


def _race(team_id: uuid.UUID, key: str) -> list[ClaimOutcome]:
    barrier = threading.Barrier(2)
    outcomes: list[ClaimOutcome] = []

    def run(name: str) -> None:
        barrier.wait()
        outcomes.append(_claim(team_id, key, name))

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_two_concurrent_claims_only_one_pays(team) -> None:
    for _ in range(5):
        outcomes = _race(team.team_id, _key())
        assert sorted(outcomes) == [ClaimOutcome.BUSY, ClaimOutcome.CLAIMED]


def test_stored_answer_is_served_from_cache(team) -> None:
    key = _key()
    assert _claim(team.team_id, key, "run-a") is ClaimOutcome.CLAIMED
    with tenant_session(team.team_id) as s:
        store(s, team.team_id, key, "matched", "p-1", {"id": "p-1", "title": "CEO"}, 1)
    with tenant_session(team.team_id) as s:
        cached = claim(s, team.team_id, key, "run-b")
    assert cached.outcome is ClaimOutcome.CACHED
    assert cached.status == "matched"
    assert cached.apollo_person_id == "p-1"
    assert cached.result == {"id": "p-1", "title": "CEO"}
    assert cached.credits == 1

    nobody = _key()
    assert _claim(team.team_id, nobody, "run-a") is ClaimOutcome.CLAIMED
    with tenant_session(team.team_id) as s:
        store(s, team.team_id, nobody, "no_match", None, None, 0)
    with tenant_session(team.team_id) as s:
        again = claim(s, team.team_id, nobody, "run-c")
    assert (again.outcome, again.status) == (ClaimOutcome.CACHED, "no_match")


def test_expired_entry_can_be_claimed_again(team) -> None:
    key = _key()
    _claim(team.team_id, key, "run-a")
    with tenant_session(team.team_id) as s:
        store(s, team.team_id, key, "matched", "p-2", {"id": "p-2"}, 1)
        s.execute(
            text(
                "UPDATE enrichment_cache SET expires_at = now() - interval '1 second' "
                "WHERE identity_key = :k"
            ),
            {"k": key},
        )
    assert _claim(team.team_id, key, "run-b") is ClaimOutcome.CLAIMED
    with tenant_session(team.team_id) as s:
        row = s.execute(
            text("SELECT status, result, claimed_by FROM enrichment_cache WHERE identity_key = :k"),
            {"k": key},
        ).one()
    assert tuple(row) == ("pending", None, "run-b")


def test_stale_pending_claim_can_be_taken_over_and_a_claim_is_never_taken_twice(team) -> None:
    key = _key()
    assert _claim(team.team_id, key, "run-a") is ClaimOutcome.CLAIMED
    assert _claim(team.team_id, key, "run-b") is ClaimOutcome.BUSY
    # Two workers of one run must not both buy the same identity.
    assert _claim(team.team_id, key, "run-a") is ClaimOutcome.BUSY
    with tenant_session(team.team_id) as s:
        s.execute(
            text(
                "UPDATE enrichment_cache SET claimed_at = now() - interval '1 hour' "
                "WHERE identity_key = :k"
            ),
            {"k": key},
        )
    assert _claim(team.team_id, key, "run-b") is ClaimOutcome.CLAIMED
    assert _claim(team.team_id, key, "run-a") is ClaimOutcome.BUSY


def test_cache_is_per_team(team, other_team) -> None:
    key = _key()
    _claim(team.team_id, key, "run-a")
    with tenant_session(team.team_id) as s:
        store(s, team.team_id, key, "matched", "p-3", {"id": "p-3"}, 1)
    assert _claim(other_team.team_id, key, "run-z") is ClaimOutcome.CLAIMED


def test_a_request_in_flight_when_its_run_died_is_in_doubt_and_never_bought_again(team) -> None:
    key = _key()
    assert _claim(team.team_id, key, "run-a") is ClaimOutcome.CLAIMED
    reservation = uuid.uuid4()
    with tenant_session(team.team_id) as s:
        mark_sent(s, team.team_id, [key], "run-a", reservation, 9)
    # Fresh: the request may still be in flight, nobody else may buy it.
    assert _claim(team.team_id, key, "run-b") is ClaimOutcome.BUSY
    with tenant_session(team.team_id) as s:
        assert settle_in_doubt(s, team.team_id) == []
        s.execute(
            text(
                "UPDATE enrichment_cache SET claimed_at = now() - interval '1 hour' "
                "WHERE identity_key = :k"
            ),
            {"k": key},
        )
    # Stale but sent: unlike a stale pending claim, it is not taken over.
    assert _claim(team.team_id, key, "run-b") is ClaimOutcome.BUSY
    with tenant_session(team.team_id) as s:
        settled = settle_in_doubt(s, team.team_id)
    assert [(d.identity_key, d.credits, d.reservation_id) for d in settled] == [
        (key, 9, reservation)
    ]
    with tenant_session(team.team_id) as s:
        again = claim(s, team.team_id, key, "run-c")
    assert (again.outcome, again.status) == (ClaimOutcome.CACHED, "in_doubt")


def _wait_until_someone_waits_for_a_lock() -> None:
    deadline = time.monotonic() + 10
    with app_engine().connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            conn.rollback()  # a fresh snapshot of the statistics next time
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("nobody waited for a lock")


def _pending(team_id: uuid.UUID, keys: list[str]) -> None:
    """The claims as taken: pending."""


def _stale_sent(team_id: uuid.UUID, keys: list[str]) -> None:
    """Sent by a run that died. Key by key in reverse order, which keeps the entries' new
    row versions in the table against key order."""
    reservation = uuid.uuid4()
    for key in reversed(keys):
        with tenant_session(team_id) as s:
            mark_sent(s, team_id, [key], "run-a", reservation, 1)
            s.execute(
                text(
                    "UPDATE enrichment_cache SET claimed_at = now() - interval '1 hour' "
                    "WHERE identity_key = :key"
                ),
                {"key": key},
            )


def _mark_sent(s: Session, team_id: uuid.UUID, keys: list[str]) -> object:
    return mark_sent(s, team_id, keys, "run-a", uuid.uuid4(), 1)


def _release(s: Session, team_id: uuid.UUID, keys: list[str]) -> object:
    release(s, team_id, keys, "run-a")
    return s.scalar(
        text("SELECT count(*) FROM enrichment_cache WHERE identity_key = ANY(:keys)"),
        {"keys": keys},
    )


def _settle_in_doubt(s: Session, team_id: uuid.UUID, keys: list[str]) -> object:
    return [d.identity_key for d in settle_in_doubt(s, team_id)]


@pytest.mark.parametrize(
    ("setup", "write", "expected"),
    [
        (_pending, _mark_sent, 2),
        (_pending, _release, 0),
        (_stale_sent, _settle_in_doubt, "both keys"),
    ],
    ids=["mark_sent", "release", "settle_in_doubt"],
)
def test_writing_several_entries_while_another_run_claims_them_does_not_deadlock(
    team,
    setup: Callable[[uuid.UUID, list[str]], None],
    write: Callable[[Session, uuid.UUID, list[str]], object],
    expected: object,
) -> None:
    """Run A writes two of its entries in one statement while run B claims the same two
    people, key by key in key order as runs do. A's entries lie in the table against key
    order (claimed in reverse), and A's statement is made to visit rows in table order, as
    a plan may on a big table: locking rows as it visits them, it would take the second
    key, wait for B on the first, and deadlock when B goes on to the second."""
    keys = sorted([_key(), _key()])
    for key in reversed(keys):
        assert _claim(team.team_id, key, "run-a") is ClaimOutcome.CLAIMED
    setup(team.team_id, keys)
    outcome: list[object] = []

    def run_a() -> None:
        with tenant_session(team.team_id) as a:
            a.execute(text("SET LOCAL enable_indexscan = off"))
            a.execute(text("SET LOCAL enable_bitmapscan = off"))
            outcome.append(write(a, team.team_id, keys))

    with tenant_session(team.team_id) as b:
        assert claim(b, team.team_id, keys[0], "run-b").outcome is ClaimOutcome.BUSY
        thread = threading.Thread(target=run_a)
        thread.start()
        _wait_until_someone_waits_for_a_lock()
        assert claim(b, team.team_id, keys[1], "run-b").outcome is ClaimOutcome.BUSY
    thread.join(30)

    assert outcome == [keys if expected == "both keys" else expected]
