"""Running a team's due workflow executions, one at a time, each in its own transaction.

For each execution, in order (the first that applies decides):
1. the team's kill switch: paused, the run stops and the execution waits;
2. its workflow disabled: cancelled; its campaign cancelled: cancelled (a paused
   campaign's items are not picked while it is paused);
3. the trigger, read again: a contact who wrote since, gave an email or was reached by a
   person is skipped with the reason; a due time that moved (a newer message) reschedules;
4. for follow-up messages (send_sms, send_email), the guardrails of
   `outreach_core.guardrails`: suppression (cancelled: a STOP between scheduling and
   execution), an invalid phone or a landline (skipped), at most `followups_per_lead`
   follow-ups per lead (skipped), a person's approval for a contact who never consented
   (waits), the recipient's sending window (rescheduled to the next one, never dropped);
5. the team-wide rate limit (the shared PgRateLimiter), then the action.

Every action but send_email runs in the same transaction as the execution's completion.
An email is marked `running` (committed) before the SMTP call and completed after it; a run
that dies in between leaves it running, and it is tried again once stale (the same
Message-ID, see `deliverables.email`). A follow-up SMS is queued in the outbox here and sent
by the replies run, whose send-time guardrails apply to it as to any message."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.db.states import (
    ApprovalStatus,
    CampaignStatus,
    ExecutionStatus,
    PhoneFlag,
    WorkflowAction,
)
from outreach_core.db.tables import (
    Conversation,
    InboxItem,
    Lead,
    Workflow,
    WorkflowExecution,
)
from outreach_core.deliverables.email import SmtpConfig
from outreach_core.guardrails.kill_switch import automation_paused
from outreach_core.guardrails.quiet_hours import check_quiet_hours
from outreach_core.guardrails.reasons import BlockReason
from outreach_core.messaging.sender import phone_flags
from outreach_core.notify.outbox import enqueue
from outreach_core.ratelimit import PgRateLimiter, RateLimitReached
from outreach_core.settings import get_settings
from outreach_core.workflows import actions, triggers
from outreach_core.workflows.definitions import CONTACT_ACTIONS, Loaded, SendEmail, loaded
from outreach_core.workflows.executions import lock_contact, next_due, note_held

log = logging.getLogger(__name__)

# Longer than this until the team's next rate-limit slot: the run stops (the executions
# wait for the next tick) rather than hold a transaction open.
MAX_RATE_WAIT_SECONDS = 5.0
RETRY_BACKOFF = timedelta(minutes=5)
# A due time this close is due now (the tick and the executor round differently).
DUE_TOLERANCE = timedelta(seconds=1)
APPROVAL_NOTIFICATION = "workflow_approval"


@dataclass
class RunStats:
    completed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    cancelled: Counter[str] = field(default_factory=Counter)
    rescheduled: Counter[str] = field(default_factory=Counter)
    awaiting_approval: int = 0
    retried: int = 0
    failed: int = 0
    stopped: str | None = None

    def summary(self) -> str:
        parts = [f"completed {self.completed}"]
        for name in ("skipped", "cancelled", "rescheduled"):
            counts = getattr(self, name)
            if counts:
                parts.append(f"{name} {dict(counts)}")
        for name in ("awaiting_approval", "retried", "failed"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}")
        if self.stopped:
            parts.append(f"stopped: {self.stopped}")
        return "; ".join(parts)


class _Verdict(Enum):
    CANCEL = "cancel"
    SKIP = "skip"
    RESCHEDULE = "reschedule"
    AWAIT = "await"


@dataclass(frozen=True)
class _Decision:
    verdict: _Verdict
    reason: str
    at: datetime | None = None


def _code(reason: str) -> str:
    return reason.split(":", 1)[0]


def run_due(
    team_id: uuid.UUID,
    *,
    smtp: SmtpConfig | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_executions: int | None = None,
    log_progress: Callable[[str], None] = log.info,
) -> RunStats:
    """Run the team's due executions until none is due, the team's automation is paused,
    its rate limit says stop, or `max_executions` were looked at."""
    stats = RunStats()
    with tenant_session(team_id) as session:
        note_held(session)
    limiter = PgRateLimiter(
        app_engine(),
        # The limiter key is at most 40 characters.
        f"wf:{team_id}",
        {"minute": get_settings().followups_per_team_per_minute},
        clock=lambda: clock().timestamp(),
        sleep=time.sleep,
        max_wait=MAX_RATE_WAIT_SECONDS,
    )
    looked = 0
    while max_executions is None or looked < max_executions:
        if not _next(team_id, clock(), limiter, smtp, stats):
            break
        looked += 1
        if looked % 100 == 0:
            log_progress(f"workflows: {looked} executions looked at; {stats.summary()}")
    return stats


def _next(
    team_id: uuid.UUID,
    now: datetime,
    limiter: PgRateLimiter,
    smtp: SmtpConfig | None,
    stats: RunStats,
) -> bool:
    """Decide or run the next due execution; False when there is none (or the run stops)."""
    email: tuple[uuid.UUID, actions.Email] | None = None
    with tenant_session(team_id) as session:
        paused = automation_paused(session, team_id)
        if paused is not None:
            stats.stopped = paused
            return False
        execution = next_due(session, now)
        if execution is None:
            return False
        workflow_row = session.get(Workflow, (team_id, execution.workflow_id))
        assert workflow_row is not None
        try:
            workflow = loaded(workflow_row)
        except ValidationError as exc:
            # Stored before a rule it breaks existed (a template variable renamed since).
            reason = f"workflow_invalid: {exc.errors()[0]['msg']}"
            _attempt_failed(execution, reason, now, stats, final=True)
            return True
        decision = _decide(session, team_id, execution, workflow, now)
        if decision is not None:
            _record(session, team_id, execution, workflow, decision, now, stats)
            return True
        try:
            limiter.acquire()
        except RateLimitReached as full:
            stats.stopped = str(full)
            return False
        ctx = _context(session, team_id, execution, workflow, now)
        step = workflow.steps[execution.step]
        execution.attempts += 1
        execution.claimed_at = now
        execution.updated_at = now
        try:
            with session.begin_nested():
                if isinstance(step, SendEmail):
                    email = (execution.id, actions.compose_email(ctx, step))
                    execution.status = ExecutionStatus.RUNNING
                else:
                    _complete(execution, actions.run(ctx, step), now, stats)
        except actions.Skip as skip:
            _record(
                session,
                team_id,
                execution,
                workflow,
                _Decision(_Verdict.SKIP, str(skip)),
                now,
                stats,
            )
        except Exception as exc:  # noqa: BLE001 - recorded on the execution, the run goes on
            log.exception("workflow execution %s failed", execution.id)
            _attempt_failed(execution, f"{type(exc).__name__}: {exc}", now, stats)
    if email is not None:
        _send_email(team_id, email, smtp, now, stats)
    return True


def _decide(
    session: Session,
    team_id: uuid.UUID,
    execution: WorkflowExecution,
    workflow: Loaded,
    now: datetime,
) -> _Decision | None:
    """Why the execution does not run now (see the module docstring); None: it runs."""
    if not workflow.enabled:
        return _Decision(_Verdict.CANCEL, "workflow_disabled")
    if execution.step >= len(workflow.steps) or (
        workflow.steps[execution.step].action != execution.action
    ):
        return _Decision(_Verdict.SKIP, "workflow_changed: the step is no longer in the workflow")
    step = workflow.steps[execution.step]
    facts = triggers.facts(session, team_id, execution.inbox_item_id, execution.contact_phone)
    if facts.campaign_status == CampaignStatus.CANCELLED:
        return _Decision(_Verdict.CANCEL, "campaign_cancelled")
    if facts.campaign_status == CampaignStatus.PAUSED:
        return _Decision(_Verdict.RESCHEDULE, BlockReason.CAMPAIGN_PAUSED, execution.due_at)
    gone = facts.failed_condition(workflow.trigger)
    if gone is not None:
        return _Decision(_Verdict.SKIP, f"trigger_gone: {gone}")
    due = facts.due(workflow.trigger) + step.delay
    if due > now + DUE_TOLERANCE:
        return _Decision(_Verdict.RESCHEDULE, "trigger_later: a newer message moved it", due)
    if step.action in CONTACT_ACTIONS:
        return _guardrails(session, team_id, execution, step.action, now)
    return None


def _guardrails(
    session: Session,
    team_id: uuid.UUID,
    execution: WorkflowExecution,
    action: WorkflowAction,
    now: datetime,
) -> _Decision | None:
    phone = execution.contact_phone
    flags = phone_flags(session, phone)
    if PhoneFlag.SUPPRESSED in flags:
        return _Decision(_Verdict.CANCEL, BlockReason.SUPPRESSED)
    if action is WorkflowAction.SEND_SMS:
        if PhoneFlag.INVALID in flags:
            return _Decision(_Verdict.SKIP, BlockReason.INVALID_PHONE)
        if PhoneFlag.LANDLINE in flags:
            return _Decision(_Verdict.SKIP, BlockReason.LANDLINE)
    # Two runs deciding follow-ups to one contact at once would both see room under the cap.
    lock_contact(session, team_id, phone)
    cap = get_settings().followups_per_lead
    sent = session.scalar(
        select(func.count())
        .select_from(WorkflowExecution)
        .where(
            WorkflowExecution.contact_phone == phone,
            WorkflowExecution.action.in_(CONTACT_ACTIONS),
            WorkflowExecution.status.in_((ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED)),
            WorkflowExecution.id != execution.id,
        )
    )
    if sent is not None and sent >= cap:
        return _Decision(
            _Verdict.SKIP, f"{BlockReason.LEAD_CAP}: {sent} follow-ups already (at most {cap})"
        )
    if PhoneFlag.CONSENTED not in flags and execution.approval is not ApprovalStatus.APPROVED:
        return _Decision(_Verdict.AWAIT, BlockReason.AWAITING_APPROVAL)
    lead = session.get(Lead, (team_id, execution.lead_id)) if execution.lead_id else None
    quiet = check_quiet_hours(
        now_utc=now,
        zip_code=lead.zip if lead else None,
        state=lead.state if lead else None,
        phone=phone,
    )
    if not quiet.allowed:
        if quiet.retry_at is None:
            return _Decision(_Verdict.SKIP, quiet.reason or BlockReason.UNKNOWN_TIMEZONE)
        return _Decision(_Verdict.RESCHEDULE, BlockReason.QUIET_HOURS, quiet.retry_at)
    return None


def _record(
    session: Session,
    team_id: uuid.UUID,
    execution: WorkflowExecution,
    workflow: Loaded,
    decision: _Decision,
    now: datetime,
    stats: RunStats,
) -> None:
    execution.reason = decision.reason
    execution.updated_at = now
    code = _code(decision.reason)
    match decision.verdict:
        case _Verdict.CANCEL | _Verdict.SKIP:
            execution.status = (
                ExecutionStatus.CANCELLED
                if decision.verdict is _Verdict.CANCEL
                else ExecutionStatus.SKIPPED
            )
            execution.finished_at = now
            counts = stats.cancelled if decision.verdict is _Verdict.CANCEL else stats.skipped
            counts[code] += 1
        case _Verdict.RESCHEDULE:
            assert decision.at is not None
            execution.status = ExecutionStatus.PENDING
            execution.due_at = decision.at
            stats.rescheduled[code] += 1
        case _Verdict.AWAIT:
            execution.status = ExecutionStatus.PENDING
            execution.approval = ApprovalStatus.AWAITING
            stats.awaiting_approval += 1
            enqueue(
                session,
                team_id,
                APPROVAL_NOTIFICATION,
                f"A follow-up to {execution.contact_phone} ({workflow.name}, "
                f"{execution.action}) waits for approval: they never consented to be texted.",
                payload={"execution_id": str(execution.id), "workflow": workflow.name},
                dedupe_key=f"workflow_approval:{execution.id}",
            )


def _complete(
    execution: WorkflowExecution, result: dict[str, object], now: datetime, stats: RunStats
) -> None:
    execution.status = ExecutionStatus.COMPLETED
    execution.result = result
    execution.reason = None
    execution.finished_at = now
    stats.completed += 1


def _attempt_failed(
    execution: WorkflowExecution,
    reason: str,
    now: datetime,
    stats: RunStats,
    *,
    final: bool = False,
) -> None:
    execution.reason = reason[:1000]
    execution.updated_at = now
    if final or execution.attempts >= get_settings().workflow_max_attempts:
        execution.status = ExecutionStatus.FAILED
        execution.finished_at = now
        stats.failed += 1
        return
    execution.status = ExecutionStatus.PENDING
    execution.due_at = now + RETRY_BACKOFF * execution.attempts
    stats.retried += 1


def _context(
    session: Session,
    team_id: uuid.UUID,
    execution: WorkflowExecution,
    workflow: Loaded,
    now: datetime,
) -> actions.Context:
    item = session.get(InboxItem, (team_id, execution.inbox_item_id))
    assert item is not None
    return actions.Context(
        session=session,
        team_id=team_id,
        execution=execution,
        workflow=workflow.name,
        item=item,
        lead=session.get(Lead, (team_id, item.lead_id)) if item.lead_id else None,
        conversation=session.get(Conversation, (team_id, item.contact_phone)),
        now=now,
    )


def _send_email(
    team_id: uuid.UUID,
    job: tuple[uuid.UUID, actions.Email],
    smtp: SmtpConfig | None,
    now: datetime,
    stats: RunStats,
) -> None:
    execution_id, email = job
    outcome: dict[str, object] | str
    retry = False
    if smtp is None:
        outcome, retry = "no SMTP server configured for this run", True
    else:
        try:
            outcome = actions.send_email(smtp, email)
        except actions.Skip as skip:
            outcome = str(skip)
        except actions.Retry as passing:
            outcome, retry = str(passing), True
    with tenant_session(team_id) as session:
        execution = session.get(WorkflowExecution, (team_id, execution_id), with_for_update=True)
        assert execution is not None
        if isinstance(outcome, dict):
            _complete(execution, outcome, now, stats)
        elif retry:
            _attempt_failed(execution, outcome, now, stats)
        else:
            execution.status = ExecutionStatus.SKIPPED
            execution.reason = outcome
            execution.finished_at = now
            stats.skipped[_code(outcome)] += 1
