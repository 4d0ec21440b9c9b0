"""Tasks for people (a workflow's create_task step): the open list, and marking one done.
A task about a contact marked done counts as a person having reached them (triggers.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import case, select

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import Priority, TaskStatus
from outreach_core.db.tables import Task


class TaskNotFound(LookupError):
    pass


_URGENCY = case({Priority.HOT: 0, Priority.WARM: 1, Priority.COLD: 2}, value=Task.priority)


def list_tasks(team_id: uuid.UUID, status: TaskStatus | None, limit: int) -> list[Task]:
    """The team's tasks, hot first, then oldest first."""
    query = select(Task).order_by(_URGENCY, Task.created_at, Task.id).limit(limit)
    if status is not None:
        query = query.where(Task.status == status)
    with tenant_session(team_id) as session:
        return list(session.scalars(query))


def complete_task(team_id: uuid.UUID, task_id: uuid.UUID, actor: str) -> Task:
    """Mark a task done (again: no change, the first completion stands)."""
    with tenant_session(team_id) as session:
        task = session.get(Task, (team_id, task_id), with_for_update=True)
        if task is None:
            raise TaskNotFound(f"no task {task_id} in your team")
        if task.status is not TaskStatus.DONE:
            task.status = TaskStatus.DONE
            task.done_at = datetime.now(UTC)
            task.done_by = actor
        return task
