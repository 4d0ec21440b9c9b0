"""Workflow definitions as data: the YAML format (see defaults.yaml for it, documented),
validated with pydantic, and the team's `workflows` rows they are applied to.

A file is applied whole or not at all: every workflow in it is validated first, and a bad
one fails the file with a message naming the file, the workflow and the field."""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    ExecutionStatus,
    Priority,
    ResponseBucket,
    WorkflowAction,
)
from outreach_core.db.tables import Workflow, WorkflowExecution
from outreach_core.enrich.derive import load_scoring_table
from outreach_core.messaging.templates import TemplateError, parse_template
from outreach_core.replies.classes import ReplyClass

DEFAULTS_RESOURCE = "defaults.yaml"
DEFAULTS_SOURCE = "defaults"
# Items older than this are not followed up unless a trigger says otherwise: a workflow
# created (or a sensor restarted) today does not text about last month's replies.
MAX_ITEM_AGE_HOURS = 72.0
# Longer than any follow-up should wait; a typo of 2400 for 24 is refused.
MAX_HOURS = 24.0 * 90
MAX_STEPS = 10

# What task titles and bodies and team notifications may name.
TEXT_FIELDS = frozenset({"contact", "first_name", "classification", "message", "workflow"})
# Steps that reach the contact: the follow-up guardrails apply to them.
CONTACT_ACTIONS = frozenset({WorkflowAction.SEND_SMS, WorkflowAction.SEND_EMAIL})

# A workflow's name: letters, digits and single dashes (it is also an API path segment).
NAME_PATTERN = r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$"
NAME_MAX_LENGTH = 120


class WorkflowFileError(ValueError):
    """A workflow file is malformed; the message names the file, the workflow and the field."""


