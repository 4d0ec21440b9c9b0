"""Inbox placement rules (`inbox_rules.yaml`): priority and response bucket per
classification, validated once per process."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from outreach_core.db.states import Priority, ResponseBucket
from outreach_core.guardrails._data import describe, read_yaml_resource
from outreach_core.replies.classes import ReplyClass

RESOURCE = "inbox_rules.yaml"


class Placement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Priority
    bucket: ResponseBucket


class InboxRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: dict[ReplyClass, Placement]
    email_capture_with_interest: Priority

    @model_validator(mode="after")
    def _every_class(self) -> InboxRules:
        missing = sorted(set(ReplyClass) - set(self.classes))
        if missing:
            raise ValueError(f"classes: no placement for {', '.join(missing)}")
        return self

    def place(self, classification: ReplyClass, interested: bool = False) -> Placement:
        placement = self.classes[classification]
        if classification is ReplyClass.EMAIL_CAPTURE and interested:
            return Placement(priority=self.email_capture_with_interest, bucket=placement.bucket)
        return placement


@cache
def load_inbox_rules() -> InboxRules:
    try:
        return InboxRules.model_validate(read_yaml_resource(RESOURCE, __package__))
    except ValidationError as exc:
        raise describe(exc, RESOURCE) from None
