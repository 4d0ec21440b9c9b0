"""Workflow executions as people see and steer them: which are due, the list, a person's
approval or rejection of a follow-up to a contact who never consented, and the cancelling
of a contact's pending executions when they opt out.

Approval: a follow-up message (send_sms, send_email) to a phone without recorded consent
(`PhoneFlag.CONSENTED`) does not go out by itself. When it comes due the executor sets it
`approval = awaiting` (reason `awaiting_approval`) and tells the team; it stays pending,
out of the executor's way, until a person approves it (it then runs at the next tick,
through every other guardrail: suppression, the per-lead cap, the sending window) or
rejects it (cancelled, with who did it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, text, update
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    ApprovalStatus,
    CampaignStatus,
    ExecutionStatus,
)
from outreach_core.db.tables import Campaign, InboxItem, Lead, Workflow, WorkflowExecution
from outreach_core.guardrails.reasons import BlockReason
from outreach_core.settings import get_settings
from outreach_core.workflows.definitions import WorkflowDef, loaded


class ExecutionNotFound(LookupError):
    pass


class NotAwaitingApproval(Exception):
    """Only an execution waiting for a person can be approved or rejected."""


def _pending_due(now: datetime) -> ColumnElement[bool]:
    """Pending and due, not waiting for a person, not of an item whose campaign is paused
    (held while it is)."""
    held = (
        select(1)
        .select_from(InboxItem)
        .join(
            Campaign,
            and_(Campaign.team_id == InboxItem.team_id, Campaign.id == InboxItem.campaign_id),
        )
        .where(
            InboxItem.team_id == WorkflowExecution.team_id,
            InboxItem.id == WorkflowExecution.inbox_item_id,
            Campaign.status == CampaignStatus.PAUSED,
        )
        .exists()
    )
    return and_(
        WorkflowExecution.status == ExecutionStatus.PENDING,
        WorkflowExecution.due_at <= now,
        WorkflowExecution.approval.is_distinct_from(ApprovalStatus.AWAITING),
        ~held,
    )


def _left_running(now: datetime) -> ColumnElement[bool]:
    """Running for longer than a run takes: the run that claimed it died."""
    stale = now - timedelta(seconds=get_settings().workflow_stale_seconds)
    return and_(
        WorkflowExecution.status == ExecutionStatus.RUNNING, WorkflowExecution.claimed_at < stale
    )


def next_due(session: Session, now: datetime) -> WorkflowExecution | None:
    """The team's next execution to run at `now`, locked (others' locked ones are skipped):
    one left running by a dead run first, then the soonest due. Two queries rather than one
    with OR, so each can walk its index in order."""
    for clause in (_left_running(now), _pending_due(now)):
        found = session.scalar(
            select(WorkflowExecution)
            .where(clause)
            .order_by(WorkflowExecution.due_at, WorkflowExecution.step)
            .limit(1)
            .with_for_update(skip_locked=True, of=WorkflowExecution)
        )
        if found is not None:
            return found
    return None


def has_due(session: Session, now: datetime) -> bool:
    return any(
        session.scalar(select(select(1).where(clause).exists()))
        for clause in (_left_running(now), _pending_due(now))
    )


def note_held(session: Session) -> int:
    """Record on pending executions of paused campaigns' items why they wait."""
    paused = (
        select(InboxItem.id)
        .join(
            Campaign,
            and_(Campaign.team_id == InboxItem.team_id, Campaign.id == InboxItem.campaign_id),
        )
        .where(Campaign.status == CampaignStatus.PAUSED)
    )
    return session.execute(
        update(WorkflowExecution)
        .where(WorkflowExecution.status == ExecutionStatus.PENDING)
        .where(WorkflowExecution.inbox_item_id.in_(paused))
        .where(WorkflowExecution.reason.is_distinct_from(BlockReason.CAMPAIGN_PAUSED))
        .values(reason=BlockReason.CAMPAIGN_PAUSED, updated_at=datetime.now(UTC))
    ).rowcount


def cancel_for_contact(session: Session, phone: str, reason: str, now: datetime) -> int:
    """Cancel the contact's pending executions in the caller's transaction (an opt-out).
    One an executor holds is running this moment: it is left to finish (its message, if any,
    meets the suppression at send time), rather than waited for while the caller holds the
    conversation the executor may need next."""
    pending = (
        select(WorkflowExecution.id)
        .where(
            WorkflowExecution.contact_phone == phone,
            WorkflowExecution.status == ExecutionStatus.PENDING,
        )
        .with_for_update(skip_locked=True)
    )
    return session.execute(
        update(WorkflowExecution)
        .where(WorkflowExecution.id.in_(pending.scalar_subquery()))
        .values(status=ExecutionStatus.CANCELLED, reason=reason, finished_at=now, updated_at=now)
    ).rowcount