def _text_fields(text: str) -> str:
    """`text` if every `{field}` in it is one of TEXT_FIELDS."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"not a valid text ({exc}); a literal brace is {{{{ or }}}}") from None
    for _, name, spec, conversion in parsed:
        if name is not None and (name not in TEXT_FIELDS or spec or conversion):
            known = ", ".join(f"{{{f}}}" for f in sorted(TEXT_FIELDS))
            raise ValueError(f"unknown field {{{name}}}: use {known}")
    return text


def _template(text: str) -> str:
    try:
        parse_template(text)
    except TemplateError as exc:
        raise ValueError(f"template: {exc}") from None
    return text


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_hours: float = Field(default=0, ge=0, le=MAX_HOURS)

    @property
    def delay(self) -> timedelta:
        return timedelta(hours=self.delay_hours)


_Text = Annotated[str, Field(min_length=1, max_length=1600, pattern=r"^[^\x00]*$")]


class SendSms(_Step):
    action: Literal[WorkflowAction.SEND_SMS]
    text: _Text

    _check = field_validator("text")(_template)


class SendEmail(_Step):
    action: Literal[WorkflowAction.SEND_EMAIL]
    subject: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00\r\n]*$")]
    text: _Text

    _check = field_validator("subject", "text")(_template)


class CreateTask(_Step):
    action: Literal[WorkflowAction.CREATE_TASK]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    body: _Text | None = None
    priority: Priority = Priority.WARM

    _check = field_validator("title", "body")(lambda v: v if v is None else _text_fields(v))


class MoveToBucket(_Step):
    action: Literal[WorkflowAction.MOVE_TO_BUCKET]
    bucket: ResponseBucket
    reason: Annotated[str, Field(max_length=500)] | None = None


class UpdateLeadScore(_Step):
    """A scoring event: the rules file's delta for it, or `delta` under a name of one's own."""

    action: Literal[WorkflowAction.UPDATE_LEAD_SCORE]
    event: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")]
    delta: Annotated[int, Field(ge=-1000, le=1000)] | None = None

    @model_validator(mode="after")
    def _known(self) -> UpdateLeadScore:
        rules = load_scoring_table()
        if self.delta is None and self.event not in {*rules.events, *rules.set_to}:
            known = ", ".join(sorted([*rules.events, *rules.set_to]))
            raise ValueError(
                f"event {self.event!r} has no scoring rule: give a delta, or use one of {known}"
            )
        if self.delta is not None and self.event in rules.set_to:
            raise ValueError(f"event {self.event!r} sets the score; it takes no delta")
        return self


class TagLead(_Step):
    action: Literal[WorkflowAction.TAG_LEAD]
    tag: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^\x00,{}]+$")]


class NotifyTeam(_Step):
    action: Literal[WorkflowAction.NOTIFY_TEAM]
    text: Annotated[str, Field(min_length=1, max_length=2000)]

    _check = field_validator("text")(_text_fields)


Step = Annotated[
    SendSms | SendEmail | CreateTask | MoveToBucket | UpdateLeadScore | TagLead | NotifyTeam,
    Field(discriminator="action"),
]
_STEPS = TypeAdapter(list[Step])

_Hours = Annotated[float, Field(ge=0, le=MAX_HOURS)]


class Trigger(BaseModel):
    """When a workflow fires for an inbox item (defaults.yaml documents each condition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classification: list[ReplyClass] = Field(min_length=1)
    hours_since_last_inbound: _Hours | None = None
    hours_since_last_message: _Hours | None = None
    email_provided: bool | None = None
    person_contacted: bool | None = None
    max_item_age_hours: Annotated[float, Field(gt=0, le=MAX_HOURS)] = MAX_ITEM_AGE_HOURS

    @field_validator("classification", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _can_fire(self) -> Trigger:
        waits = [h for h in (self.hours_since_last_inbound, self.hours_since_last_message) if h]
        if waits and max(waits) >= self.max_item_age_hours:
            raise ValueError(
                f"max_item_age_hours ({self.max_item_age_hours:g}) must be longer than the "
                f"hours the trigger waits ({max(waits):g}), or it can never fire"
            )
        return self

    def describe(self) -> str:
        """The trigger in words, for the schedule's `why`."""
        parts = [" or ".join(self.classification)]
        if self.email_provided is not None:
            parts.append("email given" if self.email_provided else "no email")
        if self.person_contacted is not None:
            parts.append("a person reached them" if self.person_contacted else "no person yet")
        if self.hours_since_last_inbound:
            parts.append(f"{self.hours_since_last_inbound:g} h since they wrote")
        if self.hours_since_last_message:
            parts.append(f"{self.hours_since_last_message:g} h since the last message")
        return ", ".join(parts)


class WorkflowDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]
    description: Annotated[str, Field(max_length=1000)] | None = None
    # None: a new workflow is enabled; an existing one keeps its switch.
    enabled: bool | None = None
    trigger: Trigger
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)


class WorkflowFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflows: list[WorkflowDef] = Field(min_length=1)

    @field_validator("workflows")
    @classmethod
    def _unique_names(cls, workflows: list[WorkflowDef]) -> list[WorkflowDef]:
        seen: set[str] = set()
        for workflow in workflows:
            if workflow.name in seen:
                raise ValueError(f"workflow name {workflow.name!r} appears twice")
            seen.add(workflow.name)
        return workflows


def parse_workflows(document: Any, source: str) -> WorkflowFile:
    """Validate a parsed YAML document; WorkflowFileError names each problem."""
    try:
        return WorkflowFile.model_validate(document)
    except ValidationError as exc:
        raise WorkflowFileError(_describe(exc, document, source)) from None


def _describe(exc: ValidationError, document: Any, source: str) -> str:
    problems = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "workflows" and isinstance(loc[1], int):
            where = f"workflow {_name_of(document, loc[1])}: "
            loc = loc[2:]
        # The discriminated union adds the step's action to the path: noise for a reader.
        field = ".".join(str(p) for p in loc if p not in set(WorkflowAction)) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}{field}: {message}")
    return f"{source}: " + "; ".join(problems)


def _name_of(document: Any, index: int) -> str:
    try:
        name = document["workflows"][index]["name"]
    except (KeyError, IndexError, TypeError):
        name = None
    return f"{name!r}" if isinstance(name, str) else f"#{index + 1}"


def load_workflow_file(path: Path) -> WorkflowFile:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowFileError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WorkflowFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_workflows(document, str(path))


@cache
def default_workflows() -> WorkflowFile:
    text = resources.files(__package__).joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")
    return parse_workflows(yaml.safe_load(text), DEFAULTS_RESOURCE)


