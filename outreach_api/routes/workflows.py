"""/v1/workflows, /v1/workflow-executions and /v1/tasks: the team's follow-up workflows and
their kill switches, what they did and will do, approvals of follow-ups to contacts who
never consented, and the tasks they made for people. The rules are
`outreach_core.workflows`'; these routes translate."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from outreach_api.deps import TeamId
from outreach_api.errors import V1_ERRORS, error
from outreach_core.db.states import ApprovalStatus, ExecutionStatus, Priority, TaskStatus
from outreach_core.db.tables import Task, Workflow
from outreach_core.workflows import executions, tasks
from outreach_core.workflows.definitions import (
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    WorkflowNotFound,
    list_workflows,
    set_enabled,
)

# 401 everywhere; the 422 of FastAPI's validation on the routes that take input.
router = APIRouter(tags=["workflows"], responses={401: V1_ERRORS[401]})

# Until users come with their names, the API key's team is who acted.
API_ACTOR = "api"
MAX_PAGE = 1000
WorkflowName = Annotated[str, Path(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]
WORKFLOW_NOT_FOUND = {**V1_ERRORS, **error(404, "No workflow of this name in your team.")}
EXECUTION_NOT_FOUND = {
    **V1_ERRORS,
    **error(404, "No workflow execution with this id in your team."),
}
NOT_AWAITING = error(409, "The execution is not waiting for approval (any more).")
TASK_NOT_FOUND = {**V1_ERRORS, **error(404, "No task with this id in your team.")}


class WorkflowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    enabled: bool = Field(description="The workflow's kill switch.")
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    source: str = Field(description="The file it was applied from, or `defaults`.")
    updated_at: datetime


class SwitchedOut(WorkflowOut):
    cancelled: int = Field(description="Pending executions cancelled by disabling it.")


class ExecutionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
    reason: str | None = Field(description="Why it was skipped, cancelled, held or failed.")
    approval: ApprovalStatus | None
    result: dict[str, Any] | None
    why: str = Field(description="The workflow and its trigger.")


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    body: str | None
    priority: Priority
    status: TaskStatus
    inbox_item_id: uuid.UUID | None
    lead_id: int | None
    contact_phone: str | None
    workflow_execution_id: uuid.UUID | None
    created_at: datetime
    done_at: datetime | None
    done_by: str | None


@router.get("/v1/workflows", response_model=list[WorkflowOut])
def workflows(team_id: TeamId) -> list[Workflow]:
    """The team's workflows (the defaults, when it has applied none)."""
    return list_workflows(team_id)


def _switch(name: str, team_id: uuid.UUID, enabled: bool) -> SwitchedOut:
    try:
        workflow, cancelled = set_enabled(team_id, name, enabled, API_ACTOR)
    except WorkflowNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return SwitchedOut(**WorkflowOut.model_validate(workflow).model_dump(), cancelled=cancelled)


@router.post(
    "/v1/workflows/{name}/enable", response_model=SwitchedOut, responses=WORKFLOW_NOT_FOUND
)
def enable(name: WorkflowName, team_id: TeamId) -> SwitchedOut:
    """Items whose trigger holds from now on are followed up again."""
    return _switch(name, team_id, True)


@router.post(
    "/v1/workflows/{name}/disable", response_model=SwitchedOut, responses=WORKFLOW_NOT_FOUND
)
def disable(name: WorkflowName, team_id: TeamId) -> SwitchedOut:
    """The workflow's kill switch: its pending executions are cancelled at once."""
    return _switch(name, team_id, False)


@router.get("/v1/workflow-executions", response_model=list[ExecutionOut], responses=V1_ERRORS)
def list_executions(
    team_id: TeamId,
    status: ExecutionStatus | None = None,
    approval: ApprovalStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
) -> list[ExecutionOut]:
    """Executions, soonest due first; `approval=awaiting` lists those waiting for a person."""
    views = executions.list_executions(team_id, status=status, approval=approval, limit=limit)
    return [ExecutionOut.model_validate(v) for v in views]


def _decide(execution_id: uuid.UUID, team_id: uuid.UUID, approve: bool) -> ExecutionOut:
    try:
        view = executions.decide(team_id, execution_id, API_ACTOR, approve=approve)
    except executions.ExecutionNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except executions.NotAwaitingApproval as exc:
        raise HTTPException(409, str(exc)) from None
    return ExecutionOut.model_validate(view)


@router.post(
    "/v1/workflow-executions/{execution_id}/approve",
    response_model=ExecutionOut,
    responses={**EXECUTION_NOT_FOUND, **NOT_AWAITING},
)
def approve(execution_id: uuid.UUID, team_id: TeamId) -> ExecutionOut:
    """Let a follow-up to a contact who never consented go out; it still passes every
    other guardrail (suppression, the per-lead cap, the sending window) when it runs."""
    return _decide(execution_id, team_id, True)


@router.post(
    "/v1/workflow-executions/{execution_id}/reject",
    response_model=ExecutionOut,
    responses={**EXECUTION_NOT_FOUND, **NOT_AWAITING},
)
def reject(execution_id: uuid.UUID, team_id: TeamId) -> ExecutionOut:
    """The follow-up is cancelled."""
    return _decide(execution_id, team_id, False)


@router.get("/v1/tasks", response_model=list[TaskOut], responses=V1_ERRORS)
def list_tasks(
    team_id: TeamId,
    status: TaskStatus | None = TaskStatus.OPEN,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
) -> list[Task]:
    """Tasks for people, hot first, then oldest first."""
    return tasks.list_tasks(team_id, status, limit)


@router.post("/v1/tasks/{task_id}/done", response_model=TaskOut, responses=TASK_NOT_FOUND)
def task_done(task_id: uuid.UUID, team_id: TeamId) -> Task:
    """Done: a person reached the contact, so workflows waiting for that stand down."""
    try:
        return tasks.complete_task(team_id, task_id, API_ACTOR)
    except tasks.TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
