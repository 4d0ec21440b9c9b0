"""What a provider's error code means for one message: the policy table lives in
`provider_errors.yaml`; this reads it once and answers one question per code."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict


class ErrorAction(StrEnum):
    RETRY = "retry"
    SUPPRESS = "suppress"
    INVALID_PHONE = "invalid_phone"
    LANDLINE = "landline"
    CARRIER_FILTERED = "carrier_filtered"
    HALT_NUMBER = "halt_number"
    FAIL = "fail"  # this message only, no retry


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retry: list[int]
    suppress: list[int]
    invalid_phone: list[int]
    landline: list[int]
    carrier_filtered: list[int]
    halt_number: list[int]


@cache
def _twilio() -> dict[int, ErrorAction]:
    text = resources.files(__package__).joinpath("provider_errors.yaml").read_text()
    policy = _Policy.model_validate(yaml.safe_load(text)["twilio"])
    actions: dict[int, ErrorAction] = {}
    for action in ErrorAction:
        for code in getattr(policy, action.value, []):
            if code in actions:
                raise ValueError(f"provider_errors.yaml: code {code} has two actions")
            actions[code] = action
    return actions


def action_for(code: int | None, http_status: int | None = None) -> ErrorAction:
    """A code from the table decides; without one, a timeout (no status), a 429 or a 5xx is
    retried and any other refusal fails the message."""
    if code is not None and code in _twilio():
        return _twilio()[code]
    if http_status is None or http_status == 429 or http_status >= 500:
        return ErrorAction.RETRY
    return ErrorAction.FAIL
