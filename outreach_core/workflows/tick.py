"""One look of the workflow sensor at every team: install the default workflows of a team
that has none, create the executions of every item whose trigger holds (one set-based
statement per workflow), and say which teams have executions due. A team whose automation
is paused is left alone: nothing is scheduled or run for it until it resumes."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select, text

from outreach_core.db.engine import system_session, tenant_session
from outreach_core.db.tables import Workflow
from outreach_core.workflows.definitions import ensure_defaults, loaded
from outreach_core.workflows.executions import has_due
from outreach_core.workflows.triggers import schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeamTick:
    team_id: uuid.UUID
    created: int
    due: bool


@dataclass
class Tick:
    teams: list[TeamTick] = field(default_factory=list)
    paused: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def created(self) -> int:
        return sum(t.created for t in self.teams)

    @property
    def due(self) -> list[uuid.UUID]:
        return [t.team_id for t in self.teams if t.due]


def tick(now: datetime) -> Tick:
    started = time.perf_counter()
    with system_session() as session:
        teams = session.execute(text("SELECT * FROM outreach_workflow_teams()")).all()
    result = Tick()
    for team_id, paused, has_workflows in teams:
        if paused:
            result.paused.append(team_id)
            continue
        try:
            result.teams.append(evaluate_team(team_id, now, install_defaults=not has_workflows))
        except Exception:  # noqa: BLE001 - one team's failure never stops the others' ticks
            log.exception("team %s: workflow triggers not evaluated", team_id)
            result.failed.append(team_id)
    result.seconds = time.perf_counter() - started
    return result


def evaluate_team(team_id: uuid.UUID, now: datetime, *, install_defaults: bool = True) -> TeamTick:
    """Schedule the team's executions whose triggers hold at `now`, in one transaction."""
    with tenant_session(team_id) as session:
        if install_defaults:
            ensure_defaults(session, team_id)
        created = 0
        for row in session.scalars(
            select(Workflow).where(Workflow.enabled).order_by(Workflow.name)
        ):
            try:
                workflow = loaded(row)
            except ValidationError:
                # Stored before a rule it breaks existed; its executions fail with the reason.
                log.exception("team %s: workflow %s is no longer valid", team_id, row.name)
                continue
            created += schedule(session, team_id, workflow, now)
        due = has_due(session, now)
    if created:
        log.info("team %s: %d workflow executions scheduled", team_id, created)
    return TeamTick(team_id, created, due)
