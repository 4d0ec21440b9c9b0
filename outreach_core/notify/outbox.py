"""Recording a team notification. It is a row first, committed with whatever caused it (a
budget alert, a workflow step); a sensor posts it afterwards, so a crash or an unreachable
webhook loses nothing. A `dedupe_key` makes one cause at most one notification."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from outreach_core.db.tables import TeamNotification


def enqueue(
    session: Session,
    team_id: uuid.UUID,
    kind: str,
    text: str,
    payload: dict[str, Any] | None = None,
    *,
    dedupe_key: str,
) -> bool:
    """Add a notification in the caller's transaction; False when `dedupe_key` already
    made one."""
    values = {
        "team_id": team_id,
        "id": uuid.uuid4(),
        "kind": kind,
        "text": text,
        "payload": payload or {},
        "dedupe_key": dedupe_key,
    }
    inserted = session.execute(
        pg_insert(TeamNotification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["team_id", "dedupe_key"])
        .returning(TeamNotification.id)
    ).first()
    return inserted is not None
