"""What an enrichment run does with each kind of 4xx from Apollo, against the sandbox over
loopback: a rejected batch is quarantined free and the run goes on; a refused key or any
other 4xx stops the run, charging nothing and leaving the leads open for a rerun."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import text

from outreach_core.db.engine import tenant_session
from outreach_core.sandbox.apollo import BULK_MATCH_PATH, SandboxApollo
from tests.test_enrichment import (
    apollo,
    enrich,
    leads,
    ledger,
    ledger_credits,
    metadata,
    person,
    seed,
    statuses,
)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def sandbox() -> Iterator[SandboxApollo]:
    with SandboxApollo(latency=0.01) as server:
        yield server


def _left_behind(team_id: uuid.UUID) -> dict[str, int]:
    """Budget reservations and cache entries: what a run holds while it works."""
    with tenant_session(team_id) as s:
        return {
            "reservations": s.scalar(text("SELECT count(*) FROM budget_reservations")),
            "cache_entries": s.scalar(text("SELECT count(*) FROM enrichment_cache")),
        }


def _cache(team_id: uuid.UUID) -> list[Any]:
    with tenant_session(team_id) as s:
        return list(s.execute(text("SELECT status, result, credits FROM enrichment_cache")).all())


def test_a_batch_apollo_rejects_is_quarantined_free_and_the_run_goes_on(
    instance, team, sandbox
) -> None:
    seed(team.team_id, [person(i) for i in range(30)])  # three bulk calls of 10
    sandbox.inject("pass", "422")  # the second call

    result = enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1))

    assert result.success
    meta = metadata(result)
    assert "stopped" not in meta  # metadata leaves out what is None
    assert meta["requests"] == 3 and meta["calls"] == 2 and meta["rejected_calls"] == 1
    assert meta["quarantined"] == 10 and meta["matched"] + meta["no_match"] == 20
    assert sandbox.requests.endpoint(BULK_MATCH_PATH) == 3
    assert sandbox.requests.faults_injected == 1

    assert statuses(team.team_id)["quarantined"] == 10
    assert set(statuses(team.team_id)) <= {"quarantined", "enriched", "no_match"}
    reason = "Apollo rejected the request: /api/v1/people/bulk_match: HTTP 422: "
    reason += "sandbox injected HTTP 422"
    rejected = [lead for lead in leads(team.team_id) if lead.enrichment_status == "quarantined"]
    assert {lead.enrichment_error for lead in rejected} == {reason}
    quarantined = [e for e in _cache(team.team_id) if e.status == "quarantined"]
    assert len(quarantined) == 10
    assert all(e.result == {"reason": reason} and e.credits == 0 for e in quarantined)

    # Charged: the two answered calls, exactly what the sandbox billed; the rejected call
    # has no ledger row and its reservation is gone.
    assert meta["matched"] == sandbox.requests.paid_matches
    assert len(ledger(team.team_id)) == sandbox.requests.charged_requests <= 2
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged == meta["credits"]
    assert _left_behind(team.team_id)["reservations"] == 0

    # Quarantined people are settled: the next run does not ask Apollo about them again.
    before = sandbox.requests.total
    again = metadata(enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1)))
    assert again["requests"] == 0 and sandbox.requests.total == before


def test_a_refused_key_stops_the_run_charging_nothing_and_a_rerun_resumes(instance, team) -> None:
    seed(team.team_id, [person(i) for i in range(20)])

    with SandboxApollo(api_keys={"the-right-key"}) as sandbox:
        failed = enrich(
            instance,
            team.team_id,
            apollo(sandbox, api_key="a-revoked-key", max_in_flight=1),
            raise_on_error=False,
        )

        assert not failed.success
        meta = metadata(failed)
        assert meta["stopped"] == "provider_refused"
        assert "Apollo refused our API key or account" in meta["message"]
        assert "HTTP 401" in meta["message"]
        assert sandbox.requests.unauthorized == 1 == sandbox.requests.total
        assert ledger(team.team_id) == [] and sandbox.requests.credits_charged == 0
        assert _left_behind(team.team_id) == {"reservations": 0, "cache_entries": 0}
        assert statuses(team.team_id) == {None: 20}  # open for the next run

        fixed = apollo(sandbox, api_key="the-right-key", max_in_flight=1)
        resumed = metadata(enrich(instance, team.team_id, fixed))
        assert resumed["calls"] == 2
        assert set(statuses(team.team_id)) <= {"enriched", "no_match"}
        assert ledger_credits(team.team_id) == sandbox.requests.credits_charged


@pytest.mark.parametrize(
    ("fault", "answer"),
    [("402", "HTTP 402"), ("404", "HTTP 404"), ("405", "HTTP 405"), ("redirect", "HTTP 302")],
)
def test_another_4xx_stops_the_run_as_misconfigured_keeping_what_was_bought(
    instance, team, sandbox, fault: str, answer: str
) -> None:
    seed(team.team_id, [person(i) for i in range(30)])
    sandbox.inject("pass", fault)  # the first call answers, the second does not

    failed = enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1), raise_on_error=False)

    assert not failed.success
    meta = metadata(failed)
    assert meta["stopped"] == "provider_misconfigured"
    assert answer in meta["message"] and "check the Apollo base URL" in meta["message"]
    assert sandbox.requests.endpoint(BULK_MATCH_PATH) == 2
    # The first call is bought and booked; the refused one is released, not charged.
    assert meta["calls"] == 1 and meta["quarantined"] == 0
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged == meta["credits"]
    assert _left_behind(team.team_id) == {"reservations": 0, "cache_entries": 10}
    assert statuses(team.team_id)[None] == 20

    resumed = metadata(enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1)))
    assert resumed["calls"] == 2
    assert set(statuses(team.team_id)) <= {"enriched", "no_match"}
    assert sandbox.requests.duplicate_paid_matches == 0
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged
