"""Abuse protection (outreach_api.limits) over real HTTP: bad API keys lock an address out
without reaching the database, rate limits per key and per address answer 429 with
Retry-After and recover, and bodies over the cap get 413 whether or not they declare their
length. Servers here exempt no address (the default exempts loopback, which every test
client is); a second client calls from 127.0.0.2, which Linux routes to loopback too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from outreach_api.limits import Limits, with_limits
from outreach_api.main import create_app
from outreach_core.db.engine import app_engine
from outreach_core.messaging.twilio_gateway import STATUS_CALLBACK_PATH
from outreach_core.settings import get_settings

EXEMPT_NONE = frozenset[str]()
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# The configured body cap (OUTREACH_API_MAX_BODY_BYTES).
MAX_BODY_BYTES = get_settings().api_max_body_bytes


def bad_key(n: int) -> dict[str, str]:
    # Well formed, so each one is looked up in the database until the address is locked out.
    return {"Authorization": f"Bearer ok_{n:043d}"}


def served(serve: Any, **limits: Any) -> str:
    return serve(
        with_limits(create_app(), Limits.from_settings(exempt_addresses=EXEMPT_NONE, **limits))
    ).base_url


@pytest.fixture
def queries() -> Iterator[list[str]]:
    """Every statement the application's engine runs (the API server is in this process)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(app_engine(), "before_cursor_execute", record)
    yield seen
    event.remove(app_engine(), "before_cursor_execute", record)


def from_second_address(base_url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2"), **kwargs
    )


def test_repeated_bad_keys_lock_the_address_out_without_the_database(serve, queries) -> None:
    base_url = served(serve)
    limit = Limits.from_settings().failed_auth_limit
    with httpx.Client(base_url=base_url) as client:
        first = [client.get("/v1/leads", headers=bad_key(n)) for n in range(limit)]
        assert [r.status_code for r in first] == [401] * limit
        looked_up = len(queries)
        assert looked_up >= limit  # each bad key was looked up

        started = time.perf_counter()
        rest = [client.get("/v1/leads", headers=bad_key(n)) for n in range(limit, 200)]
        elapsed = time.perf_counter() - started

    assert {r.status_code for r in rest} == {429}
    assert len(queries) == looked_up, "a locked-out address reached the database"
    assert (
        1
        <= int(rest[0].headers["Retry-After"])
        <= Limits.from_settings().failed_auth_window_seconds
    )
    assert "invalid API keys from your address" in rest[0].json()["detail"]
    # Refused in the middleware: well under a millisecond each in process, a few over HTTP.
    assert elapsed / len(rest) < 0.02, f"{elapsed / len(rest) * 1000:.1f} ms per refusal"


def test_a_good_key_keeps_working_while_another_address_is_locked_out(serve, team) -> None:
    base_url = served(serve)
    good = {"Authorization": f"Bearer {team.api_key}"}
    with from_second_address(base_url) as attacker, httpx.Client(base_url=base_url) as user:
        for n in range(Limits.from_settings().failed_auth_limit):
            assert attacker.get("/v1/teams/me", headers=bad_key(n)).status_code == 401
        # Locked out whatever it sends now, a good key included.
        assert attacker.get("/v1/teams/me", headers=good).status_code == 429
        # Bad keys from the user's own address, under the limit, lock nobody out...
        assert user.get("/v1/teams/me", headers=bad_key(0)).status_code == 401
        for _ in range(3):
            assert user.get("/v1/teams/me", headers=good).status_code == 200
        # ...and the user's successes do not reset the attacker's count.
        assert attacker.get("/v1/teams/me", headers=good).status_code == 429


def test_missing_and_malformed_keys_do_not_count_as_attempts(serve) -> None:
    base_url = served(serve, failed_auth_limit=2)
    with httpx.Client(base_url=base_url) as client:
        for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer a b"}) * 3:
            assert client.get("/v1/teams/me", headers=headers).status_code == 401