# ------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Loaded:
    """A workflow row with its trigger and steps parsed."""

    id: uuid.UUID
    name: str
    enabled: bool
    trigger: Trigger
    steps: tuple[Step, ...]


def loaded(row: Workflow) -> Loaded:
    return Loaded(
        id=row.id,
        name=row.name,
        enabled=row.enabled,
        trigger=Trigger.model_validate(row.trigger),
        steps=tuple(_STEPS.validate_python(row.steps)),
    )


@dataclass(frozen=True)
class Applied:
    created: list[str]
    updated: list[str]


def _upsert(
    session: Session, team_id: uuid.UUID, workflows: WorkflowFile, source: str, *, only_new: bool
) -> list[tuple[str, bool]]:
    """(name, inserted) per workflow written."""
    written = []
    for workflow in workflows.workflows:
        values = {
            "description": workflow.description,
            "trigger": workflow.trigger.model_dump(mode="json", exclude_none=True),
            "steps": [s.model_dump(mode="json", exclude_none=True) for s in workflow.steps],
            "source": source,
        }
        statement = insert(Workflow).values(
            team_id=team_id,
            id=uuid.uuid4(),
            name=workflow.name,
            enabled=True if workflow.enabled is None else workflow.enabled,
            **values,
        )
        if only_new:
            statement = statement.on_conflict_do_nothing(index_elements=["team_id", "name"])
        else:
            changes = {**values, "updated_at": func.now()}
            if workflow.enabled is not None:
                changes["enabled"] = workflow.enabled
            statement = statement.on_conflict_do_update(
                index_elements=["team_id", "name"], set_=changes
            )
        # xmax is 0 in a row version this statement inserted, not in one it updated.
        inserted = session.scalar(statement.returning(literal_column("xmax = 0")))
        if inserted is not None:
            written.append((workflow.name, bool(inserted)))
    return written


def apply_workflows(team_id: uuid.UUID, workflows: WorkflowFile, source: str) -> Applied:
    """Create or update the team's workflows of that name, all in one transaction.
    Workflows of the team not in the file are left as they are."""
    with tenant_session(team_id) as session:
        written = _upsert(session, team_id, workflows, source, only_new=False)
    return Applied(
        created=[n for n, new in written if new], updated=[n for n, new in written if not new]
    )


def ensure_defaults(session: Session, team_id: uuid.UUID) -> int:
    """Install the default workflows for a team that has none; returns how many."""
    if session.scalar(select(func.count()).select_from(Workflow)):
        return 0
    return len(_upsert(session, team_id, default_workflows(), DEFAULTS_SOURCE, only_new=True))


class WorkflowNotFound(LookupError):
    pass


def list_workflows(team_id: uuid.UUID) -> list[Workflow]:
    """The team's workflows by name (the defaults, when it has none yet)."""
    with tenant_session(team_id) as session:
        ensure_defaults(session, team_id)
        return list(session.scalars(select(Workflow).order_by(Workflow.name)))


def set_enabled(team_id: uuid.UUID, name: str, enabled: bool, actor: str) -> tuple[Workflow, int]:
    """The per-workflow kill switch. Disabling also cancels the workflow's pending
    executions (with who did it) in the same transaction; returns the workflow and how many
    were cancelled. Re-enabling follows up items whose trigger holds from then on."""
    now = datetime.now(UTC)
    with tenant_session(team_id) as session:
        ensure_defaults(session, team_id)
        workflow = session.scalar(select(Workflow).where(Workflow.name == name).with_for_update())
        if workflow is None:
            raise WorkflowNotFound(f"no workflow {name!r} in your team")
        workflow.enabled = enabled
        workflow.updated_at = now
        cancelled = 0
        if not enabled:
            cancelled = session.execute(
                update(WorkflowExecution)
                .where(
                    WorkflowExecution.workflow_id == workflow.id,
                    WorkflowExecution.status == ExecutionStatus.PENDING,
                )
                .values(
                    status=ExecutionStatus.CANCELLED,
                    reason=f"workflow_disabled: by {actor}",
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount
        return workflow, cancelled
