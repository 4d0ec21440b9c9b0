"""What each workflow step does, in the executor's transaction. Every action is idempotent
per execution (a unique key, a dedupe key, a score source), so an execution run again after
a crash changes nothing twice. An action that cannot run for this item raises `Skip` before
it writes anything; a passing failure (an SMTP timeout) raises `Retry`.

Follow-up SMS go into the outbox (`messages`, kind follow_up, one per execution) and are
sent by the replies run, through the same guardrails, budget and pacing as every message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from outreach_core.db.states import MessageKind, MessageStatus
from outreach_core.db.tables import (
    Conversation,
    InboundMessage,
    InboxItem,
    Lead,
    Message,
    Task,
    WorkflowExecution,
)
from outreach_core.deliverables.email import (
    JOB_HEADER,
    EmailRefused,
    SmtpConfig,
    checked_address,
    message_id_for,
    send,
)
from outreach_core.inbox.processing import append_history
from outreach_core.inbox.queries import move_in
from outreach_core.leads.scoring import apply_score_event
from outreach_core.messaging.segments import count_segments
from outreach_core.messaging.templates import MissingVariable, parse_template
from outreach_core.notify.outbox import enqueue
from outreach_core.workflows.definitions import (
    CreateTask,
    MoveToBucket,
    NotifyTeam,
    SendEmail,
    SendSms,
    Step,
    TagLead,
    UpdateLeadScore,
)

# The kind of team notification a workflow step records.
NOTIFICATION_KIND = "workflow"
# Text fields shown for a contact without a name.
NO_NAME = "name unknown"


class Skip(Exception):
    """The step cannot run for this item; the message is the execution's reason."""


class Retry(Exception):
    """A passing failure: the step is tried again later."""


@dataclass
class Context:
    session: Session
    team_id: uuid.UUID
    execution: WorkflowExecution
    workflow: str
    item: InboxItem
    lead: Lead | None
    conversation: Conversation | None
    now: datetime

    @property
    def source(self) -> str:
        return f"workflow_execution {self.execution.id}"

    def text_fields(self) -> dict[str, str]:
        first = (self.lead.first_name if self.lead else None) or (
            self.conversation.first_name if self.conversation else None
        )
        return {
            "contact": self.item.contact_phone,
            "first_name": first or NO_NAME,
            "classification": str(self.item.classification),
            "message": self.item.body[:300],
            "workflow": self.workflow,
        }

    def render(self, template: str) -> str:
        """A campaign template filled from the lead; Skip when it needs a value it lacks."""
        parsed = parse_template(template)
        values = {f: getattr(self.lead, f, None) for f in parsed.fields} if self.lead else {}
        try:
            return parsed.render(values)
        except MissingVariable as missing:
            raise Skip(f"{MissingVariable.reason}: {missing.name}") from None


def run(ctx: Context, step: Step) -> dict[str, Any]:
    """Do the step (all but send_email, which the executor sends outside its transaction);
    returns what it did, for the execution's `result`."""
    match step:
        case SendSms():
            return _send_sms(ctx, step)
        case CreateTask():
            return _create_task(ctx, step)
        case MoveToBucket():
            return _move_to_bucket(ctx, step)
        case UpdateLeadScore():
            return _update_lead_score(ctx, step)
        case TagLead():
            return _tag_lead(ctx, step)
        case NotifyTeam():
            return _notify_team(ctx, step)
    raise AssertionError(f"no action for {step.action}")


