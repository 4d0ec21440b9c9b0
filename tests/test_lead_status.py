"""A person (or their CRM) says where a lead stands after contact; the analytics funnel
counts qualified, meeting and deal from it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from outreach_core.db.engine import tenant_session
from tests.test_enrolment import add_leads


def test_a_lead_status_is_set_listed_and_checked(team, other_team, client, api_server) -> None:
    (lead_id,) = add_leads(team.team_id, [{"first_name": "Ann", "phone": "+12125550001"}])
    assert client.patch(f"/v1/leads/{lead_id}", json={"status": "deal"}).json()["status"] == "deal"
    (listed,) = client.get("/v1/leads").json()["items"]
    assert (listed["id"], listed["status"]) == (lead_id, "deal")

    unknown = client.patch(f"/v1/leads/{lead_id}", json={"status": "won"})
    assert unknown.status_code == 422 and "status" in unknown.text
    assert client.patch("/v1/leads/999999", json={"status": "lost"}).status_code == 404
    # Another team's key finds no such lead, and changes nothing.
    other = httpx.patch(
        f"{api_server.base_url}/v1/leads/{lead_id}",
        json={"status": "lost"},
        headers={"Authorization": f"Bearer {other_team.api_key}"},
    )
    assert other.status_code == 404
    assert client.get("/v1/leads").json()["items"][0]["status"] == "deal"


def test_the_database_refuses_a_status_outside_the_set(team) -> None:
    (lead_id,) = add_leads(team.team_id, [{"first_name": "Bo", "phone": "+12125550002"}])
    with pytest.raises(IntegrityError), tenant_session(team.team_id) as session:
        session.execute(
            text("UPDATE leads SET status = 'hot' WHERE team_id = :t AND id = :id"),
            {"t": team.team_id, "id": lead_id},
        )
