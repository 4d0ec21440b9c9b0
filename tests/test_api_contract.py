"""The OpenAPI document tells the truth: every status the API answers is documented for its
route, and every error body over HTTP validates against the documented schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
import pytest
from jsonschema import Draft202012Validator

from outreach_api.limits import TOO_LARGE, TOO_MANY_REQUESTS, Limits, with_limits
from outreach_api.main import create_app
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CampaignStatus, CampaignType, Channel, ReviewStatus
from outreach_core.db.tables import SendingNumber
from outreach_core.inbox.processing import Inbound, process, store
from outreach_core.inbox.queries import list_reviews, reject_review
from outreach_core.messaging.campaigns import NewCampaign, create_campaign, transition
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.settings import get_settings
from tests.helpers import fresh_sending_number

CSV = b"Company,Phone\nAcme,2125550100\n"
UPLOAD_LIMIT = 10_000
PLUMBERS = "ny-construction-plumbers"
MULTIPART_X = {"Content-Type": "multipart/form-data; boundary=x"}
JSON = {"Content-Type": "application/json"}


# Values for path parameters when any well-formed one will do.
PLACEHOLDERS = {
    "upload_id": str(uuid.uuid4()),
    "bucket_id": "ny-construction-plumbers",
    "campaign_id": str(uuid.uuid4()),
    "phone": "+12125550199",
    "item_id": str(uuid.uuid4()),
    "review_id": str(uuid.uuid4()),
    "name": "no-such-workflow",
    "execution_id": str(uuid.uuid4()),
    "task_id": str(uuid.uuid4()),
    "lead_id": "999999999",
}
NOT_A_UUID = {"upload_id": "not-a-uuid"}
NOT_A_CAMPAIGN = {"campaign_id": "not-a-uuid"}


class Case(NamedTuple):
    status: int
    method: str
    path: str  # as documented
    request: dict[str, Any] = {}
    path_params: dict[str, str] = {}
    # Makes what the case needs in the caller's team (a campaign in some status): the
    # path parameters it returns go into the URL.
    prepare: Callable[[Any], dict[str, str]] | None = None

    @property
    def url(self) -> str:
        return self.path.format(**{**PLACEHOLDERS, **self.path_params})


def campaign_in(*path: CampaignStatus) -> Callable[[Any], dict[str, str]]:
    """A draft SMS campaign of the team (no number), then moved along `path`."""

    def prepare(team: Any) -> dict[str, str]:
        new = NewCampaign("c", CampaignType.SMS, LeadSelection(), "Hi")
        campaign = create_campaign(team.team_id, new, "test").campaign
        for status in path:
            transition(team.team_id, campaign.id, status, "test")
        return {"campaign_id": str(campaign.id)}

    return prepare


def decided_review(team: Any) -> dict[str, str]:
    """A reply that came in at night (so it waits as a review), then rejected."""
    number = fresh_sending_number()
    with tenant_session(team.team_id) as session:
        session.add(SendingNumber(team_id=team.team_id, id=uuid.uuid4(), phone_number=number))
    inbound = Inbound(f"SM{uuid.uuid4().hex}", Channel.SMS, "+12125550123", number, "interested!")
    stored = store(inbound)
    assert stored is not None and stored.inbound_id is not None
    process(team.team_id, stored.inbound_id, inline=True, now=datetime(2026, 12, 4, 3, tzinfo=UTC))
    (review,) = list_reviews(team.team_id, ReviewStatus.PENDING, 10)
    reject_review(team.team_id, review.id, "test")
    return {"review_id": str(review.id)}


def pending_execution(team: Any) -> dict[str, str]:
    """A question from a contact, scheduled for a task by the default workflow: pending,
    not waiting for approval."""
    from outreach_core.workflows.executions import list_executions
    from outreach_core.workflows.tick import evaluate_team

    number = fresh_sending_number()
    with tenant_session(team.team_id) as session:
        session.add(SendingNumber(team_id=team.team_id, id=uuid.uuid4(), phone_number=number))
    now = datetime.now(UTC)
    inbound = Inbound(f"SM{uuid.uuid4().hex}", Channel.SMS, "+12125550124", number, "how much?")
    stored = store(inbound)
    assert stored is not None and stored.inbound_id is not None
    process(team.team_id, stored.inbound_id, inline=True, now=now)
    evaluate_team(team.team_id, now)
    (execution,) = list_executions(team.team_id)
    return {"execution_id": str(execution.id)}


def upload(file: bytes = CSV, **fields: str) -> dict[str, Any]:
    return {"files": {"file": ("l.csv", file, "text/csv")}, "data": fields}


# At least one request per error status each route documents, except 401, which
# test_every_keyed_route_answers_401_as_documented sends to every route.
CASES = [
    Case(400, "post", "/v1/uploads", {"content": b"--x\r\ngarbage", "headers": MULTIPART_X}),
    Case(404, "post", "/v1/uploads", upload(bucket_id="ny-construction-plumber")),
    Case(413, "post", "/v1/uploads", upload(b"x" * (UPLOAD_LIMIT + 1), bucket_id=PLUMBERS)),
    Case(415, "post", "/v1/uploads", {"content": CSV, "headers": {"Content-Type": "text/csv"}}),
    Case(422, "post", "/v1/uploads", upload(bucket_id=PLUMBERS, sic_code="5812")),
    Case(422, "post", "/v1/uploads", upload()),
    Case(404, "get", "/v1/uploads/{upload_id}"),
    Case(422, "get", "/v1/uploads/{upload_id}", path_params=NOT_A_UUID),
    Case(404, "get", "/v1/uploads/{upload_id}/rejections"),
    Case(422, "get", "/v1/uploads/{upload_id}/rejections", {"params": {"limit": 0}}),
    Case(404, "get", "/v1/uploads/{upload_id}/rejected.csv"),
    Case(422, "get", "/v1/uploads/{upload_id}/rejected.csv", path_params=NOT_A_UUID),
    Case(422, "get", "/v1/leads", {"params": {"limit": 0}}),
    Case(422, "get", "/v1/leads", {"params": {"city": "a\x00"}}),
    Case(404, "get", "/v1/leads/{lead_id}/score-events"),
    Case(404, "patch", "/v1/leads/{lead_id}", {"json": {"status": "deal"}}),
    Case(422, "patch", "/v1/leads/{lead_id}", {"json": {"status": "won"}}),
    Case(422, "get", "/v1/leads/{lead_id}/score-events", path_params={"lead_id": "-1"}),
    Case(422, "get", "/v1/buckets", {"params": {"state": "nyc"}}),
    Case(404, "get", "/v1/buckets/{bucket_id}", path_params={"bucket_id": "ny-plumbers"}),
    Case(422, "get", "/v1/buckets/{bucket_id}", path_params={"bucket_id": "x" * 121}),
    Case(400, "get", "/v1/datalake/files", {"params": {"prefix": "../"}}),
    Case(422, "get", "/v1/datalake/files", {"params": {"prefix": "x" * 501}}),
    Case(422, "get", "/v1/costs", {"params": {"period": "2026-13"}}),  # our check
    Case(422, "get", "/v1/costs", {"params": {"period": "May"}}),  # FastAPI's
    Case(422, "post", "/v1/campaigns", {"json": {"name": "x", "template": "{{nope}}"}}),
    Case(422, "get", "/v1/campaigns", {"params": {"status": "running"}}),
    Case(404, "get", "/v1/campaigns/{campaign_id}"),
    Case(422, "get", "/v1/campaigns/{campaign_id}", path_params=NOT_A_CAMPAIGN),
    Case(404, "get", "/v1/reports/campaigns/{campaign_id}"),
    Case(422, "get", "/v1/reports/campaigns/{campaign_id}", path_params=NOT_A_CAMPAIGN),
    *(
        case
        for action, conflict in (
            ("schedule", campaign_in()),  # no sending number
            ("pause", campaign_in()),  # a draft is not sending
            ("resume", campaign_in(CampaignStatus.SCHEDULED)),  # not paused
            ("cancel", campaign_in(CampaignStatus.CANCELLED)),  # final
        )
        for case in (
            Case(404, "post", f"/v1/campaigns/{{campaign_id}}/{action}"),
            Case(409, "post", f"/v1/campaigns/{{campaign_id}}/{action}", prepare=conflict),
            Case(
                422, "post", f"/v1/campaigns/{{campaign_id}}/{action}", path_params=NOT_A_CAMPAIGN
            ),
        )
    ),
    Case(422, "get", "/v1/schedule", {"params": {"limit": 0}}),
    Case(422, "patch", "/v1/teams/me", {"json": {"require_consent": "maybe"}}),
    Case(422, "post", "/v1/consents", {"json": {"phones": ["12"], "source": "x"}}),  # ours
    # Not UTF-8: FastAPI's 400 "error parsing the body", made the 422 of malformed JSON.
    Case(422, "post", "/v1/consents", {"content": b'{"phones": ["\xff"]}', "headers": JSON}),
    Case(404, "delete", "/v1/consents/{phone}"),
    Case(422, "delete", "/v1/consents/{phone}", path_params={"phone": "x" * 33}),
    Case(422, "get", "/v1/inbox", {"params": {"limit": 0}}),
    Case(422, "get", "/v1/inbox", {"params": {"after": "page-two"}}),  # ours
    Case(404, "post", "/v1/inbox/{item_id}/move", {"json": {"bucket": "dnc"}}),
    Case(422, "post", "/v1/inbox/{item_id}/move", {"json": {"bucket": "spam"}}),
    Case(404, "post", "/v1/inbox/{item_id}/status", {"json": {"status": "read"}}),
    Case(422, "post", "/v1/inbox/{item_id}/status", {"json": {"status": "done"}}),
    Case(404, "get", "/v1/conversations/{phone}"),
    Case(422, "get", "/v1/conversations/{phone}", path_params={"phone": "call-me"}),
    Case(422, "get", "/v1/reviews", {"params": {"limit": 0}}),
    Case(404, "post", "/v1/reviews/{review_id}/approve", {"json": {}}),
    Case(409, "post", "/v1/reviews/{review_id}/approve", {"json": {}}, prepare=decided_review),
    Case(422, "post", "/v1/reviews/{review_id}/approve", {"json": {"alternative": 7}}),
    Case(404, "post", "/v1/reviews/{review_id}/reject"),
    Case(409, "post", "/v1/reviews/{review_id}/reject", prepare=decided_review),
    Case(422, "post", "/v1/reviews/{review_id}/reject", path_params={"review_id": "x"}),
    Case(422, "post", "/v1/teams/me/pause-automation", {"json": {"reason": 5}}),
    *(
        case
        for switch in ("enable", "disable")
        for case in (
            Case(404, "post", f"/v1/workflows/{{name}}/{switch}"),
            Case(422, "post", f"/v1/workflows/{{name}}/{switch}", path_params={"name": "a b"}),
        )
    ),
    Case(422, "get", "/v1/workflow-executions", {"params": {"approval": "maybe"}}),
    *(
        case
        for decision in ("approve", "reject")
        for case in (
            Case(404, "post", f"/v1/workflow-executions/{{execution_id}}/{decision}"),
            Case(
                409,
                "post",
                f"/v1/workflow-executions/{{execution_id}}/{decision}",
                prepare=pending_execution,
            ),
            Case(
                422,
                "post",
                f"/v1/workflow-executions/{{execution_id}}/{decision}",
                path_params={"execution_id": "x"},
            ),
        )
    ),
    Case(422, "get", "/v1/tasks", {"params": {"limit": 0}}),
    Case(404, "post", "/v1/tasks/{task_id}/done"),
    Case(422, "post", "/v1/tasks/{task_id}/done", path_params={"task_id": "x"}),
]


@pytest.fixture(scope="module")
def openapi(api_server) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = httpx.get(f"{api_server.base_url}/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()
    ]


def documented_schema(
    openapi: dict[str, Any], method: str, path: str, status: int
) -> dict[str, Any]:
    responses = openapi["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; $refs resolve against the document root.
    return {**schema, "components": openapi["components"]}


def assert_matches(
    openapi: dict[str, Any], method: str, path: str, response: httpx.Response
) -> None:
    assert response.headers["content-type"] == "application/json"
    schema = documented_schema(openapi, method, path, response.status_code)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(response.json())]
    assert not errors, (method, path, response.status_code, response.json(), errors)


def test_every_route_documents_its_errors(openapi) -> None:
    ops = operations(openapi)
    assert ops
    for method, path, op in ops:
        responses = op["responses"]
        assert path.startswith("/v1/") and op.get("security") == [{"HTTPBearer": []}], path
        assert "401" in responses, (method, path)
        # The shield (outreach_api.limits) answers these on any /v1 route.
        assert {"413", "429"} <= set(responses), (method, path)
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                # Every error body, whatever its status, carries a readable `detail`.
                schema = response["content"]["application/json"]["schema"]
                refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
                for ref in refs:
                    model = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]
                    assert model["properties"]["detail"]["type"] == "string", (path, status)
                    assert "detail" in model["required"]
    upload = openapi["paths"]["/v1/uploads"]["post"]["responses"]
    assert {"400", "404", "413", "415", "422"} <= set(upload)
    assert openapi["paths"]["/v1/datalake/files"]["get"]["responses"].keys() >= {"400"}
    assert openapi["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A team API key: `Authorization: Bearer ok_...`",
    }


def test_every_documented_error_has_a_case_here(openapi) -> None:
    """Keeps CASES honest: a status documented but never provoked is untested (or false).
    The shield's 413 and 429, the same on every route, are left to
    test_every_route_answers_the_shields_errors_as_documented, as 401 is left to
    test_every_keyed_route_answers_401_as_documented."""
    shields = {TOO_LARGE, TOO_MANY_REQUESTS}
    documented = {
        (method, path, int(status))
        for method, path, op in operations(openapi)
        for status, response in op["responses"].items()
        if int(status) >= 400 and status != "401" and response["description"] not in shields
    }
    provoked = {(case.method, case.path, case.status) for case in CASES}
    assert documented == provoked


@pytest.mark.parametrize("case", CASES, ids=[f"{c.status}-{c.method}-{c.url[:50]}" for c in CASES])
def test_each_error_status_matches_its_documented_schema(
    openapi, client, team, monkeypatch, case: Case
) -> None:
    monkeypatch.setattr(get_settings(), "max_upload_bytes", UPLOAD_LIMIT)
    url = case.url
    if case.prepare is not None:
        url = case.path.format(**{**PLACEHOLDERS, **case.prepare(team)})
    response = client.request(case.method, url, **case.request)
    assert response.status_code == case.status, response.text
    assert_matches(openapi, case.method, case.path, response)


def test_every_keyed_route_answers_401_as_documented(openapi, api_server, team) -> None:
    bad = {
        "none": {},
        "revoked or unknown": {"Authorization": "Bearer ok_" + "A" * 43},
        "whitespace": {"Authorization": f"Bearer {team.api_key}\xa0".encode("latin-1")},
    }
    for method, path, _ in operations(openapi):
        url = api_server.base_url + path.format(**PLACEHOLDERS)
        for name, headers in bad.items():
            response = httpx.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, name)
            assert_matches(openapi, method, path, response)


def test_every_route_answers_the_shields_errors_as_documented(openapi, api_server, serve) -> None:
    ops = operations(openapi)
    # 413 over HTTP, before the route runs (so no key is needed): any body over the cap.
    too_large = b"x" * (get_settings().api_max_body_bytes + 1)
    json_body = {"Content-Type": "application/json"}
    for method, path, op in ops:
        if op["responses"]["413"]["description"] != TOO_LARGE:
            continue  # a route's own limit (uploads), provoked in CASES
        url = api_server.base_url + path.format(**PLACEHOLDERS)
        response = httpx.request(method, url, content=too_large, headers=json_body)
        assert response.status_code == 413, (method, path)
        assert_matches(openapi, method, path, response)

    # 429: the shared server's loopback callers are exempt from per-address limits, so an
    # app that exempts no one, locked out for 127.0.0.1 by bad keys, answers every route.
    limits = Limits.from_settings(exempt_addresses=frozenset())
    server = serve(with_limits(create_app(), limits))
    bad_key = {"Authorization": "Bearer ok_" + "A" * 43}
    for _ in range(limits.failed_auth_limit):
        assert httpx.get(f"{server.base_url}/v1/teams/me", headers=bad_key).status_code == 401
    for method, path, _ in ops:
        response = httpx.request(method, server.base_url + path.format(**PLACEHOLDERS))
        assert response.status_code == 429, (method, path)
        assert int(response.headers["Retry-After"]) >= 1
        assert_matches(openapi, method, path, response)


def test_validation_errors_name_the_parameter(client) -> None:
    body = client.get("/v1/leads", params={"limit": 0, "min_score": 101}).json()
    assert [e["loc"] for e in body["errors"]] == [["query", "min_score"], ["query", "limit"]]
    assert body["detail"].startswith("query.min_score: Input should be less than or equal to 100")
    assert "query.limit:" in body["detail"]
