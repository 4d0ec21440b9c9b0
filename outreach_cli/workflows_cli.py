"""`outreach workflows ...` and `outreach automation ...`: follow-up workflows as YAML, their
kill switches, what they will do, approvals, and the team's automation kill switch. The
rules are `outreach_core.workflows`' and `outreach_core.guardrails.kill_switch`'; these
commands translate and print."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from outreach_cli.console import TeamOption, console, fail
from outreach_core.db.states import ApprovalStatus, ExecutionStatus

workflows_app = typer.Typer(help="Follow-up workflows.", no_args_is_help=True)
automation_app = typer.Typer(help="The team's automation kill switch.", no_args_is_help=True)
CLI_ACTOR = "cli"


def _known_team(team: uuid.UUID) -> None:
    from outreach_core.teams import get_team

    if get_team(team) is None:
        fail(f"no team {team}")


@workflows_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="A workflows YAML file (see defaults.yaml)")],
    team: TeamOption,
) -> None:
    """Create or update the team's workflows from FILE; nothing is applied if any of them
    is invalid. Workflows not in the file are left as they are."""
    from outreach_core.workflows.definitions import (
        WorkflowFileError,
        apply_workflows,
        load_workflow_file,
    )

    _known_team(team)
    try:
        workflows = load_workflow_file(file)
    except WorkflowFileError as exc:
        fail(f"{exc}\nnothing was applied")
    applied = apply_workflows(team, workflows, str(file))
    for name in applied.created:
        console.print(f"created {name}")
    for name in applied.updated:
        console.print(f"updated {name}")


@workflows_app.command("list")
def list_all(team: TeamOption) -> None:
    """The team's workflows (the defaults, when it has applied none)."""
    from outreach_core.workflows.definitions import list_workflows, loaded

    _known_team(team)
    table = Table(title="Workflows")
    for col in ("name", "enabled", "trigger", "steps", "source"):
        table.add_column(col)
    for row in list_workflows(team):
        workflow = loaded(row)
        steps = ", ".join(str(s.action) for s in workflow.steps)
        table.add_row(
            row.name, "yes" if row.enabled else "no", workflow.trigger.describe(), steps, row.source
        )
    console.print(table)


def _switch(name: str, team: uuid.UUID, enabled: bool) -> None:
    from outreach_core.workflows.definitions import WorkflowNotFound, set_enabled

    _known_team(team)
    try:
        _, cancelled = set_enabled(team, name, enabled, CLI_ACTOR)
    except WorkflowNotFound as exc:
        fail(str(exc))
    state = "enabled" if enabled else f"disabled ({cancelled} pending executions cancelled)"
    console.print(f"{name}: {state}")


@workflows_app.command("enable")
def enable(name: str, team: TeamOption) -> None:
    """Switch a workflow on again."""
    _switch(name, team, True)


@workflows_app.command("disable")
def disable(name: str, team: TeamOption) -> None:
    """A workflow's kill switch: its pending executions are cancelled at once."""
    _switch(name, team, False)


@workflows_app.command("executions")
def list_executions(
    team: TeamOption,
    status: Annotated[ExecutionStatus | None, typer.Option(help="Only this status")] = None,
    awaiting: Annotated[bool, typer.Option(help="Only those waiting for approval")] = False,
    limit: int = 50,
) -> None:
    """Executions, soonest due first: who, what, when, why."""
    from outreach_core.workflows.executions import list_executions as views

    _known_team(team)
    approval = ApprovalStatus.AWAITING if awaiting else None
    table = Table(title="Workflow executions")
    for col in ("id", "due", "status", "workflow", "action", "contact", "reason"):
        table.add_column(col)
    for v in views(team, status=status, approval=approval, limit=limit):
        table.add_row(
            str(v.id),
            f"{v.due_at:%Y-%m-%d %H:%M}",
            str(v.status),
            v.workflow,
            v.action,
            v.contact_phone,
            v.reason or "",
        )
    console.print(table)


def _decide(execution_id: uuid.UUID, team: uuid.UUID, approve: bool) -> None:
    from outreach_core.workflows.executions import (
        ExecutionNotFound,
        NotAwaitingApproval,
        decide,
    )

    try:
        view = decide(team, execution_id, CLI_ACTOR, approve=approve)
    except (ExecutionNotFound, NotAwaitingApproval) as exc:
        fail(str(exc))
    console.print(f"{execution_id}: {view.status}" + (f" ({view.reason})" if view.reason else ""))


@workflows_app.command("approve")
def approve(execution_id: uuid.UUID, team: TeamOption) -> None:
    """Let a follow-up to a contact who never consented go out (through the guardrails)."""
    _decide(execution_id, team, True)


@workflows_app.command("reject")
def reject(execution_id: uuid.UUID, team: TeamOption) -> None:
    """Cancel a follow-up waiting for approval."""
    _decide(execution_id, team, False)


@automation_app.command("pause")
def pause(
    team: TeamOption, reason: Annotated[str | None, typer.Option(help="Why, recorded")] = None
) -> None:
    """Stop every campaign send, follow-up and workflow step of the team (auto-replies wait
    for review); returns once nothing more can start."""
    from outreach_core.guardrails import kill_switch

    _known_team(team)
    switch = kill_switch.pause(team, CLI_ACTOR, reason)
    console.print(f"paused at {switch.paused_at:%Y-%m-%d %H:%M:%S} by {switch.paused_by}")


@automation_app.command("resume")
def resume(team: TeamOption) -> None:
    """Let the team's campaigns, follow-ups and auto-replies go out again."""
    from outreach_core.guardrails import kill_switch

    _known_team(team)
    kill_switch.resume(team)
    console.print("resumed")


@automation_app.command("status")
def status(team: TeamOption) -> None:
    """Whether the team's automation is paused, since when, by whom and why."""
    from outreach_core.guardrails import kill_switch

    _known_team(team)
    switch = kill_switch.switch_state(team)
    console.print(
        json.dumps(
            {
                "paused": switch.paused,
                "paused_at": switch.paused_at.isoformat() if switch.paused_at else None,
                "paused_by": switch.paused_by,
                "reason": switch.reason,
            }
        )
    )
