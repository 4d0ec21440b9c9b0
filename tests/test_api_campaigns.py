"""/v1/campaigns over HTTP: create (leads enrolled, left-out counts by reason), watch,
pause/resume/cancel with the machine's rules, the calendar; another team sees nothing."""

from __future__ import annotations

import uuid

import httpx

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MessageStatus, PhoneFlag
from outreach_core.db.tables import PhoneFlagRow, SendingNumber
from tests.test_enrolment import add_leads

TEMPLATE = "Hi {{firstName|there}}, still doing plumbing in {{city|your area}}?"


def number(team_id, phone: str = "+12125559000"):  # type: ignore[no-untyped-def]
    with tenant_session(team_id) as session:
        row = SendingNumber(team_id=team_id, id=uuid.uuid4(), phone_number=phone)
        session.add(row)
    return row.id


def test_create_watch_and_control_a_campaign(client: httpx.Client, team) -> None:
    add_leads(
        team.team_id,
        [
            {"first_name": "Ann", "phone": "+12125550601", "city": "Brooklyn"},
            {"first_name": "Bo", "phone": "+12125550602"},
            {"first_name": "Cy", "phone": None},
            {"first_name": "Di", "phone": "+12125550604"},
        ],
    )
    with tenant_session(team.team_id) as session:
        session.add(
            PhoneFlagRow(
                team_id=team.team_id,
                phone="+12125550604",
                flag=PhoneFlag.SUPPRESSED,
                reason="STOP",
            )
        )
    sender = number(team.team_id)

    created = client.post(
        "/v1/campaigns",
        json={
            "name": "Spring plumbers",
            "selection": {"bucket_id": "ny-construction-plumbers"},
            "template": TEMPLATE,
            "sending_number_id": str(sender),
            "budget": "25.00",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["added"] == 2
    assert body["left_out"] == {"no_phone": 1, "suppressed": 1}
    campaign = body["campaign"]
    assert (campaign["status"], campaign["daily_limit"], campaign["persona"]) == (
        "draft",
        500,
        "sabrina_default",
    )
    cid = campaign["id"]

    assert client.post(f"/v1/campaigns/{cid}/resume").status_code == 409
    assert client.post(f"/v1/campaigns/{cid}/schedule").json()["status"] == "scheduled"
    # Resume only resumes a paused campaign; it does not start a scheduled one early.
    refused = client.post(f"/v1/campaigns/{cid}/resume")
    assert refused.status_code == 409
    assert "scheduled" in refused.json()["detail"]
    paused = client.post(f"/v1/campaigns/{cid}/pause", json={"reason": "client asked"})
    assert (paused.json()["status"], paused.json()["status_reason"]) == ("paused", "client asked")
    assert client.post(f"/v1/campaigns/{cid}/resume").json()["status"] == "active"

    detail = client.get(f"/v1/campaigns/{cid}").json()
    assert detail["counts"] == {
        "queued": 2,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "cancelled": 0,
        "blocked": {},
        "spend": "0",
    }
    calendar = client.get("/v1/schedule").json()
    assert [(u["campaign_id"], u["messages"]) for u in calendar] == [(cid, 2)]
    assert [c["id"] for c in client.get("/v1/campaigns").json()] == [cid]

    cancelled = client.post(f"/v1/campaigns/{cid}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    counts = client.get(f"/v1/campaigns/{cid}").json()["counts"]
    assert (counts["queued"], counts["cancelled"]) == (0, 2)
    assert client.get("/v1/schedule").json() == []
    final = client.post(f"/v1/campaigns/{cid}/pause")
    assert final.status_code == 409 and "final" in final.json()["detail"]


def test_bad_campaigns_are_refused_with_the_reason(client: httpx.Client) -> None:
    unknown = client.post(
        "/v1/campaigns", json={"name": "x", "template": "Hi {{firstname}}", "selection": {}}
    )
    assert unknown.status_code == 422
    assert "firstName" in unknown.json()["detail"]
    bad_selection = client.post(
        "/v1/campaigns", json={"name": "x", "template": "Hi", "selection": {"colour": "red"}}
    )
    assert bad_selection.status_code == 422
    assert "colour" in bad_selection.json()["detail"]
    email = client.post("/v1/campaigns", json={"name": "x", "type": "email", "template": "Hi"})
    assert email.status_code == 201
    refused = client.post(f"/v1/campaigns/{email.json()['campaign']['id']}/schedule")
    assert refused.status_code == 409
    assert "email campaigns cannot send yet" in refused.json()["detail"]


def test_another_teams_campaign_is_not_found(client: httpx.Client, api_server, other_team) -> None:
    with httpx.Client(
        base_url=api_server.base_url,
        headers={"Authorization": f"Bearer {other_team.api_key}"},
        timeout=30,
    ) as theirs:
        created = theirs.post("/v1/campaigns", json={"name": "theirs", "template": "Hi"})
    cid = created.json()["campaign"]["id"]
    assert client.get(f"/v1/campaigns/{cid}").status_code == 404
    assert client.post(f"/v1/campaigns/{cid}/cancel").status_code == 404
    assert cid not in [c["id"] for c in client.get("/v1/campaigns").json()]


def test_a_cancelled_campaigns_messages_are_never_sent(team) -> None:
    from outreach_core.db.states import CampaignStatus
    from outreach_core.messaging.campaigns import create_campaign, transition
    from tests.test_enrolment import campaign, outbox

    add_leads(team.team_id, [{"first_name": "Ann", "phone": "+12125550701"}])
    created = create_campaign(team.team_id, campaign(), actor="ann").campaign
    transition(team.team_id, created.id, CampaignStatus.CANCELLED, "ann")
    assert [m.status for m in outbox(team.team_id, created.id)] == [MessageStatus.CANCELLED]


def test_a_number_is_bought_in_the_leads_area_code_or_the_campaign_says_why(
    client: httpx.Client, team, api_server, monkeypatch
) -> None:
    from pydantic import SecretStr

    from outreach_core.sandbox.twilio import (
        SANDBOX_ACCOUNT_SID,
        SANDBOX_AUTH_TOKEN,
        SandboxTwilio,
    )
    from outreach_core.settings import get_settings

    add_leads(
        team.team_id,
        [
            {"first_name": "Ann", "phone": "+13125550801", "state": "IL"},
            {"first_name": "Bo", "phone": "+13125550802", "state": "IL"},
            {"first_name": "Cy", "phone": "+12125550803", "state": "NY"},
        ],
    )
    with SandboxTwilio() as sandbox:
        settings = get_settings()
        monkeypatch.setattr(settings, "twilio_account_sid", SecretStr(SANDBOX_ACCOUNT_SID))
        monkeypatch.setattr(settings, "twilio_auth_token", SecretStr(SANDBOX_AUTH_TOKEN))
        monkeypatch.setattr(settings, "twilio_base_url", sandbox.base_url)
        body = {"name": "Chicago", "template": "Hi {{firstName}}", "provision_number": True}

        bought = client.post("/v1/campaigns", json=body).json()["campaign"]
        assert bought["sending_number_id"] and bought["status_reason"] is None
        with tenant_session(team.team_id) as session:
            number_id = uuid.UUID(bought["sending_number_id"])
            number = session.get(SendingNumber, (team.team_id, number_id))
        assert number is not None and number.phone_number.startswith("+1312")
        assert sandbox.owned_numbers() == [number.phone_number]
        assert client.post(f"/v1/campaigns/{bought['id']}/schedule").status_code == 200

        # No number in the area code: no placeholder, the campaign says why and cannot start.
        none_left = client.post("/v1/campaigns", json={**body, "area_code": "533"}).json()
        failed = none_left["campaign"]
        assert failed["sending_number_id"] is None and failed["status"] == "draft"
        assert "533" in failed["status_reason"]
        refused = client.post(f"/v1/campaigns/{failed['id']}/schedule")
        assert refused.status_code == 409
        assert len(sandbox.owned_numbers()) == 1
