"""The /v1 API over real HTTP on loopback: auth, tenant isolation, uploads, leads."""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from outreach_cli.cli import app as cli
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Upload
from outreach_core.leads.ids import reserve_lead_ids
from outreach_core.leads.scoring import base_score
from outreach_core.settings import get_settings
from outreach_core.teams import create_api_key, revoke_api_key
from tests.helpers import csv_bytes

CSV = csv_bytes([{"Company": "Acme", "Phone": "2125550100", "Email": "a@example.com"}])


def post_upload(client: httpx.Client, data: bytes = CSV, **fields: str) -> httpx.Response:
    fields = {"bucket_id": "ny-construction-plumbers", **fields}
    headers = {}
    if "idempotency_key" in fields:
        headers["Idempotency-Key"] = fields.pop("idempotency_key")
    return client.post(
        "/v1/uploads",
        files={"file": ("leads.csv", data, "text/csv")},
        data=fields,
        headers=headers,
    )


def uploads_count(team_id: uuid.UUID) -> int:
    with tenant_session(team_id) as s:
        return s.scalar(select(func.count()).select_from(Upload)) or 0


def test_upload_is_accepted_and_readable(client, team) -> None:
    response = post_upload(client, description="first list")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "received" and body["bucket_id"] == "ny-construction-plumbers"
    got = client.get(f"/v1/uploads/{body['upload_id']}")
    assert got.status_code == 200 and got.json()["description"] == "first list"


def test_upload_by_sic_code_picks_the_bucket(client) -> None:
    response = client.post(
        "/v1/uploads", files={"file": ("l.csv", CSV, "text/csv")}, data={"sic_code": "1711"}
    )
    assert response.status_code == 202, response.text
    assert "plumbers" in response.json()["bucket_id"] or "hvac" in response.json()["bucket_id"]


def test_unknown_bucket_is_404_with_suggestions(client, team) -> None:
    response = post_upload(client, bucket_id="ny-construction-plumber")
    assert response.status_code == 404
    assert "ny-construction-plumbers" in response.json()["suggestions"]
    assert uploads_count(team.team_id) == 0


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer ok_notarealkey", "Basic abc"])
def test_requests_without_a_valid_key_are_401(api_server, auth) -> None:
    headers = {"Authorization": auth} if auth else {}
    for method, path in [
        ("GET", "/v1/leads"),
        ("GET", f"/v1/uploads/{uuid.uuid4()}"),
        ("POST", "/v1/uploads"),
    ]:
        response = httpx.request(method, api_server.base_url + path, headers=headers)
        assert response.status_code == 401, (method, path)


