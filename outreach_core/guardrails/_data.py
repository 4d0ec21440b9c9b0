"""Reading the guardrails' packaged data files: one error type, one message format."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

PACKAGE = "outreach_core.guardrails"


class GuardrailDataError(ValueError):
    """A guardrail data file is malformed. The message names the file and the offending entry."""


def read_yaml_resource(
    name: str, package: str = PACKAGE, error: type[ValueError] = GuardrailDataError
) -> Any:
    """The parsed YAML document `name` shipped in `package` (the guardrails' by default);
    `error` for a file that is not YAML."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{name}: not valid YAML: {exc}") from None


def describe(exc: ValidationError, source: str) -> GuardrailDataError:
    """One line per problem, each naming where in the document it is (e.g. `states.FL.end`)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        # pydantic prefixes messages raised by our validators with "Value error, ": noise here.
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return GuardrailDataError(f"{source}: " + "; ".join(problems))
