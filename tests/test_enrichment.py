"""The enriched_leads asset against the sandbox Apollo over loopback: results on the leads,
one payment per person, the ledger equal to what the sandbox charged, the budget, 429s,
failures, concurrency and a kill -9 in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import text

from outreach_assets.definitions import defs
from outreach_assets.enrichment import enrich_after_ingest_sensor, enriched_leads
from outreach_assets.partitions import partition_key, teams_partitions
from outreach_assets.resources import ApolloResource
from outreach_core.costs import budget
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CostCategory
from outreach_core.enrich.apollo_models import ApolloPerson
from outreach_core.enrich.derive import derive
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.sandbox.apollo import SandboxApollo
from outreach_core.settings import get_settings
from tests.helpers import csv_bytes, land, run_sensor_and_jobs

SECTOR = "construction"
PRICE = Decimal("0.10")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def sandbox() -> Iterator[SandboxApollo]:
    with SandboxApollo(latency=0.01) as server:
        yield server


def apollo(sandbox: SandboxApollo, **overrides: Any) -> ApolloResource:
    settings: dict[str, Any] = {
        "base_url": sandbox.base_url,
        "api_key": "test-key",
        "requests_per_minute": 60_000,
        "requests_per_hour": None,
        "requests_per_day": None,
        "price_per_credit": str(PRICE),
        "busy_wait_seconds": 10.0,
        **overrides,
    }
    return ApolloResource(**settings)


def person(i: int, **extra: str) -> dict[str, Any]:
    return {
        "first_name": f"Pat{i}",
        "last_name": f"Lee{i}",
        "email": f"pat{i}@builder{i % 7}.com",
        "phone": f"+1212555{i:04d}",
        "company_name": f"Builder {i % 7} LLC",
        **extra,
    }


def details(p: dict[str, Any]) -> dict[str, str]:
    """What the runner sends Apollo for a seeded lead."""
    return {
        "first_name": p["first_name"],
        "last_name": p["last_name"],
        "email": p["email"],
        "organization_name": p["company_name"],
    }


def seed(team_id: uuid.UUID, people: list[dict[str, Any]], sector: str = SECTOR) -> None:
    """Leads as ingestion leaves them (the ingestion path has its own tests)."""
    first = reserve_lead_ids(team_id, len(people))
    rows = [
        {
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "company_name": None,
            "website": None,
            "linkedin_url": None,
            **p,
            "t": team_id,
            "id": first + i,
            "sector": sector,
        }
        for i, p in enumerate(people)
    ]
    with tenant_session(team_id) as s:
        s.execute(
            text(
                "INSERT INTO leads (team_id, id, first_name, last_name, email, phone, "
                "company_name, website, linkedin_url, sector, bucket_id, score) VALUES (:t, "
                ":id, :first_name, :last_name, :email, :phone, :company_name, :website, "
                ":linkedin_url, :sector, "
                f"'us-construction-general-contractors', {base_score()})"
            ),
            rows,
        )


def enrich(
    instance: dg.DagsterInstance,
    team_id: uuid.UUID,
    resource: ApolloResource,
    sector: str = SECTOR,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(teams_partitions.name, [str(team_id)])
    return dg.materialize(
        [enriched_leads],
        partition_key=partition_key(team_id, sector),
        instance=instance,
        resources={"apollo": resource},
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    if result.success:
        event = result.asset_materializations_for_node("enriched_leads")[0]
        values = event.metadata
    else:
        failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
        assert failure is not None
        values = failure.metadata
    return {k: v.value for k, v in values.items()}


def leads(team_id: uuid.UUID) -> list[Any]:
    with tenant_session(team_id) as s:
        return list(s.execute(text("SELECT * FROM leads ORDER BY id")).all())


def ledger(team_id: uuid.UUID) -> list[Any]:
    with tenant_session(team_id) as s:
        return list(
            s.execute(text("SELECT operation, units, unit_cost, amount FROM cost_ledger")).all()
        )


def ledger_credits(team_id: uuid.UUID, operation: str = "people_bulk_match") -> int:
    return sum(r.units for r in ledger(team_id) if r.operation == operation)


def statuses(team_id: uuid.UUID) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for lead in leads(team_id):
        out[lead.enrichment_status] = out.get(lead.enrichment_status, 0) + 1
    return out


def test_leads_get_person_organisation_derived_fields_score_and_a_ledger_row(
    instance, team, sandbox
) -> None:
    people = [person(i) for i in range(25)]
    people += [{"phone": f"+1313555{i:04d}", "company_name": "No Name Co"} for i in range(4)]
    seed(team.team_id, people)

    result = enrich(instance, team.team_id, apollo(sandbox))

    meta = metadata(result)
    expected = {i: sandbox.lookup(details(people[i])) for i in range(25)}
    matched = sum(1 for p in expected.values() if p is not None)
    assert meta["insufficient_data"] == 4
    assert meta["identities"] == 25
    assert meta["matched"] == matched and meta["no_match"] == 25 - matched
    assert meta["requests"] == meta["calls"] == 3  # 10 + 10 + 5, bulk
    assert meta["cache_hits"] == 0 and meta["http_429"] == 0 and meta["retries"] == 0
    assert meta["credits"] == sandbox.requests.credits_charged == matched
    assert Decimal(str(meta["spend"])) == matched * PRICE

    # The ledger holds exactly what the sandbox charged, at the configured price.
    rows = ledger(team.team_id)
    assert sum(r.units for r in rows) == sandbox.requests.credits_charged
    assert sum(r.amount for r in rows) == sandbox.requests.credits_charged * PRICE
    assert {r.unit_cost for r in rows} == {PRICE}

    by_email = {lead.email: lead for lead in leads(team.team_id)}
    today = datetime.now(UTC).date()
    for i, raw in expected.items():
        lead = by_email[people[i]["email"]]
        if raw is None:
            assert lead.enrichment_status == "no_match"
            assert lead.score == 50
            continue
        want = ApolloPerson.model_validate(raw)
        derived = derive(want, today)
        org = want.organization
        assert org is not None
        assert lead.enrichment_status == "enriched"
        assert lead.apollo_person_id == want.id
        assert (lead.title, lead.seniority, lead.departments) == (
            want.title,
            want.seniority,
            want.departments,
        )
        assert (lead.apollo_email, lead.email_status) == (want.email, want.email_status)
        assert (lead.organization_name, lead.industry, lead.employee_count) == (
            org.name,
            org.industry,
            org.estimated_num_employees,
        )
        assert lead.technologies == org.technology_names and lead.keywords == org.keywords
        assert lead.founded_year == org.founded_year
        assert (lead.revenue_tier, lead.years_in_business) == (
            derived.revenue_tier,
            derived.years_in_business,
        )
        assert lead.is_owner_or_c_level == derived.is_owner_or_c_level
        assert lead.is_main_street == derived.is_main_street
        assert lead.score == derived.score
        assert lead.apollo_data["id"] == want.id
    skipped = [lead for lead in leads(team.team_id) if lead.company_name == "No Name Co"]
    assert {lead.enrichment_status for lead in skipped} == {"insufficient_data"}

    # Nothing left to do: a second run makes no request and spends nothing.
    before = sandbox.requests.total
    again = metadata(enrich(instance, team.team_id, apollo(sandbox)))
    assert sandbox.requests.total == before
    assert again["requests"] == 0 and again["spend"] == 0


def test_the_same_contact_in_three_uploads_costs_one_call(
    instance, team, sandbox, monkeypatch
) -> None:
    """Through the real ingestion job: one person arriving three times (other phones, so
    three leads) and a repeated contact are each bought once; the sensor queues
    enrichment after every ingest run (weeks apart: nothing to wait for)."""
    monkeypatch.setattr(get_settings(), "enrich_settle_seconds", 0)
    resource = apollo(sandbox)
    cursor: str | None = None
    for n in range(3):
        rows = [
            {
                "contact_name": "Dana Whitfield",
                "company": "Whitfield Plumbing",
                "website": "https://www.whitfieldplumbing.com",
                "phone": f"(212) 555-01{n:02d}",
                "email": "",
            },
            {
                "contact_name": "Sam Ortiz",
                "company": "Ortiz Pipes",
                "website": "",
                "phone": "",
                "email": "sam@ortizpipes.com",
            },
        ]
        upload = land(team.team_id, csv_bytes(rows), filename=f"week{n}.csv")
        (ingested,) = run_sensor_and_jobs(instance, {upload.id})
        assert ingested.success
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        tick = enrich_after_ingest_sensor(context)
        assert isinstance(tick, dg.SensorResult)
        (request,) = tick.run_requests
        cursor = tick.cursor
        assert request.partition_key == str(partition_key(team.team_id, SECTOR))
        meta = metadata(enrich(instance, team.team_id, resource))
        # Later weeks: Dana's new lead is answered from the cache; Sam merged into the
        # lead enriched in week 0, which is settled.
        assert meta["cache_hits"] == (0 if n == 0 else 1)
        assert meta["requests"] == (1 if n == 0 else 0)

    dana = [lead for lead in leads(team.team_id) if lead.contact_name == "Dana Whitfield"]
    assert len(dana) == 3
    assert len({lead.enrichment_key for lead in dana}) == 1
    assert len({lead.enrichment_status for lead in dana}) == 1
    # Two people, two paid lookups at most (one each), whatever the sandbox matched.
    assert sandbox.requests.endpoint("/api/v1/people/bulk_match") == 1
    assert sandbox.requests.duplicate_paid_matches == 0
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged


def run_concurrently(*jobs: Any) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def go(i: int) -> None:
        barrier.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_two_concurrent_runs_over_the_same_leads_pay_once_per_person(team, sandbox) -> None:
    seed(team.team_id, [person(i) for i in range(60)])
    sandbox.latency = 0.05

    def run() -> dict[str, Any]:
        with dg.DagsterInstance.ephemeral() as inst:
            return metadata(enrich(inst, team.team_id, apollo(sandbox, max_in_flight=4)))

    first, second = run_concurrently(run, run)

    assert sandbox.requests.duplicate_paid_matches == 0
    matched = first["matched"] + second["matched"]
    assert matched == sandbox.requests.paid_matches
    assert first["identities"] + second["identities"] >= 60
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged
    assert set(statuses(team.team_id)) <= {"enriched", "no_match"}


def test_a_429_storm_slows_the_run_down_and_loses_nothing(instance, team, sandbox) -> None:
    seed(team.team_id, [person(i) for i in range(40)])
    sandbox.inject(*["429:0.4"] * 6)

    started = time.monotonic()
    meta = metadata(enrich(instance, team.team_id, apollo(sandbox, max_in_flight=2)))

    assert meta["http_429"] == 6 == sandbox.requests.rate_limited
    # Every 429 paused every worker (the pause lives in PostgreSQL) for its Retry-After.
    assert time.monotonic() - started >= 0.4 * 3
    assert meta["calls"] == 4 and meta["requests"] == 10
    assert set(statuses(team.team_id)) <= {"enriched", "no_match"}
    assert meta["matched"] == sandbox.requests.paid_matches
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged
    assert sandbox.requests.duplicate_paid_matches == 0


def test_5xx_and_timeouts_are_retried_then_marked_enrich_failed_without_charge(
    instance, team, sandbox
) -> None:
    seed(team.team_id, [person(i) for i in range(10)])
    sandbox.inject("500", "timeout:1.5", "503")  # three attempts, all failing
    resource = apollo(sandbox, max_in_flight=1, timeout_seconds=0.5)

    meta = metadata(enrich(instance, team.team_id, resource))

    assert meta["requests"] == 3 and meta["retries"] == 2 and meta["failed"] == 10
    assert meta["possibly_charged_requests"] == 1  # the timeout: sent, no answer
    assert statuses(team.team_id) == {"enrich_failed": 10}
    assert leads(team.team_id)[0].enrichment_error.startswith("/api/v1/people/bulk_match: HTTP")
    assert ledger(team.team_id) == [] and sandbox.requests.credits_charged == 0
    with tenant_session(team.team_id) as s:
        assert s.scalar(text("SELECT count(*) FROM budget_reservations")) == 0
        assert s.scalar(text("SELECT count(*) FROM enrichment_cache")) == 0

    # The next run picks them up again.
    again = metadata(enrich(instance, team.team_id, resource))
    assert again["calls"] == 1 and set(statuses(team.team_id)) <= {"enriched", "no_match"}
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged


def test_circuit_opens_the_run_fails_with_a_clear_message_and_a_rerun_resumes(
    instance, team, sandbox
) -> None:
    seed(team.team_id, [person(i) for i in range(40)])
    sandbox.inject(*["503"] * 5)
    resource = apollo(sandbox, max_in_flight=1)

    failed = enrich(instance, team.team_id, resource, raise_on_error=False)

    assert not failed.success
    meta = metadata(failed)
    assert meta["stopped"] == "provider_unavailable"
    assert "circuit opened after 5 consecutive failures" in meta["message"]
    assert meta["requests"] == 5 and meta["calls"] == 0
    assert ledger(team.team_id) == []
    resumed = metadata(enrich(instance, team.team_id, resource))
    assert resumed["calls"] == 4
    assert set(statuses(team.team_id)) <= {"enriched", "no_match"}
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged


def _month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _spent(team_id: uuid.UUID) -> Decimal:
    return sum((r.amount for r in budget.month_spend(team_id, _month())), Decimal(0))


def test_budget_reached_mid_run_stops_cleanly_and_never_overspends(instance, team, sandbox) -> None:
    seed(team.team_id, [person(i) for i in range(60)])
    budget.set_monthly_cap(
        team.team_id, CostCategory.ENRICHMENT, Decimal("2.50")
    )  # 25 credits at $0.10

    result = enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1))

    assert result.success  # a reached cap is not a failure
    meta = metadata(result)
    assert meta["stopped"] == "budget_cap_reached"
    assert "the team's monthly enrichment budget of $2.50 reached" in meta["message"]
    assert _spent(team.team_id) <= Decimal("2.50")
    assert _spent(team.team_id) == sandbox.requests.credits_charged * PRICE
    assert statuses(team.team_id).get(None, 0) > 0  # left open for next month or a new cap

    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, None)
    enrich(instance, team.team_id, apollo(sandbox, max_in_flight=1))
    assert None not in statuses(team.team_id)
    assert sandbox.requests.duplicate_paid_matches == 0


def test_two_concurrent_runs_never_spend_past_the_cap(team, sandbox) -> None:
    seed(team.team_id, [person(i) for i in range(50)], sector="construction")
    seed(team.team_id, [person(i) for i in range(100, 150)], sector="healthcare")
    budget.set_monthly_cap(team.team_id, CostCategory.ENRICHMENT, Decimal("3.00"))
    sandbox.latency = 0.05

    def run(sector: str) -> Any:
        def go() -> dict[str, Any]:
            with dg.DagsterInstance.ephemeral() as inst:
                resource = apollo(sandbox, max_in_flight=3)
                return metadata(enrich(inst, team.team_id, resource, sector=sector))

        return go

    outcomes = run_concurrently(run("construction"), run("healthcare"))

    assert _spent(team.team_id) <= Decimal("3.00")
    assert _spent(team.team_id) == sandbox.requests.credits_charged * PRICE
    assert {o["stopped"] for o in outcomes} == {"budget_cap_reached"}
    with tenant_session(team.team_id) as s:
        assert s.scalar(text("SELECT count(*) FROM budget_reservations")) == 0


def _killed_run(team_id: uuid.UUID, sandbox: SandboxApollo, crash_at: str) -> None:
    script = f"""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pydantic import SecretStr
