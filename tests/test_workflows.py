"""The follow-up engine with the clock frozen: replies go through the real inbound processing,
the tick schedules executions with its set-based SQL, the executor runs them through the
guardrails, and follow-up SMS leave through the outbox and the replies send path to the
sandbox Twilio over loopback (real `twilio` client)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    ApprovalStatus,
    CampaignStatus,
    Channel,
    ExecutionStatus,
    MessageKind,
    MessageStatus,
    PhoneFlag,
    Priority,
    TaskStatus,
)
from outreach_core.db.tables import (
    Message,
    PhoneFlagRow,
    Review,
    Task,
    TeamNotification,
    WorkflowExecution,
)
from outreach_core.guardrails import kill_switch
from outreach_core.inbox.processing import Inbound, receive
from outreach_core.inbox.queries import approve_review
from outreach_core.messaging.campaigns import transition
from outreach_core.messaging.consent import record_consent
from outreach_core.messaging.sender import send_replies
from outreach_core.sandbox.twilio import SandboxTwilio
from outreach_core.settings import get_settings
from outreach_core.workflows import executions
from outreach_core.workflows.definitions import apply_workflows, parse_workflows, set_enabled
from outreach_core.workflows.executor import RunStats, run_due
from outreach_core.workflows.tick import evaluate_team, tick
from tests.test_sending import active_campaign, gateway, twilio  # noqa: F401

# 15:00 UTC on a winter Thursday: 10:00 in New York.
MORNING_IN_NY = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LEAD = "+12125550001"


class World:
    """One team with a live campaign to a New York lead, seen through a frozen clock."""

    def __init__(self, team_id: uuid.UUID, lead: dict[str, Any] | None = None) -> None:
        self.team_id = team_id
        lead = lead or {"first_name": "Ann", "phone": LEAD, "zip": "10001", "state": "NY"}
        self.campaign_id = active_campaign(team_id, [lead])
        with tenant_session(team_id) as session:
            self.number = session.scalar(
                select(Message.sending_number_id).where(Message.campaign_id == self.campaign_id)
            )
            from outreach_core.db.tables import SendingNumber

            self.number_phone = session.scalar(
                select(SendingNumber.phone_number).where(SendingNumber.id == self.number)
            )

    def reply(self, body: str, at: datetime, phone: str = LEAD, voice: bool = False) -> Any:
        inbound = Inbound(
            sid=f"SM{uuid.uuid4().hex}",
            channel=Channel.VOICE if voice else Channel.SMS,
            from_phone=phone,
            to_phone=self.number_phone,
            body="" if voice else body,
        )
        return receive(inbound, now=at)

    def consent(self, phone: str = LEAD) -> None:
        record_consent(self.team_id, [phone], "signed up on the website")

    def tick(self, at: datetime) -> int:
        return evaluate_team(self.team_id, at).created

    def run(self, at: datetime) -> RunStats:
        return run_due(self.team_id, clock=lambda: at)

    def send(self, at: datetime) -> None:
        send_replies(self.team_id, gateway(), f"replies-{uuid.uuid4().hex[:6]}", clock=lambda: at)

    def executions(self, workflow: str | None = None) -> list[WorkflowExecution]:
        views = executions.list_executions(self.team_id, limit=1000)
        ids = [v.id for v in views if workflow is None or v.workflow == workflow]
        with tenant_session(self.team_id) as session:
            found = session.scalars(
                select(WorkflowExecution).where(WorkflowExecution.id.in_(ids))
            ).all()
        return sorted(found, key=lambda e: (e.due_at, e.step))

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with tenant_session(self.team_id) as session:
            return list(session.scalars(select(table).where(*where)))

    def follow_ups(self) -> list[Message]:
        return self.rows(Message, Message.kind == MessageKind.FOLLOW_UP)

    def apply(self, yaml_text: str) -> None:
        import yaml

        apply_workflows(self.team_id, parse_workflows(yaml.safe_load(yaml_text), "test"), "test")


@pytest.fixture(autouse=True)
def fast_rate(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The team-wide limit is tested on its own; here it must not pace the tests.
    monkeypatch.setattr(get_settings(), "followups_per_team_per_minute", 100_000)


@pytest.fixture
def world(team, twilio) -> World:  # type: ignore[no-untyped-def]  # noqa: F811
    return World(team.team_id)


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------ the default triggers


def test_report_check_asks_24h_after_an_email_capture_with_no_reply(
    world: World,
    twilio: SandboxTwilio,  # noqa: F811
) -> None:
    world.consent()
    world.reply("sure, send it to ann@example.com", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    execution = only(world.executions("report-check"))
    assert execution.status is ExecutionStatus.PENDING
    assert execution.due_at == MORNING_IN_NY + 24 * HOUR

    almost = MORNING_IN_NY + 24 * HOUR - timedelta(minutes=1)
    assert world.run(almost).completed == 0
    assert world.follow_ups() == []

    due = MORNING_IN_NY + 24 * HOUR
    assert world.run(due).completed == 1
    message = only(world.follow_ups())
    assert (message.body, message.status) == ("Did you get the report?", MessageStatus.PENDING)
    assert message.workflow_execution_id == execution.id and message.campaign_id is None

    world.send(due)
    sent = only(world.follow_ups())
    assert sent.status not in (MessageStatus.PENDING, MessageStatus.BLOCKED)
    assert twilio.requests.created_for(LEAD) == 1
    assert twilio.message(sent.provider_sid)["body"] == "Did you get the report?"
    # Nothing more: the execution is done, and a second tick makes no second one.
    world.tick(due + HOUR)
    assert world.run(due + HOUR).completed == 0
    assert len(world.follow_ups()) == 1


def test_report_check_is_skipped_when_the_contact_wrote_again(world: World) -> None:
    world.consent()
    world.reply("sure, send it to ann@example.com", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    world.reply("thanks, got it!", MORNING_IN_NY + 3 * HOUR)
    stats = world.run(MORNING_IN_NY + 24 * HOUR)
    assert stats.skipped == {"trigger_gone": 1}
    execution = only(world.executions("report-check"))
    assert execution.status is ExecutionStatus.SKIPPED
    assert execution.reason == "trigger_gone: the contact wrote again"
    assert world.follow_ups() == []


def test_ask_for_email_2h_after_interest_without_an_email(world: World) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    execution = only(world.executions("ask-for-email"))
    assert execution.due_at == MORNING_IN_NY + 2 * HOUR
    assert world.run(MORNING_IN_NY + 2 * HOUR - timedelta(seconds=5)).completed == 0
    assert world.run(MORNING_IN_NY + 2 * HOUR).completed == 1
    message = only(world.follow_ups())
    assert message.body == "Glad to hear it, Ann! What's the best email to send the details to?"


def test_an_interested_contact_who_gave_an_email_is_not_asked_again(world: World) -> None:
    world.consent()
    world.reply("sure, send it to ann@example.com", MORNING_IN_NY - HOUR)
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    assert world.executions("ask-for-email") == []


def test_an_unanswered_question_becomes_a_task_after_1h(world: World) -> None:
    world.reply("how much does it cost?", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    execution = only(world.executions("unanswered-question"))
    assert execution.due_at == MORNING_IN_NY + HOUR
    assert world.run(MORNING_IN_NY + 30 * timedelta(minutes=1)).completed == 0
    assert world.run(MORNING_IN_NY + HOUR).completed == 1
    task = only(world.rows(Task))
    assert (task.priority, task.status) == (Priority.WARM, TaskStatus.OPEN)
    assert task.title == f"Answer {LEAD}'s question" and task.body == "how much does it cost?"
    assert task.workflow_execution_id == execution.id


def done_task(team_id: uuid.UUID, at: datetime) -> None:
    """A person reached the lead and says so."""
    with tenant_session(team_id) as session:
        session.add(
            Task(
                team_id=team_id,
                id=uuid.uuid4(),
                title="called them",
                priority=Priority.WARM,
                status=TaskStatus.DONE,
                contact_phone=LEAD,
                done_at=at,
                done_by="ann",
            )
        )


def test_a_question_a_person_answered_gets_no_task(world: World) -> None:
    # At 22:00 in New York: no automatic answer, the draft waits for a person.
    night = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert world.reply("how much does it cost?", night).handling == "review"
    world.tick(night)
    with time_machine.travel(night + timedelta(minutes=30), tick=False):
        approve_review(world.team_id, only(world.rows(Review)).id, "ann")
    stats = world.run(night + HOUR)
    assert stats.skipped == {"trigger_gone": 1}
    execution = only(world.executions("unanswered-question"))
    assert execution.reason == "trigger_gone: a person reached them"
    assert world.rows(Task) == []


def test_a_question_whose_contact_a_person_called_gets_no_task(world: World) -> None:
    world.reply("how much does it cost?", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    done_task(world.team_id, MORNING_IN_NY + timedelta(minutes=20))
    assert world.run(MORNING_IN_NY + HOUR).skipped == {"trigger_gone": 1}
    assert world.rows(Task, Task.workflow_execution_id.is_not(None)) == []


def test_a_hot_lead_not_called_back_in_2h_gets_a_hot_task_and_the_team_is_told(
    world: World,
) -> None:
    world.reply("", MORNING_IN_NY, voice=True)
    world.tick(MORNING_IN_NY)
    steps = world.executions("hot-lead-callback")
    assert [(e.step, e.action, e.due_at) for e in steps] == [
        (0, "create_task", MORNING_IN_NY + 2 * HOUR),
        (1, "notify_team", MORNING_IN_NY + 2 * HOUR),
    ]
    assert world.run(MORNING_IN_NY + HOUR).completed == 0
    assert world.run(MORNING_IN_NY + 2 * HOUR).completed == 2
    task = only(world.rows(Task))
    assert task.priority is Priority.HOT and task.title.startswith(f"Call back {LEAD}")
    note = only(world.rows(TeamNotification, TeamNotification.kind == "workflow"))
    assert LEAD in note.text and "Ann" in note.text
    assert note.payload["workflow"] == "hot-lead-callback"


def test_a_hot_lead_a_person_reached_gets_nothing(world: World) -> None:
    world.reply("", MORNING_IN_NY, voice=True)
    world.tick(MORNING_IN_NY)
    done_task(world.team_id, MORNING_IN_NY + HOUR)
    stats = world.run(MORNING_IN_NY + 2 * HOUR)
    assert stats.completed == 0 and stats.skipped == {"trigger_gone": 2}
    assert world.rows(TeamNotification, TeamNotification.kind == "workflow") == []


# -------------------------------------------------------------------- overlapping ticks


def test_two_overlapping_ticks_make_each_execution_once(team, twilio) -> None:  # noqa: F811
    world = World(team.team_id)
    phones = [f"+1212555{2000 + n:04d}" for n in range(60)]
    for phone in phones:
        world.reply("yes I'm interested", MORNING_IN_NY, phone=phone)
    start = threading.Barrier(2)
    results: list[Any] = []

    def one_tick() -> None:
        start.wait()
        results.append(tick(MORNING_IN_NY))

    threads = [threading.Thread(target=one_tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    created = sum(t.created for r in results for t in r.teams if t.team_id == team.team_id)
    assert created == 60
    with tenant_session(team.team_id) as session:
        per_item = session.execute(
            select(WorkflowExecution.inbox_item_id, func.count()).group_by(
                WorkflowExecution.inbox_item_id, WorkflowExecution.workflow_id
            )
        ).all()
    assert len(per_item) == 60 and {count for _, count in per_item} == {1}


# ------------------------------------------------------------------------- guardrails


def test_a_stop_between_scheduling_and_execution_cancels_the_execution(world: World) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    world.reply("STOP", MORNING_IN_NY + HOUR)
    execution = only(world.executions("ask-for-email"))
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.reason == "suppressed: opted out by reply"
    assert world.run(MORNING_IN_NY + 2 * HOUR).completed == 0
    assert world.follow_ups() == []


def test_a_suppression_added_any_other_way_cancels_it_at_execution(world: World) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    with tenant_session(world.team_id) as session:
        session.add(
            PhoneFlagRow(
                team_id=world.team_id, phone=LEAD, flag=PhoneFlag.SUPPRESSED, reason="dnc list"
            )
        )
    stats = world.run(MORNING_IN_NY + 2 * HOUR)
    assert stats.cancelled == {"suppressed": 1}
    assert only(world.executions()).reason == "suppressed"
    assert world.follow_ups() == []


def test_a_follow_up_queued_before_a_stop_is_never_sent(
    world: World,
    twilio: SandboxTwilio,  # noqa: F811
) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    assert world.run(MORNING_IN_NY + 2 * HOUR).completed == 1
    before = twilio.requests.created_for(LEAD)
    world.reply("stop texting me", MORNING_IN_NY + 2 * HOUR + timedelta(seconds=10))
    world.send(MORNING_IN_NY + 2 * HOUR + timedelta(minutes=1))
    message = only(world.follow_ups())
    assert (message.status, message.block_reason) == (MessageStatus.BLOCKED, "suppressed")
    assert twilio.requests.created_for(LEAD) == before


FOUR_STEPS = """
workflows:
  - name: pester
    trigger: {classification: interested}
    steps:
      - {action: send_sms, text: "one"}
      - {action: send_sms, text: "two", delay_hours: 25}
      - {action: send_sms, text: "three", delay_hours: 50}
      - {action: send_sms, text: "four", delay_hours: 75}
