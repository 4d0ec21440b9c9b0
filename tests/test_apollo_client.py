"""ApolloClient against the Apollo sandbox over real loopback HTTP."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import httpx
import pytest

from outreach_core.enrich.apollo_client import (
    BULK_MATCH_PATH,
    INSUFFICIENT_DATA,
    MATCH_PATH,
    AccessDenied,
    ApolloClient,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    MalformedResponse,
    MatchInput,
    MatchStatus,
    PermanentError,
    ProviderError,
    QuotaInfo,
    RateLimited,
    RequestRejected,
    RetryPolicy,
    TransientError,
    match_eligibility,
    parse_retry_after,
    plan_bulk_batches,
)
from outreach_core.sandbox.apollo import CREDITS_PER_MOBILE, SandboxApollo

API_KEY = "sk-test-Zq8sEcReT-4f9a0c"


class FakeClock:
    """One clock for the sandbox's rate-limit window, Retry-After dates and retry sleeps."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def sandbox() -> Iterator[SandboxApollo]:
    with SandboxApollo(timeout_fault_seconds=2.0) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxApollo) -> Iterator[ApolloClient]:
    with ApolloClient(sandbox.base_url, API_KEY, timeout=0.5) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def retry_policy(clock: FakeClock, **overrides: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, jitter=lambda: 0.5, **overrides)  # type: ignore[arg-type]


def pick_inputs(
    sandbox: SandboxApollo, *, matched: int, unmatched: int, reveal: bool = False
) -> tuple[list[MatchInput], list[MatchInput]]:
    """Inputs the sandbox will (not) match, found through its deterministic lookup."""
    hits: list[MatchInput] = []
    misses: list[MatchInput] = []
    for i in range(10_000):
        inp = MatchInput(
            first_name="Dana",
            last_name=f"Tester{i}",
            organization_name="Acme Plumbing",
            reveal_phone_number=reveal,
        )
        found = sandbox.lookup(inp.details(), reveal_phone_number=reveal) is not None
        bucket, want = (hits, matched) if found else (misses, unmatched)
        if len(bucket) < want:
            bucket.append(inp)
        if len(hits) == matched and len(misses) == unmatched:
            return hits, misses
    raise AssertionError("sandbox match rate too far off to pick inputs")


# ---------------------------------------------------------------- round trips


def test_match_round_trip_is_deterministic(sandbox: SandboxApollo, client: ApolloClient) -> None:
    [inp], _ = pick_inputs(sandbox, matched=1, unmatched=0)

    first = client.match(inp)
    second = client.match(inp)

    assert first.status is MatchStatus.MATCHED and first.person is not None
    assert first.person.first_name == "Dana" and first.person.last_name == inp.last_name
    assert first.person.organization is not None
    assert first.person.organization.name == "Acme Plumbing"
    assert first.raw == second.raw == sandbox.lookup(inp.details())
    assert first.credits_consumed == 1
    assert sandbox.requests.endpoint(MATCH_PATH) == 2
    assert sandbox.requests.credits_charged == 2


def test_match_no_match_is_free(sandbox: SandboxApollo, client: ApolloClient) -> None:
    _, [inp] = pick_inputs(sandbox, matched=0, unmatched=1)

    result = client.match(inp)

    assert result.status is MatchStatus.NO_MATCH and result.person is None
    assert result.credits_consumed == 0
    assert sandbox.requests.paid_matches == 0 and sandbox.requests.total == 1


def test_bulk_round_trip_maps_back_to_input_index(
    sandbox: SandboxApollo, client: ApolloClient
) -> None:
    hits, misses = pick_inputs(sandbox, matched=6, unmatched=3)
    people = [*hits[:3], misses[0], *hits[3:], *misses[1:]]

    result = client.bulk_match(people)
    again = client.bulk_match(people)

    assert [r.index for r in result.results] == list(range(len(people)))
    for r, inp in zip(result.results, people, strict=True):
        if inp in hits:
            assert r.status is MatchStatus.MATCHED and r.person is not None
            assert r.person.last_name == inp.last_name
        else:
            assert r.status is MatchStatus.NO_MATCH
    assert [r.raw for r in result.results] == [r.raw for r in again.results]
    assert result.credits_consumed == 6 and result.requested == 9
    assert sandbox.requests.endpoint(BULK_MATCH_PATH) == 2


def test_two_sandboxes_answer_identically() -> None:
    inp = MatchInput(email="owner@joes-diner.com")
    raws = []
    for _ in range(2):
        with SandboxApollo() as server, ApolloClient(server.base_url, API_KEY, timeout=2) as c:
            raws.append(c.match(inp).raw)
    assert raws[0] == raws[1]