def _send_sms(ctx: Context, step: SendSms) -> dict[str, Any]:
    body = ctx.render(step.text)
    number_id = ctx.session.scalar(
        select(InboundMessage.sending_number_id).where(InboundMessage.id == ctx.item.inbound_id)
    )
    message_id = ctx.session.scalar(
        insert(Message)
        .values(
            team_id=ctx.team_id,
            id=uuid.uuid4(),
            kind=MessageKind.FOLLOW_UP,
            lead_id=ctx.item.lead_id,
            workflow_execution_id=ctx.execution.id,
            to_phone=ctx.item.contact_phone,
            sending_number_id=number_id,
            body=body,
            segments=count_segments(body).segments,
            status=MessageStatus.PENDING,
            not_before=ctx.now,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        .on_conflict_do_nothing(
            index_elements=["team_id", "workflow_execution_id"],
            index_where=text("workflow_execution_id IS NOT NULL"),
        )
        .returning(Message.id)
    )
    if message_id is not None and ctx.conversation is not None:
        ctx.conversation.outbound_count += 1
        append_history(ctx.conversation, "outbound", body, ctx.now)
    return {"message_id": str(message_id) if message_id else None, "text": body}


@dataclass(frozen=True)
class Email:
    """A follow-up email composed in the executor's transaction, sent after it commits."""

    message: EmailMessage
    to: str


def compose_email(ctx: Context, step: SendEmail) -> Email:
    """To the address the contact gave, else the lead's; Skip when there is none."""
    address = (ctx.conversation.email if ctx.conversation else None) or (
        ctx.lead.email if ctx.lead else None
    )
    if not address:
        raise Skip("no_email: neither the contact nor the lead gave one")
    try:
        recipient = checked_address(address)
    except EmailRefused as refused:
        raise Skip(f"invalid_email: {refused}") from None
    job = f"followup-{ctx.execution.id}"
    message = EmailMessage()
    message["To"] = recipient
    message["Subject"] = ctx.render(step.subject)
    # The same Message-ID on every attempt: a resend after a crash is recognisable.
    message["Message-ID"] = message_id_for(job)
    message[JOB_HEADER] = job
    message.set_content(ctx.render(step.text), cte="quoted-printable")
    return Email(message, recipient)


def send_email(config: SmtpConfig, email: Email) -> dict[str, Any]:
    try:
        message_id = send(config, email.message)
    except EmailRefused as refused:
        if refused.permanent:
            raise Skip(f"email_refused: {refused}") from None
        raise Retry(str(refused)) from None
    return {"to": email.to, "message_id": message_id}


def _create_task(ctx: Context, step: CreateTask) -> dict[str, Any]:
    fields = ctx.text_fields()
    task_id = ctx.session.scalar(
        insert(Task)
        .values(
            team_id=ctx.team_id,
            id=uuid.uuid4(),
            title=step.title.format_map(fields),
            body=step.body.format_map(fields) if step.body else None,
            priority=step.priority,
            inbox_item_id=ctx.item.id,
            lead_id=ctx.item.lead_id,
            contact_phone=ctx.item.contact_phone,
            workflow_execution_id=ctx.execution.id,
            created_at=ctx.now,
        )
        .on_conflict_do_nothing(index_elements=["team_id", "workflow_execution_id"])
        .returning(Task.id)
    )
    return {"task_id": str(task_id) if task_id else None, "priority": str(step.priority)}


def _move_to_bucket(ctx: Context, step: MoveToBucket) -> dict[str, Any]:
    item = ctx.session.get(InboxItem, (ctx.team_id, ctx.item.id), with_for_update=True)
    assert item is not None
    moved = move_in(
        ctx.session, item, step.bucket, f"workflow:{ctx.workflow}", step.reason or ctx.source
    )
    return {"bucket": str(step.bucket), "moved": moved}


def _lead(ctx: Context) -> Lead:
    if ctx.lead is None:
        raise Skip("no_lead: the contact is not one of the team's leads")
    return ctx.lead


def _update_lead_score(ctx: Context, step: UpdateLeadScore) -> dict[str, Any]:
    lead = _lead(ctx)
    change = apply_score_event(
        ctx.session, ctx.team_id, lead.id, step.event, delta=step.delta, source=ctx.source
    )
    if change is None:
        return {"event": step.event, "applied": False}
    return {"event": step.event, "applied": True, "delta": change.delta, "score": change.score}


def _tag_lead(ctx: Context, step: TagLead) -> dict[str, Any]:
    lead = _lead(ctx)
    added = ctx.session.execute(
        update(Lead)
        .where(Lead.team_id == ctx.team_id, Lead.id == lead.id)
        .where(~Lead.tags.contains([step.tag]))
        .values(tags=func.array_append(Lead.tags, step.tag), updated_at=func.now())
    ).rowcount
    return {"tag": step.tag, "added": bool(added)}


def _notify_team(ctx: Context, step: NotifyTeam) -> dict[str, Any]:
    recorded = enqueue(
        ctx.session,
        ctx.team_id,
        NOTIFICATION_KIND,
        step.text.format_map(ctx.text_fields()),
        payload={
            "workflow": ctx.workflow,
            "execution_id": str(ctx.execution.id),
            "inbox_item_id": str(ctx.item.id),
            "contact_phone": ctx.item.contact_phone,
        },
        dedupe_key=f"workflow_execution:{ctx.execution.id}",
    )
    return {"notified": recorded}
