"""The Apollo sandbox itself, driven with plain httpx (no project client)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from outreach_core.enrich.derive import revenue_tier
from outreach_core.sandbox.apollo import (
    BULK_MATCH_PATH,
    HEALTH_PATH,
    MATCH_PATH,
    SandboxApollo,
    credits_for,
    lookup_person,
)

KEY = {"X-Api-Key": "sandbox-key"}


@pytest.fixture
def sandbox() -> Iterator[SandboxApollo]:
    with SandboxApollo() as server:
        yield server


@pytest.fixture
def http(sandbox: SandboxApollo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=5) as c:
        yield c


def identities(n: int) -> list[dict[str, str]]:
    return [
        {"first_name": "Sam", "last_name": f"Probe{i}", "domain": f"shop{i}.com"} for i in range(n)
    ]


def test_binds_loopback_on_an_ephemeral_port(sandbox: SandboxApollo) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert not sandbox.base_url.endswith(":0")


def test_missing_key_is_401_json(sandbox: SandboxApollo, http: httpx.Client) -> None:
    response = http.post(MATCH_PATH, json={"email": "a@example.com"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json()
    assert sandbox.requests.unauthorized == 1 and sandbox.requests.paid_matches == 0


@pytest.mark.parametrize("where", ["body", "query"])
def test_key_outside_the_header_is_422(where: str, http: httpx.Client) -> None:
    if where == "body":
        response = http.post(
            MATCH_PATH, json={"email": "a@example.com", "api_key": "k"}, headers=KEY
        )
    else:
        response = http.post(
            MATCH_PATH, params={"api_key": "k"}, json={"email": "a@example.com"}, headers=KEY
        )
    assert response.status_code == 422


def test_configured_keys_are_enforced() -> None:
    with (
        SandboxApollo(api_keys={"right"}) as server,
        httpx.Client(base_url=server.base_url, timeout=5) as c,
    ):
        assert c.post(MATCH_PATH, json={}, headers={"X-Api-Key": "wrong"}).status_code == 401
        assert c.post(MATCH_PATH, json={}, headers={"X-Api-Key": "right"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"details": [{"email": f"p{i}@example.com"} for i in range(11)]}, 422),
        ({"details": []}, 422),
        ({"details": "nope"}, 422),
        ({"details": [{"email": "a@example.com"}, "x"]}, 422),
        ({"details": [{"email": "a@example.com"}]}, 200),
    ],
)
def test_bulk_body_validation(body: dict[str, object], status: int, http: httpx.Client) -> None:
    assert http.post(BULK_MATCH_PATH, json=body, headers=KEY).status_code == status


def test_unknown_route_and_health(http: httpx.Client) -> None:
    assert http.post("/api/v1/people/search", json={}, headers=KEY).status_code == 404
    assert http.get(HEALTH_PATH, headers=KEY).json() == {"healthy": True, "is_logged_in": True}


def test_legacy_v1_path_is_served_and_counted_once(
    sandbox: SandboxApollo, http: httpx.Client
) -> None:
    http.post("/v1/people/match", json={"email": "a@example.com"}, headers=KEY)
    assert sandbox.requests.by_endpoint == {MATCH_PATH: 1}


def test_bulk_response_shape_and_credits(sandbox: SandboxApollo, http: httpx.Client) -> None:
    details = identities(10)

    body = http.post(BULK_MATCH_PATH, json={"details": details}, headers=KEY).json()

    expected = [lookup_person(d) for d in details]
    assert body["matches"] == expected
    matched = sum(1 for m in expected if m is not None)
    assert body["credits_consumed"] == matched == sandbox.requests.credits_charged
    assert body["unique_enriched_records"] == matched
    assert body["missing_records"] == 10 - matched
    assert body["total_requested_enrichments"] == 10
    person = next(m for m in body["matches"] if m is not None)
    for key in (
        "id",
        "first_name",
        "last_name",
        "name",
        "title",
        "seniority",
        "departments",
        "linkedin_url",
        "email",
        "email_status",
        "phone_numbers",
        "organization",
    ):
        assert key in person
    for key in (
        "id",
        "name",
        "website_url",
        "primary_domain",
        "founded_year",
        "estimated_num_employees",
        "industry",
        "keywords",
        "city",
        "state",
        "country",
        "annual_revenue",
        "technology_names",
    ):
        assert key in person["organization"]


def test_reveal_via_query_parameter_adds_mobiles(http: httpx.Client) -> None:
    details = identities(10)
    plain = http.post(BULK_MATCH_PATH, json={"details": details}, headers=KEY).json()
    revealed = http.post(
        BULK_MATCH_PATH,
        params={"reveal_phone_number": "true"},
        json={"details": details},
        headers=KEY,
    ).json()
    mobiles = sum(1 for m in revealed["matches"] if m and m["phone_numbers"])
    assert mobiles > 0
    assert all(
        p["type"] == "mobile" and p["sanitized_number"].startswith("+1")
        for m in revealed["matches"]
        if m
        for p in m["phone_numbers"]
    )
    assert revealed["credits_consumed"] == plain["credits_consumed"] + 8 * mobiles


def test_data_distribution_is_varied_and_deterministic() -> None:
    people = [lookup_person(d, reveal_phone_number=True) for d in identities(2_000)]
    assert people == [lookup_person(d, reveal_phone_number=True) for d in identities(2_000)]
    matched = [p for p in people if p is not None]
    assert 0.75 < len(matched) / len(people) < 0.85

    seniorities = Counter(p["seniority"] for p in matched)
    assert set(seniorities) == {"owner", "c_suite", "vp", "director", "manager"}
    tiers = Counter(revenue_tier(p["organization"]["annual_revenue"]) for p in matched)
    assert set(tiers) == {None, "startup", "main_street", "growth", "established", "enterprise"}
    founded = [p["organization"]["founded_year"] for p in matched]
    assert (
        None in founded
        and min(f for f in founded if f) < 1970
        and max(f for f in founded if f) > 2020
    )
    with_mobile = sum(1 for p in matched if p["phone_numbers"])
    assert 0.4 < with_mobile / len(matched) < 0.6
    assert sum(credits_for(p) for p in people) == len(matched) + 8 * with_mobile


def test_insufficient_identifiers_never_match() -> None:
    assert lookup_person({"first_name": "Sam", "last_name": "Probe"}, match_rate=1.0) is None
    assert lookup_person({"organization_name": "Acme"}, match_rate=1.0) is None
    assert lookup_person({"name": "Sam Probe", "domain": "x.com"}, match_rate=1.0) is not None


def test_rate_limit_window_headers_and_429() -> None:
    now = [125.0]
    with (
        SandboxApollo(rate_limit_per_minute=2, clock=lambda: now[0]) as server,
        httpx.Client(base_url=server.base_url, timeout=5) as c,
    ):
        r1 = c.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
        r2 = c.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
        r3 = c.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
        now[0] = 180.0  # next minute window
        r4 = c.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
        other = c.post(
            MATCH_PATH, json={"email": "a@example.com"}, headers={"X-Api-Key": "another-account"}
        )

    assert [r.status_code for r in (r1, r2, r3, r4, other)] == [200, 200, 429, 200, 200]
    assert r1.headers["x-rate-limit-minute"] == "2"
    assert [r.headers["x-minute-requests-left"] for r in (r1, r2, r3, r4)] == ["1", "0", "0", "1"]
    assert r3.headers["Retry-After"] == "55"
    assert server.requests.rate_limited == 1 and server.requests.total == 5


def test_latency_is_applied() -> None:
    with (
        SandboxApollo(latency=0.2) as server,
        httpx.Client(base_url=server.base_url, timeout=5) as c,
    ):
        started = time.perf_counter()
        c.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
        assert time.perf_counter() - started >= 0.2


def test_faults_are_consumed_in_order(sandbox: SandboxApollo, http: httpx.Client) -> None:
    sandbox.inject("503", "html", "redirect")
    statuses = [
        http.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY) for _ in range(4)
    ]
    assert [r.status_code for r in statuses] == [503, 200, 302, 200]
    assert statuses[1].headers["content-type"].startswith("text/html")
    assert statuses[2].headers["location"].endswith(MATCH_PATH)
    assert sandbox.requests.faults_injected == 3 and sandbox.faults_pending == 0


def test_pass_aims_a_fault_at_a_later_request(sandbox: SandboxApollo, http: httpx.Client) -> None:
    sandbox.inject("pass", "pass", "422")
    batch = {"details": identities(3)}
    statuses = [http.post(BULK_MATCH_PATH, json=batch, headers=KEY) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 422, 200]
    assert statuses[2].json() == {"error": "sandbox injected HTTP 422"}
    assert sandbox.requests.faults_injected == 1 and sandbox.faults_pending == 0
    # The rejected request was not charged.
    per_call = sum(credits_for(lookup_person(d)) for d in identities(3))
    assert sandbox.requests.credits_charged == 3 * per_call


def test_reset_fault_drops_the_connection(sandbox: SandboxApollo, http: httpx.Client) -> None:
    sandbox.inject("reset")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
    assert http.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY).status_code == 200


def test_unknown_fault_is_rejected(sandbox: SandboxApollo) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sandbox.inject("explode")


def test_reset_clears_counters_and_faults(sandbox: SandboxApollo, http: httpx.Client) -> None:
    sandbox.inject("500", "500")
    http.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY)
    sandbox.reset()
    assert sandbox.requests.total == 0 and sandbox.faults_pending == 0
    assert http.post(MATCH_PATH, json={"email": "a@example.com"}, headers=KEY).status_code == 200


def test_counters_are_thread_safe(sandbox: SandboxApollo) -> None:
    def worker() -> None:
        with httpx.Client(base_url=sandbox.base_url, timeout=5) as c:
            for i in range(5):
                c.post(BULK_MATCH_PATH, json={"details": identities(3)[i % 3 :]}, headers=KEY)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    per_round = [sum(1 for d in identities(3)[i % 3 :] if lookup_person(d)) for i in range(5)]
    assert sandbox.requests.total == 80
    assert sandbox.requests.paid_matches == 16 * sum(per_round)
    assert sandbox.requests.credits_charged == sandbox.requests.paid_matches


def test_cli_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "outreach_core.sandbox.apollo", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            response = httpx.get(base_url + HEALTH_PATH, headers=KEY, timeout=5)
            assert response.json()["healthy"] is True
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
