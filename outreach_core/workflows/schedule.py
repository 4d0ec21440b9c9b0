"""The calendar of what goes out next (`GET /v1/schedule`): campaign sends by hour, and the
pending workflow executions one by one, who, what, when and why, in time order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from outreach_core.messaging.campaigns import upcoming_sends
from outreach_core.workflows.definitions import CONTACT_ACTIONS
from outreach_core.workflows.executions import pending_executions


class EntryKind(StrEnum):
    CAMPAIGN_SEND = "campaign_send"
    WORKFLOW_EXECUTION = "workflow_execution"


@dataclass(frozen=True)
class ScheduleEntry:
    kind: EntryKind
    at: datetime
    # Campaign sends: the campaign, its status, the hour and how many messages.
    campaign_id: uuid.UUID | None = None
    campaign_name: str | None = None
    status: str | None = None
    hour: datetime | None = None
    messages: int = 0
    # Workflow executions: who, what and why (why it waits, when it does).
    execution_id: uuid.UUID | None = None
    workflow: str | None = None
    who: str | None = None
    what: str | None = None
    why: str | None = None
    reason: str | None = None


def calendar(team_id: uuid.UUID, limit: int) -> list[ScheduleEntry]:
    sends = [
        ScheduleEntry(
            kind=EntryKind.CAMPAIGN_SEND,
            at=u.hour,
            campaign_id=u.campaign_id,
            campaign_name=u.campaign_name,
            status=str(u.status),
            hour=u.hour,
            messages=u.messages,
        )
        for u in upcoming_sends(team_id, limit)
    ]
    executions = [
        ScheduleEntry(
            kind=EntryKind.WORKFLOW_EXECUTION,
            at=e.due_at,
            status=str(e.status),
            hour=e.due_at.replace(minute=0, second=0, microsecond=0),
            messages=1 if e.action in CONTACT_ACTIONS else 0,
            execution_id=e.id,
            workflow=e.workflow,
            who=e.contact_phone + (f" ({e.lead_name})" if e.lead_name else ""),
            what=e.action,
            why=e.why,
            reason=e.reason,
        )
        for e in pending_executions(team_id, limit)
    ]
    return sorted(sends + executions, key=lambda entry: entry.at)[:limit]