def test_revealed_mobiles_cost_eight_more(sandbox: SandboxApollo, client: ApolloClient) -> None:
    hits, misses = pick_inputs(sandbox, matched=8, unmatched=2, reveal=True)

    result = client.bulk_match([*hits, *misses])

    mobiles = sum(1 for r in result.matched if r.person is not None and r.person.mobile_numbers)
    assert 0 < mobiles < 8  # the sandbox reveals a mobile for about half the matches
    assert result.credits_consumed == 8 + CREDITS_PER_MOBILE * mobiles
    assert sandbox.requests.credits_charged == result.credits_consumed


# ---------------------------------------------------------------- eligibility


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        (MatchInput(email="pat@example.com"), None),
        (MatchInput(linkedin_url="https://www.linkedin.com/in/pat-lee"), None),
        (MatchInput(first_name="Pat", last_name="Lee", organization_name="Lee Roofing"), None),
        (MatchInput(first_name="Pat", last_name="Lee", domain="leeroofing.com"), None),
        (MatchInput(name="Pat Lee", domain="leeroofing.com"), None),
        (MatchInput(first_name="Pat", last_name="Lee"), INSUFFICIENT_DATA),
        (MatchInput(first_name="Pat", organization_name="Lee Roofing"), INSUFFICIENT_DATA),
        (MatchInput(name="Pat", domain="leeroofing.com"), INSUFFICIENT_DATA),
        (MatchInput(organization_name="Lee Roofing", domain="leeroofing.com"), INSUFFICIENT_DATA),
        (MatchInput(email="not-an-email"), INSUFFICIENT_DATA),
        (MatchInput(email="  ", linkedin_url=""), INSUFFICIENT_DATA),
        (MatchInput(linkedin_url="https://facebook.com/pat"), INSUFFICIENT_DATA),
        (MatchInput(), INSUFFICIENT_DATA),
    ],
)
def test_match_eligibility(inp: MatchInput, expected: str | None) -> None:
    assert match_eligibility(inp) == expected


def test_insufficient_data_makes_no_request(sandbox: SandboxApollo, client: ApolloClient) -> None:
    thin = MatchInput(first_name="Pat", last_name="Lee")

    single = client.match(thin)
    bulk = client.bulk_match([thin, MatchInput(organization_name="Lee Roofing")])

    assert single.status is MatchStatus.SKIPPED and single.reason == INSUFFICIENT_DATA
    assert single.credits_consumed == 0
    assert [r.status for r in bulk.results] == [MatchStatus.SKIPPED] * 2
    assert bulk.requested == 0 and bulk.credits_consumed == 0
    assert sandbox.requests.total == 0


def test_bulk_sends_only_eligible_people(sandbox: SandboxApollo, client: ApolloClient) -> None:
    [hit], _ = pick_inputs(sandbox, matched=1, unmatched=0)

    result = client.bulk_match([MatchInput(first_name="Pat"), hit])

    assert result.requested == 1 and sandbox.requests.total == 1
    assert result.results[0].status is MatchStatus.SKIPPED
    assert result.results[1].status is MatchStatus.MATCHED and result.results[1].index == 1


def test_bulk_rejects_more_than_ten(sandbox: SandboxApollo, client: ApolloClient) -> None:
    with pytest.raises(ValueError, match="at most 10"):
        client.bulk_match([MatchInput(email=f"p{i}@example.com") for i in range(11)])
    assert sandbox.requests.total == 0


def test_bulk_rejects_mixed_reveal_flags(client: ApolloClient) -> None:
    with pytest.raises(ValueError, match="reveal_phone_number"):
        client.bulk_match(
            [
                MatchInput(email="a@example.com"),
                MatchInput(email="b@example.com", reveal_phone_number=True),
            ]
        )


def test_plan_bulk_batches_groups_by_reveal_and_skips_ineligible() -> None:
    people = [
        MatchInput(email=f"p{i}@example.com", reveal_phone_number=i % 3 == 0) for i in range(25)
    ]
    people[4] = MatchInput(first_name="only")

    batches = plan_bulk_batches(people)

    assert all(len(b) <= 10 for b in batches)
    assert sorted(i for b in batches for i in b) == [i for i in range(25) if i != 4]
    for batch in batches:
        assert len({people[i].reveal_phone_number for i in batch}) == 1


# --------------------------------------------------------------- provider faults