@dataclass(frozen=True)
class ExecutionView:
    """One execution for people: who, what, when, why."""

    id: uuid.UUID
    workflow: str
    step: int
    action: str
    status: ExecutionStatus
    due_at: datetime
    contact_phone: str
    lead_id: int | None
    lead_name: str | None
    inbox_item_id: uuid.UUID
    classification: str
    reason: str | None
    approval: ApprovalStatus | None
    result: dict[str, object] | None
    why: str


def _views(session: Session, where: list[object], limit: int) -> list[ExecutionView]:
    rows = session.execute(
        select(WorkflowExecution, Workflow, InboxItem.classification, Lead.first_name)
        .join(
            Workflow,
            and_(
                Workflow.team_id == WorkflowExecution.team_id,
                Workflow.id == WorkflowExecution.workflow_id,
            ),
        )
        .join(
            InboxItem,
            and_(
                InboxItem.team_id == WorkflowExecution.team_id,
                InboxItem.id == WorkflowExecution.inbox_item_id,
            ),
        )
        .outerjoin(
            Lead,
            and_(Lead.team_id == WorkflowExecution.team_id, Lead.id == WorkflowExecution.lead_id),
        )
        .where(*where)
        .order_by(WorkflowExecution.due_at, WorkflowExecution.step, WorkflowExecution.id)
        .limit(limit)
    ).all()
    views = []
    definitions: dict[uuid.UUID, WorkflowDef] = {}
    for execution, workflow, classification, first_name in rows:
        if workflow.id not in definitions:
            definitions[workflow.id] = loaded(workflow)
        definition = definitions[workflow.id]
        views.append(
            ExecutionView(
                id=execution.id,
                workflow=workflow.name,
                step=execution.step,
                action=str(execution.action),
                status=execution.status,
                due_at=execution.due_at,
                contact_phone=execution.contact_phone,
                lead_id=execution.lead_id,
                lead_name=first_name,
                inbox_item_id=execution.inbox_item_id,
                classification=str(classification),
                reason=execution.reason,
                approval=execution.approval,
                result=execution.result,
                why=f"workflow {workflow.name}: {definition.trigger.describe()}",
            )
        )
    return views


def list_executions(
    team_id: uuid.UUID,
    *,
    status: ExecutionStatus | None = None,
    approval: ApprovalStatus | None = None,
    limit: int = 200,
) -> list[ExecutionView]:
    where: list[object] = []
    if status is not None:
        where.append(WorkflowExecution.status == status)
    if approval is not None:
        where.append(WorkflowExecution.approval == approval)
    with tenant_session(team_id) as session:
        return _views(session, where, limit)


def pending_executions(team_id: uuid.UUID, limit: int) -> list[ExecutionView]:
    """What the workflows will do, soonest first (the schedule's half)."""
    return list_executions(team_id, status=ExecutionStatus.PENDING, limit=limit)


def _awaiting(session: Session, team_id: uuid.UUID, execution_id: uuid.UUID) -> WorkflowExecution:
    execution = session.get(WorkflowExecution, (team_id, execution_id), with_for_update=True)
    if execution is None:
        raise ExecutionNotFound(f"no workflow execution {execution_id} in your team")
    if (
        execution.status is not ExecutionStatus.PENDING
        or execution.approval is not ApprovalStatus.AWAITING
    ):
        state = f"{execution.status}" + (f", {execution.approval}" if execution.approval else "")
        raise NotAwaitingApproval(
            f"workflow execution {execution_id} is not awaiting approval ({state})"
        )
    return execution


def decide(
    team_id: uuid.UUID, execution_id: uuid.UUID, actor: str, *, approve: bool
) -> ExecutionView:
    """A person's answer to a follow-up awaiting approval."""
    now = datetime.now(UTC)
    with tenant_session(team_id) as session:
        execution = _awaiting(session, team_id, execution_id)
        execution.approval_by = actor
        execution.approval_at = now
        execution.updated_at = now
        if approve:
            execution.approval = ApprovalStatus.APPROVED
            execution.reason = None
        else:
            execution.approval = ApprovalStatus.REJECTED
            execution.status = ExecutionStatus.CANCELLED
            execution.reason = f"rejected by {actor}"
            execution.finished_at = now
        session.flush()
        return _views(session, [WorkflowExecution.id == execution_id], 1)[0]


def lock_contact(session: Session, team_id: uuid.UUID, phone: str) -> None:
    """Follow-ups to one contact are decided one at a time (the per-lead cap)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"followup:{team_id}:{phone}"},
    )