from outreach_core.enrich.runner import ApolloConnection, EnrichOptions, enrich_sector
enrich_sector(
    uuid.UUID("{team_id}"), "{SECTOR}",
    connection=ApolloConnection("{sandbox.base_url}", SecretStr("k"), limits={{"minute": 60000}}),
    options=EnrichOptions(price_per_credit=Decimal("{PRICE}"), max_in_flight=1),
    run_id="killed-run",
)
"""
    env = {**os.environ, "OUTREACH_CRASH_AT": crash_at}
    killed = subprocess.run([sys.executable, "-c", script], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL


def test_kill_9_between_calls_then_rerun_buys_nobody_twice(instance, team, sandbox) -> None:
    seed(team.team_id, [person(i) for i in range(50)])
    _killed_run(team.team_id, sandbox, "enrich.after_commit:2")
    assert sandbox.requests.endpoint("/api/v1/people/bulk_match") == 2

    meta = metadata(enrich(instance, team.team_id, apollo(sandbox)))

    assert meta["identities"] == 30 and meta["calls"] == 3
    assert set(statuses(team.team_id)) <= {"enriched", "no_match"}
    assert sandbox.requests.duplicate_paid_matches == 0
    assert ledger_credits(team.team_id) == sandbox.requests.credits_charged
    assert len(ledger(team.team_id)) == sandbox.requests.charged_requests


def test_kill_9_with_a_call_in_flight_leaves_it_in_doubt_never_bought_twice(
    instance, team, sandbox
) -> None:
    """Killed after Apollo answered the 2nd call but before we stored the answer: that
    answer is lost, and Apollo billed it. The rerun does not buy those people again: it
    books the call at its worst case and marks them in_doubt."""
    seed(team.team_id, [person(i) for i in range(50)])
    _killed_run(team.team_id, sandbox, "enrich.after_response:2")
    time.sleep(1.2)

    meta = metadata(enrich(instance, team.team_id, apollo(sandbox, claim_stale_after_seconds=1)))

    assert meta["in_doubt"] == 10
    assert statuses(team.team_id)["in_doubt"] == 10
    assert sandbox.requests.duplicate_paid_matches == 0
    # One ledger row per call Apollo charged for: confirmed ones at what they cost, the
    # one in doubt at its worst case (10 people x 1 credit), so never under what was spent.
    assert len(ledger(team.team_id)) == sandbox.requests.charged_requests
    confirmed = ledger_credits(team.team_id)
    unconfirmed = ledger_credits(team.team_id, "people_bulk_match_unconfirmed")
    assert unconfirmed == 10
    assert confirmed < sandbox.requests.credits_charged <= confirmed + unconfirmed
    # A third run has nothing left to buy.
    before = sandbox.requests.total
    enrich(instance, team.team_id, apollo(sandbox))
    assert sandbox.requests.total == before


def test_enriched_fields_and_filters_over_the_api(instance, team, sandbox, client) -> None:
    seed(team.team_id, [person(i) for i in range(12)] + [{"phone": "+13135550100"}])
    enrich(instance, team.team_id, apollo(sandbox))

    enriched = client.get("/v1/leads", params={"enrichment_status": "enriched", "limit": 500})
    assert enriched.status_code == 200
    items = enriched.json()["items"]
    assert items and all(i["enrichment_status"] == "enriched" for i in items)
    assert all(i["apollo_person_id"] and i["organization_name"] for i in items)
    assert len(items) == sandbox.requests.paid_matches
    top = client.get("/v1/leads", params={"min_score": 70}).json()["items"]
    assert all(i["score"] >= 70 for i in top)
    assert {i["id"] for i in top} <= {i["id"] for i in items}
    skipped = client.get("/v1/leads", params={"enrichment_status": "insufficient_data"})
    assert [i["phone"] for i in skipped.json()["items"]] == ["+13135550100"]
    bad = client.get("/v1/leads", params={"enrichment_status": "rich"})
    assert bad.status_code == 422