def test_429_retry_after_is_honoured(clock: FakeClock) -> None:
    with (
        SandboxApollo(rate_limit_per_minute=2, clock=clock.time) as server,
        ApolloClient(server.base_url, API_KEY, timeout=2, clock=clock.time) as c,
    ):
        retry = retry_policy(clock)
        inp = MatchInput(email="owner@joes-diner.com")
        for _ in range(2):
            retry.call(lambda: c.match(inp))
        assert clock.sleeps == []

        result = retry.call(lambda: c.match(inp))

        # Fixed minute window 960..1020 at t=1000: the server asks for 20 s.
        assert clock.sleeps == [20.0]
        assert result.status is not MatchStatus.SKIPPED
        assert server.requests.rate_limited == 1 and server.requests.total == 4


def test_injected_429_waits_exactly_retry_after(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    sandbox.inject("429:7")
    retry = retry_policy(clock)

    retry.call(lambda: client.match(MatchInput(email="owner@joes-diner.com")))

    assert clock.sleeps == [7.0]


def test_retry_after_longer_than_allowed_is_raised(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    sandbox.inject("429:900")
    with pytest.raises(RateLimited) as info:
        retry_policy(clock).call(lambda: client.match(MatchInput(email="a@example.com")))
    assert info.value.retry_after == 900.0 and clock.sleeps == []


def test_500_then_200_is_retried(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    [inp], _ = pick_inputs(sandbox, matched=1, unmatched=0)
    sandbox.inject("500")

    result = retry_policy(clock).call(lambda: client.match(inp))

    assert result.status is MatchStatus.MATCHED
    assert clock.sleeps == [0.375]  # base 0.5: half fixed + jitter 0.5 of the other half
    assert sandbox.requests.total == 2 and sandbox.requests.credits_charged == 1


@pytest.mark.parametrize("fault", ["timeout", "reset", "html", "503"])
def test_transient_fault_is_retried_then_given_up(fault: str, clock: FakeClock) -> None:
    with (
        SandboxApollo(timeout_fault_seconds=2.0) as server,
        ApolloClient(server.base_url, API_KEY, timeout=0.2) as c,
    ):
        server.inject(fault, fault, fault)

        with pytest.raises(TransientError):
            retry_policy(clock).call(lambda: c.match(MatchInput(email="a@example.com")))

        assert server.requests.total == 3
        assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0]
        assert server.requests.credits_charged == 0


def test_mixed_transient_faults_then_success(sandbox: SandboxApollo, clock: FakeClock) -> None:
    sandbox.inject("timeout:1", "reset")
    with ApolloClient(sandbox.base_url, API_KEY, timeout=0.2) as c:
        result = retry_policy(clock).call(lambda: c.match(MatchInput(email="a@example.com")))
    assert result.status is not MatchStatus.SKIPPED
    assert sandbox.requests.total == 3


def test_timeout_marks_outcome_unknown(sandbox: SandboxApollo) -> None:
    sandbox.inject("timeout:1")
    with (
        ApolloClient(sandbox.base_url, API_KEY, timeout=0.2) as c,
        pytest.raises(TransientError) as info,
    ):
        c.match(MatchInput(email="a@example.com"))
    assert info.value.outcome_unknown is True


def test_redirect_is_never_followed(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    with SandboxApollo() as elsewhere:
        sandbox.redirect_to = elsewhere.base_url
        sandbox.inject("redirect")

        with pytest.raises(PermanentError, match="302") as info:
            retry_policy(clock).call(lambda: client.match(MatchInput(email="a@example.com")))

        assert elsewhere.requests.total == 0
        assert sandbox.requests.total == 1  # permanent: not retried
        assert "127.0.0.1" in str(info.value)


def test_4xx_is_permanent_and_not_retried(clock: FakeClock) -> None:
    with (
        SandboxApollo(api_keys={"some-other-key"}) as server,
        ApolloClient(server.base_url, API_KEY, timeout=2) as c,
    ):
        with pytest.raises(PermanentError) as info:
            retry_policy(clock).call(lambda: c.match(MatchInput(email="a@example.com")))
        assert info.value.status_code == 401
        assert server.requests.total == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RequestRejected),
        (413, RequestRejected),
        (422, RequestRejected),
        (401, AccessDenied),
        (403, AccessDenied),
        (402, PermanentError),
        (404, PermanentError),
        (405, PermanentError),
    ],
)
def test_each_4xx_says_what_it_is_about(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock, status: int, error: type
) -> None:
    """A rejected payload, a refused key, or (any other 4xx) a setup that cannot work:
    the runner quarantines the first, stops on the others."""
    sandbox.inject(str(status))
    with pytest.raises(PermanentError) as info:
        retry_policy(clock).call(lambda: client.bulk_match([MatchInput(email="a@example.com")]))
    assert type(info.value) is error
    assert info.value.status_code == status
    assert f"HTTP {status}: sandbox injected HTTP {status}" in str(info.value)
    assert sandbox.requests.total == 1 and clock.sleeps == []  # never retried