"""


def test_a_fourth_follow_up_to_a_lead_is_refused(world: World) -> None:
    world.apply(FOUR_STEPS.replace("delay_hours: 75", "delay_hours: 70"))
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    for hours in (0, 25, 50, 70):
        world.run(MORNING_IN_NY + hours * HOUR)
    steps = world.executions("pester")
    assert [e.status for e in steps] == [ExecutionStatus.COMPLETED] * 3 + [ExecutionStatus.SKIPPED]
    assert steps[3].reason == "lead_cap: 3 follow-ups already (at most 3)"
    assert sorted(m.body for m in world.follow_ups()) == ["one", "three", "two"]


def test_the_3am_follow_up_is_rescheduled_to_the_window_not_dropped_and_not_sent(
    world: World,
    twilio: SandboxTwilio,  # noqa: F811
) -> None:
    world.consent()
    one_am = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)  # 01:00 in New York
    world.reply("yes I'm interested", one_am)
    world.tick(one_am)
    three_am = one_am + 2 * HOUR
    stats = world.run(three_am)
    assert stats.rescheduled == {"quiet_hours": 1} and stats.completed == 0
    execution = only(world.executions())
    nine_am = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
    assert (execution.status, execution.reason, execution.due_at) == (
        ExecutionStatus.PENDING,
        "quiet_hours",
        nine_am,
    )
    assert world.follow_ups() == []
    assert world.run(nine_am - timedelta(minutes=1)).completed == 0
    assert world.run(nine_am).completed == 1
    before = twilio.requests.created_for(LEAD)
    world.send(nine_am)
    assert twilio.requests.created_for(LEAD) == before + 1


# --------------------------------------------------------------------------- approval


def test_a_contact_who_never_consented_waits_for_a_persons_approval(world: World) -> None:
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    due = MORNING_IN_NY + 2 * HOUR
    assert world.run(due).awaiting_approval == 1
    execution = only(world.executions())
    assert (execution.status, execution.approval, execution.reason) == (
        ExecutionStatus.PENDING,
        ApprovalStatus.AWAITING,
        "awaiting_approval",
    )
    assert only(world.rows(TeamNotification, TeamNotification.kind == "workflow_approval"))
    # Waiting is not due: later runs leave it alone.
    assert world.run(due + HOUR) == RunStats()
    assert world.follow_ups() == []

    executions.decide(world.team_id, execution.id, "ann", approve=True)
    assert world.run(due + HOUR).completed == 1
    approved = only(world.executions())
    assert (approved.approval, approved.approval_by) == (ApprovalStatus.APPROVED, "ann")
    assert len(world.follow_ups()) == 1
    with pytest.raises(executions.NotAwaitingApproval):
        executions.decide(world.team_id, execution.id, "ann", approve=False)


def test_a_rejected_follow_up_is_cancelled(world: World) -> None:
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    world.run(MORNING_IN_NY + 2 * HOUR)
    execution = only(world.executions())
    view = executions.decide(world.team_id, execution.id, "bob", approve=False)
    assert (view.status, view.reason) == (ExecutionStatus.CANCELLED, "rejected by bob")
    assert world.run(MORNING_IN_NY + 3 * HOUR) == RunStats()
    assert world.follow_ups() == []


# ------------------------------------------------------------------------ kill switches


def test_a_disabled_workflow_cancels_its_pending_executions_and_makes_no_more(
    world: World,
) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    _, cancelled = set_enabled(world.team_id, "ask-for-email", False, "ann")
    assert cancelled == 1
    assert only(world.executions()).reason == "workflow_disabled: by ann"
    world.reply("still interested!", MORNING_IN_NY + HOUR, phone="+12125550077")
    world.tick(MORNING_IN_NY + HOUR)
    assert len(world.executions()) == 1
    assert world.run(MORNING_IN_NY + 4 * HOUR).completed == 0


def test_a_paused_campaigns_items_wait_and_a_cancelled_ones_are_cancelled(world: World) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    transition(world.team_id, world.campaign_id, CampaignStatus.PAUSED, "ann")
    due = MORNING_IN_NY + 2 * HOUR
    assert world.run(due).completed == 0
    held = only(world.executions())
    assert (held.status, held.reason) == (ExecutionStatus.PENDING, "campaign_paused")
    assert not evaluate_team(world.team_id, due).due

    transition(world.team_id, world.campaign_id, CampaignStatus.ACTIVE, "ann")
    assert world.run(due).completed == 1

    world.reply("how much is it?", due + HOUR)
    world.tick(due + HOUR)
    transition(world.team_id, world.campaign_id, CampaignStatus.CANCELLED, "ann")
    stats = world.run(due + 3 * HOUR)
    assert stats.cancelled == {"campaign_cancelled": 1}
    # Items of a cancelled campaign get no new executions.
    world.reply("what's the price?", due + 4 * HOUR)
    assert world.tick(due + 4 * HOUR) == 0


def test_the_team_kill_switch_stops_execution_until_resumed(world: World) -> None:
    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    switch = kill_switch.pause(world.team_id, "ann", "a bad template")
    assert switch.paused and switch.paused_by == "ann"
    due = MORNING_IN_NY + 2 * HOUR
    stats = world.run(due)
    assert stats.completed == 0 and stats.stopped is not None and "a bad template" in stats.stopped
    # The sensor leaves a paused team alone.
    assert world.team_id in tick(due).paused
    assert only(world.executions()).status is ExecutionStatus.PENDING

    kill_switch.resume(world.team_id)
    assert world.run(due).completed == 1


def test_a_paused_team_holds_its_campaign_and_follow_up_sends_and_reviews_auto_replies(
    world: World,
    twilio: SandboxTwilio,  # noqa: F811
) -> None:
    from outreach_core.messaging.sender import send_campaign

    world.consent()
    world.reply("yes I'm interested", MORNING_IN_NY)
    world.tick(MORNING_IN_NY)
    assert world.run(MORNING_IN_NY + 2 * HOUR).completed == 1
    kill_switch.pause(world.team_id, "ann", None)
    later = MORNING_IN_NY + 2 * HOUR + timedelta(minutes=1)
    before = twilio.requests.messages_created
    world.send(later)
    assert only(world.follow_ups()).status is MessageStatus.PENDING
    more = active_campaign(world.team_id, [{"first_name": "Bo", "phone": "+12125550099"}])
    stats = send_campaign(world.team_id, more, gateway(), "run-x", clock=lambda: later)
    assert stats.sent == 0 and "paused" in (stats.stopped or "")
    assert twilio.requests.messages_created == before
    # An auto-reply waits for a person; an opt-out is still confirmed.
    outcome = world.reply("yes please, interested", later, phone="+12125550099")
    assert outcome.handling == "review"
    assert world.reply("STOP", later, phone="+12125550099").reply

    kill_switch.resume(world.team_id)
    world.send(later)
    assert only(world.follow_ups()).status is not MessageStatus.PENDING


def test_the_team_rate_limit_paces_executions(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    monkeypatch.setattr(get_settings(), "followups_per_team_per_minute", 120)
    for n in range(4):
        world.reply("how much does it cost?", MORNING_IN_NY, phone=f"+1212555{3000 + n:04d}")
    world.tick(MORNING_IN_NY)
    started = time.monotonic()

    def clock() -> datetime:  # an hour later, running in real time: the limiter paces
        return MORNING_IN_NY + HOUR + timedelta(seconds=time.monotonic() - started)

    assert run_due(world.team_id, clock=clock).completed == 4
    # 120 a minute is one every half second: the last waited for three slots.
    assert time.monotonic() - started >= 1.4
