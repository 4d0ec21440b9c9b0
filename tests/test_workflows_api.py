"""The follow-ups over HTTP: workflows and their switches, the team's automation kill switch,
the schedule beside campaign sends, approvals and tasks."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from outreach_core.workflows.executor import run_due
from tests.test_workflows import HOUR, LEAD, World

# Relative to the real clock: these go through the API, whose code reads it.
NOW = datetime.now(UTC).replace(microsecond=0)


def test_workflows_are_listed_and_switched_off_and_on(client: httpx.Client, team) -> None:
    listed = client.get("/v1/workflows").json()
    assert [w["name"] for w in listed] == [
        "ask-for-email",
        "hot-lead-callback",
        "report-check",
        "unanswered-question",
    ]
    assert all(w["enabled"] and w["source"] == "defaults" for w in listed)

    world = World(team.team_id)
    world.reply("yes I'm interested", NOW)
    world.tick(NOW)
    off = client.post("/v1/workflows/ask-for-email/disable")
    assert off.status_code == 200
    assert (off.json()["enabled"], off.json()["cancelled"]) == (False, 1)
    cancelled = client.get("/v1/workflow-executions", params={"status": "cancelled"}).json()
    assert [(e["workflow"], e["reason"]) for e in cancelled] == [
        ("ask-for-email", "workflow_disabled: by api")
    ]
    on = client.post("/v1/workflows/ask-for-email/enable").json()
    assert (on["enabled"], on["cancelled"]) == (True, 0)
    missing = client.post("/v1/workflows/no-such/disable")
    assert missing.status_code == 404 and "no-such" in missing.json()["detail"]


def test_the_schedule_shows_follow_ups_beside_campaign_sends(client: httpx.Client, team) -> None:
    world = World(team.team_id)  # its campaign has one message due
    world.reply("", NOW, voice=True)
    world.tick(NOW)
    calendar = client.get("/v1/schedule").json()
    kinds = [entry["kind"] for entry in calendar]
    assert kinds.count("campaign_send") == 1 and kinds.count("workflow_execution") == 2
    send = next(e for e in calendar if e["kind"] == "campaign_send")
    assert send["campaign_id"] == str(world.campaign_id) and send["messages"] == 1
    steps = [e for e in calendar if e["kind"] == "workflow_execution"]
    assert [e["what"] for e in steps] == ["create_task", "notify_team"]
    for step in steps:
        assert step["who"] == f"{LEAD} (Ann)" and step["workflow"] == "hot-lead-callback"
        assert datetime.fromisoformat(step["at"]) == NOW + 2 * HOUR
        assert step["why"].startswith("workflow hot-lead-callback: called-phone-line")
        assert step["status"] == "pending"


def test_the_team_kill_switch_over_http(client: httpx.Client, team) -> None:
    paused = client.post("/v1/teams/me/pause-automation", json={"reason": "wrong template"})
    assert paused.status_code == 200
    body = paused.json()
    assert body["automation_paused_by"] == "api"
    assert body["automation_paused_reason"] == "wrong template"
    assert body["automation_paused_at"] is not None
    assert client.get("/v1/teams/me").json()["automation_paused_at"] == body["automation_paused_at"]

    world = World(team.team_id)
    world.reply("how much?", NOW - 2 * HOUR)
    world.tick(NOW - 2 * HOUR)
    stats = run_due(team.team_id)
    assert stats.completed == 0 and "wrong template" in (stats.stopped or "")

    resumed = client.post("/v1/teams/me/resume-automation").json()
    assert resumed["automation_paused_at"] is None and resumed["automation_paused_by"] is None
    assert run_due(team.team_id).completed == 1
    (task,) = client.get("/v1/tasks").json()
    assert task["priority"] == "warm" and task["contact_phone"] == LEAD
    done = client.post(f"/v1/tasks/{task['id']}/done").json()
    assert (done["status"], done["done_by"]) == ("done", "api")
    assert client.get("/v1/tasks").json() == []


def test_a_follow_up_is_approved_or_rejected_over_http(client: httpx.Client, team) -> None:
    world = World(team.team_id)
    for phone in (LEAD, "+12125550002"):
        world.reply("yes I'm interested", NOW - 3 * HOUR, phone=phone)
    world.tick(NOW - 3 * HOUR)
    assert run_due(team.team_id).awaiting_approval == 2
    waiting = client.get("/v1/workflow-executions", params={"approval": "awaiting"}).json()
    assert len(waiting) == 2 and {e["reason"] for e in waiting} == {"awaiting_approval"}
    first, second = waiting

    approved = client.post(f"/v1/workflow-executions/{first['id']}/approve")
    assert approved.status_code == 200 and approved.json()["approval"] == "approved"
    again = client.post(f"/v1/workflow-executions/{first['id']}/approve")
    assert again.status_code == 409 and "not awaiting approval" in again.json()["detail"]
    rejected = client.post(f"/v1/workflow-executions/{second['id']}/reject").json()
    assert (rejected["status"], rejected["reason"]) == ("cancelled", "rejected by api")

    # 03:00 in New York or not, the approved one runs through the guardrails.
    stats = run_due(team.team_id, clock=lambda: datetime(2026, 12, 4, 15, tzinfo=UTC))
    assert stats.completed == 1
    assert client.post(f"/v1/workflow-executions/{first['id']}/reject").status_code == 409


def test_another_teams_executions_and_tasks_are_not_found(client: httpx.Client, other_team) -> None:
    world = World(other_team.team_id)
    world.reply("yes I'm interested", NOW - 3 * HOUR)
    world.tick(NOW - 3 * HOUR)
    run_due(other_team.team_id, clock=lambda: datetime(2026, 12, 4, 15, tzinfo=UTC))
    theirs = world.executions()[0]
    answer = client.post(f"/v1/workflow-executions/{theirs.id}/approve")
    assert answer.status_code == 404
    assert client.get("/v1/workflow-executions").json() == []
    assert client.get("/v1/schedule").json() == []