def test_bulk_with_malformed_element_quarantines_only_that_one(
    sandbox: SandboxApollo, client: ApolloClient
) -> None:
    hits, misses = pick_inputs(sandbox, matched=8, unmatched=2)
    people = [*hits[:3], misses[0], *hits[3:7], misses[1], hits[7]]
    sandbox.inject("malformed:5")  # index 5 is a person the sandbox matched

    result = client.bulk_match(people)

    assert len(result.results) == 10
    assert len(result.matched) == 7
    assert [r.index for r in result.no_match] == [3, 8]
    [bad] = result.quarantined
    assert bad.index == 5 and bad.person is None
    assert bad.reason is not None and bad.reason.startswith("malformed_match")
    assert isinstance(bad.raw, dict)  # kept as received, for the quarantine table
    assert result.credits_consumed == 8  # billed upstream, malformed or not
    assert sandbox.requests.credits_charged == 8 and sandbox.requests.paid_matches == 8


def test_malformed_single_match_is_quarantined(
    sandbox: SandboxApollo, client: ApolloClient
) -> None:
    sandbox.inject("malformed")
    result = client.match(MatchInput(email="a@example.com"))
    assert result.status is MatchStatus.QUARANTINED and result.credits_consumed == 1


def test_misaligned_bulk_response_is_a_malformed_response() -> None:
    # The sandbox always aligns its answers, so this shape needs a scripted transport.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"matches": [None], "credits_consumed": 3})

    with (
        ApolloClient(
            "https://api.apollo.io", API_KEY, timeout=2, transport=httpx.MockTransport(handler)
        ) as c,
        pytest.raises(MalformedResponse) as info,
    ):
        c.bulk_match([MatchInput(email="a@example.com"), MatchInput(email="b@example.com")])
    assert info.value.credits_consumed == 3


# ----------------------------------------------------------------- the API key