def raw_request(base_url: str, head: bytes) -> tuple[int, bytes]:
    """Send `head` byte for byte (h11, under httpx, refuses some of these headers) and
    return the status and body. `Connection: close` makes the server end the stream."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer KEY\xa0",  # NO-BREAK SPACE after the key (latin-1, as a server reads it)
        b"Bearer \x85KEY",  # NEXT LINE before it
        "Bearer KEY\u2003".encode(),  # EM SPACE in UTF-8
        b"Bearer  KEY",
        b"Bearer\tKEY",
        b"BearerKEY",
        b"Token KEY",
        b"KEY",
        b"Bearer KEY,Bearer KEY",
    ],
)
def test_key_with_anything_around_it_is_401(api_server, team, header: bytes) -> None:
    url = f"{api_server.base_url}/v1/leads"
    assert httpx.get(url, headers={"Authorization": f"Bearer {team.api_key}"}).status_code == 200
    # httpx sends bytes as they are (str values would have to be ASCII).
    response = httpx.get(
        url, headers={"Authorization": header.replace(b"KEY", team.api_key.encode())}
    )
    assert response.status_code == 401, response.text
    # Our JSON, not the HTTP server's own refusal: the request reached the app.
    assert "malformed Authorization header" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("tail", [b" ", b"\t"])
def test_key_with_trailing_ascii_whitespace_is_401(api_server, team, tail) -> None:
    # httptools passes trailing spaces and tabs through to the app; h11 would not send them.
    status, body = raw_request(
        api_server.base_url,
        b"GET /v1/leads HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
        + team.api_key.encode()
        + tail
        + b"\r\n",
    )
    assert status == 401
    assert "malformed Authorization header" in json.loads(body)["detail"]


def test_two_authorization_headers_are_401(api_server, team) -> None:
    status, body = raw_request(
        api_server.base_url,
        b"GET /v1/leads HTTP/1.1\r\nHost: t\r\n"
        + (b"Authorization: Bearer %s\r\n" % team.api_key.encode()) * 2,
    )
    assert status == 401
    assert "more than one Authorization header" in json.loads(body)["detail"]


def test_scheme_is_case_insensitive(api_server, team) -> None:
    # RFC 9110 11.1: curl users write `bearer` too. Only the scheme is case-insensitive.
    for scheme in ("bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {team.api_key}"}
        assert httpx.get(f"{api_server.base_url}/v1/leads", headers=headers).status_code == 200
    swapped = {"Authorization": f"Bearer {team.api_key.swapcase()}"}
    assert httpx.get(f"{api_server.base_url}/v1/leads", headers=swapped).status_code == 401


def test_revoked_key_is_401(api_server, team) -> None:
    key = create_api_key(team.team_id, "temp")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{api_server.base_url}/v1/leads", headers=headers).status_code == 200
    assert revoke_api_key(team.team_id, key)
    assert httpx.get(f"{api_server.base_url}/v1/leads", headers=headers).status_code == 401


def test_other_teams_upload_is_404_like_a_missing_one(api_server, client, other_team) -> None:
    theirs = post_upload(client).json()["upload_id"]
    other = {"Authorization": f"Bearer {other_team.api_key}"}
    for suffix in ("", "/rejections", "/rejected.csv"):
        foreign = httpx.get(f"{api_server.base_url}/v1/uploads/{theirs}{suffix}", headers=other)
        missing = httpx.get(
            f"{api_server.base_url}/v1/uploads/{uuid.uuid4()}{suffix}", headers=other
        )
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()


def test_idempotency_key_makes_one_import(client, team) -> None:
    first = post_upload(client, idempotency_key="batch-42")
    second = post_upload(client, idempotency_key="batch-42")
    assert first.status_code == second.status_code == 202
    assert first.json()["upload_id"] == second.json()["upload_id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert uploads_count(team.team_id) == 1


def test_over_limit_upload_is_413_and_stores_nothing(client, team, monkeypatch) -> None:
    monkeypatch.setattr(get_settings(), "max_upload_bytes", 10_000)
    response = post_upload(client, data=b"Phone\n" + b"2125550100\n" * 5_000)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert uploads_count(team.team_id) == 0


def test_ten_thousand_form_fields_is_4xx(client, team) -> None:
    fields = [(f"f{i}", "x") for i in range(10_000)]
    response = client.post(
        "/v1/uploads", files=[("file", ("l.csv", CSV, "text/csv"))], data=dict(fields)
    )
    assert 400 <= response.status_code < 500
    assert uploads_count(team.team_id) == 0


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"content": b"Phone\n1\n", "headers": {"Content-Type": "text/csv"}},
            415,
            "got 'text/csv'",
        ),
        ({"data": {"bucket_id": "ny-construction-plumbers"}}, 415, "x-www-form-urlencoded"),
        ({"content": b"Phone\n1\n"}, 415, "got none"),
        (
            {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "no boundary",
        ),
        (
            {
                "content": b"--x\r\ngarbage",
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
            400,
            "multipart body",
        ),
    ],
)
def test_malformed_upload_requests_are_4xx(client, team, kwargs, status, message) -> None:
    response = client.post("/v1/uploads", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert uploads_count(team.team_id) == 0


def test_boundary_parameter_name_is_case_insensitive(client) -> None:
    body = (
        b'--x\r\nContent-Disposition: form-data; name="bucket_id"\r\n\r\n'
        b"ny-construction-plumbers\r\n"
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n\r\n'
        + CSV
        + b"\r\n--x--\r\n"
    )
    response = client.post(
        "/v1/uploads", content=body, headers={"Content-Type": "multipart/form-data; Boundary=x"}
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("bucket_id", "sic_code"),
    [
        ("ny-construction-plumbers", "1711"),  # the bucket's own code
        ("ny-construction-hvac", "1711"),  # a code two subsectors share
        ("ny-construction-plumbers", "1731"),  # same sector, another subsector
        ("ny-construction-plumbers", "1799.0"),  # as a spreadsheet writes it
        ("us-business-brokers-pe-business-brokers", "7389"),  # a code two sectors share
    ],
)
def test_matching_bucket_and_sic_code_lands_in_the_bucket(client, bucket_id, sic_code) -> None:
    response = post_upload(client, bucket_id=bucket_id, sic_code=sic_code)
    assert response.status_code == 202, response.text
    assert response.json()["bucket_id"] == bucket_id


def test_bucket_and_sic_code_of_different_sectors_is_422(client, team) -> None:
    response = post_upload(client, bucket_id="ny-construction-plumbers", sic_code="5812")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'ny-construction-plumbers' (sector construction)" in detail
    assert "'5812' (sector restaurants, bucket 'ny-restaurants-restaurants')" in detail
    unknown = post_upload(client, bucket_id="ny-construction-plumbers", sic_code="0711")
    assert unknown.status_code == 422
    assert "no bucket for SIC code '0711'" in unknown.json()["detail"]
    assert uploads_count(team.team_id) == 0


def test_cli_upload_refuses_bucket_and_sic_code_of_different_sectors(team, tmp_path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(CSV)
    args = ["upload", str(path), "--team", str(team.team_id)]
    result = CliRunner().invoke(
        cli, [*args, "--bucket", "ny-construction-plumbers", "--sic", "5812"]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "(sector construction) conflicts with sic_code '5812' (sector restaurants" in output
    assert uploads_count(team.team_id) == 0


def test_upload_without_file_or_bucket_is_422(client) -> None:
    no_file = client.post(
        "/v1/uploads", files={"other": ("x", b"y")}, data={"bucket_id": "ny-construction-plumbers"}
    )
    assert no_file.status_code == 422
    no_bucket = client.post("/v1/uploads", files={"file": ("l.csv", CSV, "text/csv")})
    assert no_bucket.status_code == 422


def _insert_leads(team_id: uuid.UUID, rows: list[dict]) -> None:
    first = reserve_lead_ids(team_id, len(rows))
    with tenant_session(team_id) as s:
        for i, r in enumerate(rows):
            s.execute(
                text(
                    "INSERT INTO leads (team_id, id, phone, email, city, state, bucket_id, "
                    "score) VALUES (:t, :id, :phone, :email, :city, :state, :bucket, :score)"
                ),
                {"t": team_id, "id": first + i, "score": base_score(), **r},
            )


def test_leads_filters_and_keyset_pagination(client, team, other_team) -> None:
    rows = [
        {
            "phone": f"+1212555{i:04d}",
            "email": None if i % 2 else f"l{i}@x.com",
            "city": "Brooklyn" if i < 5 else "Albany",
            "state": "NY",
            "bucket": "ny-construction-plumbers",
        }
        for i in range(12)
    ]
    _insert_leads(team.team_id, rows)
    _insert_leads(
        other_team.team_id,
        [
            {
                "phone": "+12125550000",
                "email": "theirs@x.com",
                "city": "Brooklyn",
                "state": "NY",
                "bucket": "ny-construction-plumbers",
            }
        ],
    )
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 5, **({"after": after} if after is not None else {})}
        page = client.get("/v1/leads", params=params).json()
        seen += [item["id"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert len(seen) == 12 and seen == sorted(seen)
    brooklyn = client.get("/v1/leads", params={"city": "brooklyn", "has_email": True}).json()
    # Three of ours; the other team's Brooklyn lead with the same phone is not listed.
    assert sorted(i["phone"] for i in brooklyn["items"]) == [
        "+12125550000",
        "+12125550002",
        "+12125550004",
    ]
    assert client.get("/v1/leads", params={"state": "TX"}).json()["items"] == []
    assert client.get("/v1/leads", params={"limit": 0}).status_code == 422


def test_datalake_listing_is_scoped_to_the_team(api_server, client, team, other_team) -> None:
    post_upload(client)
    other = {"Authorization": f"Bearer {other_team.api_key}"}
    their_upload = httpx.post(
        f"{api_server.base_url}/v1/uploads",
        headers=other,
        files={"file": ("theirs.csv", CSV, "text/csv")},
        data={"bucket_id": "ny-construction-plumbers"},
    )
    assert their_upload.status_code == 202
    mine = client.get("/v1/datalake/files").json()["keys"]
    assert mine and all(k.startswith("business/ny/") for k in mine)
    theirs = httpx.get(f"{api_server.base_url}/v1/datalake/files", headers=other).json()["keys"]
    assert theirs and not set(theirs) & set(mine)
    assert f"{their_upload.json()['upload_id']}.csv" not in " ".join(mine)
    for prefix in (
        "../",
        f"../team_{other_team.team_id}",
        "/etc",
        "business/../../x",
        "business\u2024\u2024/x",
        "business/\uff0e\uff0e/x",
    ):
        response = client.get("/v1/datalake/files", params={"prefix": prefix})
        assert response.status_code == 400, prefix


@pytest.mark.parametrize(
    "params",
    [{"city": "a\x00"}, {"bucket": "\x00"}, {"state": "N\x00"}, {"after": str(2**63)}],
)
def test_leads_filters_that_postgres_cannot_hold_are_422(client, params) -> None:
    response = client.get("/v1/leads", params=params)
    assert response.status_code == 422, response.text


def test_nul_in_description_is_422_and_stores_nothing(client, team) -> None:
    response = post_upload(client, description="bad\x00desc")
    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]
    assert uploads_count(team.team_id) == 0
    assert client.get("/v1/datalake/files").json()["keys"] == []


def test_truncated_or_absurd_multipart_bodies_are_400(client, team) -> None:
    truncated = (
        b'--x\r\nContent-Disposition: form-data; name="bucket_id"\r\n\r\n'
        b'ny-construction-plumbers\r\n--x\r\nContent-Disposition: form-data; name="file"; '
        b'filename="l.csv"\r\n\r\nPhone\n2125550100\n'
    )
    cut = client.post(
        "/v1/uploads",
        content=truncated,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert cut.status_code == 400 and "closing boundary" in cut.json()["detail"]
    huge_boundary = client.post(
        "/v1/uploads",
        content=b"--" + b"a" * 5000,
        headers={"Content-Type": "multipart/form-data; boundary=" + "a" * 5000},
    )
    assert huge_boundary.status_code == 400
    assert uploads_count(team.team_id) == 0


def test_idempotency_key_reused_for_another_file_is_422(client, team) -> None:
    assert post_upload(client, idempotency_key="k-1").status_code == 202
    other = post_upload(client, data=CSV + b"Other,2125550111,\n", idempotency_key="k-1")
    assert other.status_code == 422
    assert "different file" in other.json()["detail"]
    assert uploads_count(team.team_id) == 1
