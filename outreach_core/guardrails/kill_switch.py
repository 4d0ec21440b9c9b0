"""The team's automation kill switch (`teams.automation_paused_*`). While it is set, no
campaign message, follow-up or workflow step goes out, and auto-replies wait for a person
as reviews; opt-out confirmations, HELP answers and replies a person approved still go.

The switch is a PostgreSQL advisory lock as well as a column: work that must stop with it
(a workflow step, a campaign or follow-up send) reads it through `automation_paused`, which
holds the lock shared until its transaction ends, and `pause` takes it exclusively. So a
pause waits for the step or send in flight, and once the pause is committed nothing more
starts. A row lock on `teams` would do the same but would also queue behind every update
of the row (lead id reservations during an upload).

The read must come in a statement after the one that took the lock: under READ COMMITTED a
statement reads the snapshot taken when it started, which would miss a pause committed
while it waited for the lock. The send engine, which checks the switch before every
message, takes the lock in its transaction's first statement (`SHARED_LOCK`) and reads the
columns (`AutomationSwitch.why_paused`) with its other checks in the next one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select, text, true, update
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import MessageKind
from outreach_core.db.tables import Team

# The switch's lock; bind `:automation_key` to `lock_key(team_id)`.
_LOCK = "{fn}(hashtextextended(:automation_key, 0))"
# Shared, as an expression for a caller's own statement (the send engine's).
SHARED_LOCK = _LOCK.format(fn="pg_advisory_xact_lock_shared")
_EXCLUSIVE_LOCK = _LOCK.format(fn="pg_advisory_xact_lock")
# The messages the switch holds; the others answer what a contact or a person just asked for.
HELD_KINDS = (MessageKind.CAMPAIGN, MessageKind.FOLLOW_UP)


@dataclass(frozen=True)
class AutomationSwitch:
    paused_at: datetime | None
    paused_by: str | None
    reason: str | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"the team's automation is paused (by {self.paused_by}{why})"

    def why_paused(self) -> str | None:
        return self.describe() if self.paused else None


def lock_key(team_id: uuid.UUID) -> str:
    return f"automation:{team_id}"


def automation_paused(session: Session, team_id: uuid.UUID) -> str | None:
    """Why the team's automation is paused, or None; a pause waits until the caller's
    transaction ends."""
    session.execute(text(f"SELECT {SHARED_LOCK}"), {"automation_key": lock_key(team_id)})
    return _read(session, team_id).why_paused()


def _read(session: Session, team_id: uuid.UUID) -> AutomationSwitch:
    row = session.execute(
        select(
            Team.automation_paused_at, Team.automation_paused_by, Team.automation_paused_reason
        ).where(Team.id == team_id)
    ).one()
    return AutomationSwitch(*row)


def switch_state(team_id: uuid.UUID) -> AutomationSwitch:
    with tenant_session(team_id) as session:
        return _read(session, team_id)


def pause(team_id: uuid.UUID, actor: str, reason: str | None) -> AutomationSwitch:
    """Pause the team's automation; returns once nothing more can start. Pausing a paused
    team keeps the first pause's who, when and why."""
    return _switch(
        team_id,
        Team.automation_paused_at.is_(None),
        automation_paused_at=datetime.now(UTC),
        automation_paused_by=actor,
        automation_paused_reason=reason,
    )


def resume(team_id: uuid.UUID) -> AutomationSwitch:
    return _switch(
        team_id,
        true(),
        automation_paused_at=None,
        automation_paused_by=None,
        automation_paused_reason=None,
    )


def _switch(team_id: uuid.UUID, when: ColumnElement[bool], **values: object) -> AutomationSwitch:
    """Change the switch under the exclusive lock: it waits for the work holding it shared."""
    with tenant_session(team_id) as session:
        session.execute(text(f"SELECT {_EXCLUSIVE_LOCK}"), {"automation_key": lock_key(team_id)})
        session.execute(update(Team).where(Team.id == team_id, when).values(**values))
        return _read(session, team_id)