class RecordingTransport(httpx.HTTPTransport):
    """Real loopback transport that keeps what went over the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def test_key_travels_only_in_the_header(sandbox: SandboxApollo) -> None:
    transport = RecordingTransport()
    with ApolloClient(sandbox.base_url, API_KEY, timeout=2, transport=transport) as c:
        c.match(MatchInput(email="a@example.com"))
        c.bulk_match([MatchInput(email="b@example.com")])
    for request in transport.sent:
        assert request.headers["X-Api-Key"] == API_KEY
        assert API_KEY not in str(request.url)
        assert API_KEY.encode() not in request.content


def leaks(text: str) -> bool:
    return API_KEY in text or API_KEY[-8:] in text


@pytest.mark.parametrize(
    "fault", ["500", "timeout:1", "reset", "html", "redirect", "429:999", "unauthorized"]
)
def test_api_key_absent_from_errors_reprs_and_logs(
    fault: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = {"a-different-key"} if fault == "unauthorized" else None
    with (
        SandboxApollo(api_keys=keys, timeout_fault_seconds=2) as server,
        ApolloClient(server.base_url, API_KEY, timeout=0.2) as c,
    ):
        if fault != "unauthorized":
            server.inject(*[fault] * 3)
        with pytest.raises(ProviderError) as info:
            retry_policy(clock).call(lambda: c.match(MatchInput(email="a@example.com")))
        rendered = [
            str(info.value),
            repr(info.value),
            repr(vars(info.value)),
            "".join(traceback.format_exception(info.value)),
            repr(c),
            str(c),
        ]
    assert info.value.__cause__ is None  # no httpx exception (holding the request) chained
    for text in rendered:
        assert not leaks(text), text
    assert not leaks(caplog.text)


def test_invalid_key_is_rejected_without_echoing_it() -> None:
    bad = "sk-line\nbreak-" + API_KEY
    with pytest.raises(ValueError) as info:
        ApolloClient("https://api.apollo.io", bad, timeout=2)
    assert not leaks(str(info.value))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": None}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": httpx.Timeout(5, read=None)}, "timeout"),
        ({"timeout": 5, "base_url": "http://api.apollo.io"}, "https"),
        ({"timeout": 5, "base_url": "api.apollo.io"}, "absolute"),
        ({"timeout": 5, "api_key": ""}, "empty"),
    ],
)
def test_client_configuration_is_checked(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"base_url": "https://api.apollo.io", "api_key": API_KEY, **kwargs}
    with pytest.raises(ValueError, match=message):
        ApolloClient(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------- circuit breaker


def test_circuit_breaker_opens_fails_fast_and_recovers(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown=30, clock=clock.time)
    inp = MatchInput(email="a@example.com")
    sandbox.inject("503", "503", "503")

    for _ in range(3):
        with pytest.raises(TransientError):
            breaker.call(lambda: client.match(inp))
    assert breaker.state is BreakerState.OPEN

    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: client.match(inp))
    assert sandbox.requests.total == 3  # rejected without a request
    assert info.value.retry_after == 30

    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.call(lambda: client.match(inp))
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_failed_half_open_probe_reopens(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10, clock=clock.time)
    inp = MatchInput(email="a@example.com")
    sandbox.inject("500", "500")
    with pytest.raises(TransientError):
        breaker.call(lambda: client.match(inp))
    clock.now += 10

    with pytest.raises(TransientError):
        breaker.call(lambda: client.match(inp))

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: client.match(inp))
    assert sandbox.requests.total == 2


def test_4xx_and_429_do_not_trip_the_breaker(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock.time)
    sandbox.inject("500", "422", "500", "429")
    for expected in (TransientError, PermanentError, TransientError, RateLimited):
        with pytest.raises(expected):
            breaker.call(lambda: client.match(MatchInput(email="a@example.com")))
    assert breaker.state is BreakerState.CLOSED


def test_open_circuit_stops_retries(
    sandbox: SandboxApollo, client: ApolloClient, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock.time)
    sandbox.inject("503", "503", "503")

    with pytest.raises(TransientError):
        retry_policy(clock).call(
            lambda: client.match(MatchInput(email="a@example.com")), breaker=breaker
        )

    # The second failure opened the breaker: no third attempt, no sleep before it.
    assert breaker.state is BreakerState.OPEN
    assert sandbox.requests.total == 2 and len(clock.sleeps) == 1
    with pytest.raises(CircuitOpen):
        retry_policy(clock).call(
            lambda: client.match(MatchInput(email="a@example.com")), breaker=breaker
        )
    assert sandbox.requests.total == 2


# ------------------------------------------------------------------ small seams


def test_gate_sees_every_attempt_and_the_quota(clock: FakeClock) -> None:
    class Gate:
        def __init__(self) -> None:
            self.before: list[tuple[str, int]] = []
            self.after: list[tuple[int, QuotaInfo, float | None]] = []

        def before_request(self, endpoint: str, people: int) -> None:
            self.before.append((endpoint, people))

        def after_response(
            self, endpoint: str, status_code: int, quota: QuotaInfo, retry_after: float | None
        ) -> None:
            self.after.append((status_code, quota, retry_after))

    gate = Gate()
    with (
        SandboxApollo(rate_limit_per_minute=1, clock=clock.time) as server,
        ApolloClient(server.base_url, API_KEY, timeout=2, gate=gate, clock=clock.time) as c,
    ):
        retry = retry_policy(clock)
        retry.call(
            lambda: c.bulk_match(
                [MatchInput(email="a@example.com"), MatchInput(email="b@example.com")]
            )
        )
        retry.call(lambda: c.match(MatchInput(email="a@example.com")))

    assert gate.before == [(BULK_MATCH_PATH, 2), (MATCH_PATH, 1), (MATCH_PATH, 1)]
    assert [a[0] for a in gate.after] == [200, 429, 200]
    assert gate.after[0][1] == QuotaInfo(limit_per_minute=1, remaining_minute=0)
    assert gate.after[1][2] == 20.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 1970 00:17:10 GMT", 30.0),  # 1030 s after the epoch, now is 1000
        ("soon", 60.0),
        (None, 60.0),
        ("inf", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float) -> None:
    assert parse_retry_after(value, now=1_000.0, default=60.0) == expected


def test_identity_key_ignores_case_whitespace_and_reveal() -> None:
    a = MatchInput(email=" Pat@Example.com ", reveal_phone_number=True)
    b = MatchInput(email="pat@example.com")
    assert a.identity_key() == b.identity_key()
    assert a.identity_key() != MatchInput(email="lee@example.com").identity_key()
