"""Lead ids: numbered per team, 1, 2, 3, ... from a counter on the team's row
(`teams.last_lead_id`), so an id tells a team nothing about any other team's volume. A
shared sequence did: the jump between two of one team's ids counted everyone else's imports.

Ids grow in the order they are handed out and are never reused, so keyset pagination on
`id` keeps working. A team's ids can have gaps: ids reserved by a transaction that then
rolls back (a retried deadlock, a crashed load) are not handed out again. Gaps only show
the team's own activity.

Every insert into `leads` takes its ids from `reserve_lead_ids`, which commits the
reservation in a short transaction of its own. Taking them inside the inserting transaction
would hold the counter row's lock until that transaction commits, and the two writers of a
load (loader.py) would then insert one after the other."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, update

from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Team


def reserve_lead_ids(team_id: uuid.UUID, count: int, engine: Engine | None = None) -> int:
    """Reserve `count` (> 0) new ids for the team's leads and return the first; the others
    follow it without gaps. Committed on return."""
    if count <= 0:
        raise ValueError("reserve at least one lead id")
    with tenant_session(team_id, engine) as session:
        last = session.scalar(
            update(Team)
            .where(Team.id == team_id)
            .values(last_lead_id=Team.last_lead_id + count)
            .returning(Team.last_lead_id)
        )
    if last is None:
        raise LookupError(f"no team {team_id}")
    return last - count + 1