def test_per_key_limit_answers_429_then_recovers(serve, team, other_team) -> None:
    rate = 2.0
    base_url = served(serve, per_key_rate=rate, per_key_burst=2)
    with httpx.Client(base_url=base_url) as client:
        mine = {"Authorization": f"Bearer {team.api_key}"}
        assert [client.get("/v1/teams/me", headers=mine).status_code for _ in range(2)] == [200] * 2
        limited = client.get("/v1/teams/me", headers=mine)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"  # 0.5 s at 2/s, in whole seconds
        assert limited.json()["detail"].startswith("rate limit per API key exceeded")
        # Another team's key has its own bucket.
        theirs = {"Authorization": f"Bearer {other_team.api_key}"}
        assert client.get("/v1/teams/me", headers=theirs).status_code == 200

        time.sleep(1 / rate)
        assert client.get("/v1/teams/me", headers=mine).status_code == 200


def test_per_address_limit_covers_webhooks_and_spares_other_addresses(serve) -> None:
    rate = 2.0
    base_url = served(serve, per_address_rate=rate, per_address_burst=3)
    with httpx.Client(base_url=base_url) as client, from_second_address(base_url) as other:
        # Unsigned callbacks: 403 from the route while under the limit.
        answers = [client.post(STATUS_CALLBACK_PATH).status_code for _ in range(4)]
        assert answers == [403, 403, 403, 429]
        limited = client.post(STATUS_CALLBACK_PATH)
        assert limited.json()["detail"].startswith("rate limit per source address exceeded")
        assert limited.headers["Retry-After"] == "1"
        assert other.post(STATUS_CALLBACK_PATH).status_code == 403
        time.sleep(1 / rate)
        assert client.post(STATUS_CALLBACK_PATH).status_code == 403


def test_loopback_is_exempt_by_default(api_server) -> None:
    """The deployed default: local callers (a reverse proxy, the webhook bench) are never
    throttled per address, so hundreds of callbacks a second from 127.0.0.1 all reach the
    route."""
    burst = Limits.from_settings().per_address_burst
    with httpx.Client(base_url=api_server.base_url) as client:
        answers = {client.post(STATUS_CALLBACK_PATH).status_code for _ in range(burst + 50)}
    assert answers == {403}


def test_oversized_json_body_gets_413(client) -> None:
    template = "x" * MAX_BODY_BYTES
    response = client.post("/v1/campaigns", json={"name": "big", "template": template})
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"request body too large: at most {MAX_BODY_BYTES:,} bytes on this route"
    }
    form = {"MessageSid": "SM1", "Body": "x" * MAX_BODY_BYTES}
    assert client.post(STATUS_CALLBACK_PATH, data=form).status_code == 413


def test_oversized_body_without_content_length_gets_413(client) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"name": "big", "template": "'
        for _ in range(total // 4096):
            yield b"x" * 4096
        yield b'"}'

    # A generator: httpx sends it chunked, with no Content-Length for the shield to check.
    response = client.post("/v1/campaigns", content=chunks(2 * MAX_BODY_BYTES), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body too large")
    # The same for a form the route reads itself (Twilio's webhooks).
    form = iter([b"MessageSid=SM1&Body="] + [b"x" * 4096] * (MAX_BODY_BYTES // 4096 + 1))
    response = client.post(STATUS_CALLBACK_PATH, content=form, headers=FORM)
    assert response.status_code == 413

    # Under the cap, a chunked body goes through.
    small = iter([b'{"require_consent": ', b"false}"])
    response = client.patch("/v1/teams/me", content=small, headers=JSON)
    assert response.status_code == 200, response.text


def test_uploads_keep_their_own_limit(client, monkeypatch) -> None:

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 4 * MAX_BODY_BYTES)
    rows = b"".join(b"Acme %d,212555%04d\n" % (n, n) for n in range(MAX_BODY_BYTES // 16))
    csv = b"Company,Phone\n" + rows
    assert MAX_BODY_BYTES < len(csv) < 4 * MAX_BODY_BYTES
    files = {"file": ("l.csv", csv, "text/csv")}
    data = {"bucket_id": "ny-construction-plumbers"}
    assert client.post("/v1/uploads", files=files, data=data).status_code == 202
    too_big = {"file": ("l.csv", csv * 5, "text/csv")}
    response = client.post("/v1/uploads", files=too_big, data=data)
    assert response.status_code == 413
    assert "upload limit" in response.json()["detail"]
