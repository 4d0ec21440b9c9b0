"""Each workflow action does its work once, whatever happens around it: an email through the
sandbox SMTP server (retried after a passing refusal, with the same Message-ID), a bucket
movement recorded like a person's, a tag, a lead score event, a team notification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import ExecutionStatus, ResponseBucket
from outreach_core.db.tables import BucketMovement, InboxItem, Lead, LeadScoreEvent
from outreach_core.deliverables.email import SmtpConfig
from outreach_core.sandbox.smtp import SandboxSmtp
from outreach_core.workflows.executor import run_due
from tests.test_workflows import HOUR, LEAD, MORNING_IN_NY, World, fast_rate, only  # noqa: F401

EVERYTHING = """
workflows:
  - name: all-in
    trigger: {classification: interested, hours_since_last_inbound: 1}
    steps:
      - action: send_email
        subject: "Hello {{firstName|there}}"
        text: "The details, {{firstName|friend}}."
      - {action: move_to_bucket, bucket: email-captures, reason: "waiting for their email"}
      - {action: tag_lead, tag: followed-up}
      - {action: update_lead_score, event: followed_up, delta: 5}
      - {action: notify_team, text: "{first_name} ({contact}) said: {message}"}
"""


@pytest.fixture
def smtp() -> SandboxSmtp:  # type: ignore[misc]
    with SandboxSmtp() as server:
        yield server


def config(server: SandboxSmtp) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, sender="Team <team@example.com>")


def test_every_action_does_its_work_once(team, smtp: SandboxSmtp) -> None:
    world = World(team.team_id, {"first_name": "Ann", "phone": LEAD, "email": "ann@example.com"})
    world.apply(EVERYTHING)
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    due = MORNING_IN_NY + HOUR
    stats = run_due(team.team_id, smtp=config(smtp), clock=lambda: due)
    steps = world.executions("all-in")
    assert stats.completed == 5, [(e.action, e.status, e.reason) for e in steps]

    (email,) = smtp.received
    assert email.rcpt_tos == ("ann@example.com",)
    assert email.message["Subject"] == "Hello Ann"
    assert email.message.get_content().strip() == "The details, Ann."
    # The same Message-ID on every attempt for this execution.
    message_id = f"<deliverable-followup-{steps[0].id}@outreach.local>"
    assert email.message["Message-ID"].strip() == message_id

    item = only(world.rows(InboxItem))
    assert item.bucket is ResponseBucket.EMAIL_CAPTURES
    movement = only(world.rows(BucketMovement))
    assert (movement.actor, movement.reason) == ("workflow:all-in", "waiting for their email")
    lead = only(world.rows(Lead))
    assert "followed-up" in lead.tags
    scored = only(world.rows(LeadScoreEvent, LeadScoreEvent.event == "followed_up"))
    assert (scored.delta, scored.source) == (5, f"workflow_execution {steps[3].id}")

    # Run again, even with every step put back as if a crash had lost their completion:
    # nothing is done twice.
    with tenant_session(team.team_id) as session:
        session.execute(text("UPDATE workflow_executions SET status = 'pending' WHERE step > 0"))
    run_due(team.team_id, smtp=config(smtp), clock=lambda: due + timedelta(minutes=1))
    assert len(smtp.received) == 1
    assert len(world.rows(BucketMovement)) == 1
    assert only(world.rows(Lead)).tags.count("followed-up") == 1
    assert len(world.rows(LeadScoreEvent, LeadScoreEvent.event == "followed_up")) == 1
    with tenant_session(team.team_id) as session:
        notes = session.scalar(
            text("SELECT count(*) FROM team_notifications WHERE kind = 'workflow'")
        )
    assert notes == 1


EMAIL = """
workflows:
  - name: email
    trigger: {classification: interested, hours_since_last_inbound: 1}
    steps:
      - {action: send_email, subject: "Hello", text: "The details."}
"""


def test_a_refused_email_is_retried_and_a_bad_address_skipped(team, smtp: SandboxSmtp) -> None:
    world = World(team.team_id, {"first_name": "Ann", "phone": LEAD, "email": "ann@example.com"})
    world.apply(EMAIL)
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    smtp.fail_data(451)
    due = MORNING_IN_NY + HOUR
    assert run_due(team.team_id, smtp=config(smtp), clock=lambda: due).retried == 1
    execution = only(world.executions())
    assert execution.status is ExecutionStatus.PENDING and "451" in (execution.reason or "")
    smtp.fail_data(None)
    # It waits for its backoff, then goes once.
    assert run_due(team.team_id, smtp=config(smtp), clock=lambda: due).completed == 0
    retry_at = execution.due_at
    assert run_due(team.team_id, smtp=config(smtp), clock=lambda: retry_at).completed == 1
    assert len(smtp.received) == 1

    with tenant_session(team.team_id) as session:
        session.execute(text("UPDATE leads SET email = 'not an address'"))
    world.reply("yes, interested again", retry_at + HOUR)
    world.tick(retry_at + HOUR)
    stats = run_due(team.team_id, smtp=config(smtp), clock=lambda: retry_at + 3 * HOUR)
    assert stats.skipped == {"invalid_email": 1}
    assert len(smtp.received) == 1


def test_steps_that_need_a_lead_are_skipped_for_an_unknown_contact(team) -> None:
    world = World(team.team_id)
    world.apply(EVERYTHING.replace("send_email, subject", "send_email, delay_hours: 9, subject"))
    world.reply("yes I'm interested", MORNING_IN_NY, phone="+12125550777")
    world.tick(MORNING_IN_NY)
    run_due(team.team_id, clock=lambda: MORNING_IN_NY + HOUR)
    reasons = {e.action: e.reason for e in world.executions("all-in")}
    assert reasons["tag_lead"] == "no_lead: the contact is not one of the team's leads"
    assert reasons["update_lead_score"] == "no_lead: the contact is not one of the team's leads"
    with tenant_session(team.team_id) as session:
        assert session.scalar(select(Lead.tags).where(Lead.phone == LEAD)) == []
