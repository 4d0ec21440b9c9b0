"""Enrichment dedup cache: the unique key decides who pays, never a check-then-insert."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import text

from outreach_core.db.engine import tenant_session
from outreach_core.enrich.cache import ClaimOutcome, claim, mark_sent, settle_in_doubt, store


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
