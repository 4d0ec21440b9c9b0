"""The deliverable catalogue: which email each client sends when a lead texts an address back.

The data lives in `catalogue.yaml` next to this module (its header describes the format). It is
parsed and validated once per process by `load_catalogue()`; a bad file fails at load with a
message naming the entry, in the guardrails' format, rather than at the first send.

Templates are checked at load for the placeholders they may use, so rendering can never leave a
raw `{placeholder}` in an email or fail on a typo. The lead's first name only appears through
`{greeting}`, whose unnamed form is used when the name is missing."""

from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outreach_core.guardrails._data import describe

PACKAGE = "outreach_core.deliverables"
CATALOGUE_RESOURCE = "catalogue.yaml"

_SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_WHITESPACE = re.compile(r"\s+")

# What each kind of template may refer to; checked at load.
GREETING_PLACEHOLDERS = frozenset({"first_name"})
SUBJECT_PLACEHOLDERS = frozenset({"team_name", "deliverable_title"})
BODY_PLACEHOLDERS = frozenset({"greeting", "team_name", "deliverable_title"})


class CatalogueError(ValueError):
    """The catalogue file is malformed. The message names the file and the offending entry."""


def _placeholders(template: str) -> set[str]:
    """The fields `template` refers to. ValueError for anything but plain `{name}` fields."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
        ) from None
    fields = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        # Attribute access, indexing and format specs have no use here and would let a
        # template reach into the values' internals.
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{field}}} must be a plain {{name}}")
        fields.add(field)
    return fields


def _check_template(template: str, allowed: frozenset[str]) -> str:
    unknown = sorted(_placeholders(template) - allowed)
    if unknown:
        names = ", ".join(f"{{{name}}}" for name in unknown)
        expected = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
        raise ValueError(f"unknown placeholder(s) {names}: expected {expected}")
    return template


class Greeting(BaseModel):
    """A body's first line: `named` when the first name is known, else the neutral `unnamed`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    named: str = Field(min_length=1)
    unnamed: str = Field(min_length=1)

    @field_validator("named")
    @classmethod
    def _named_uses_the_name(cls, value: str) -> str:
        _check_template(value, GREETING_PLACEHOLDERS)
        if "first_name" not in _placeholders(value):
            raise ValueError("must contain {first_name} (use `unnamed` for the neutral form)")
        return value

    @field_validator("unnamed")
    @classmethod
    def _unnamed_is_plain(cls, value: str) -> str:
        return _check_template(value, frozenset())

    def render(self, first_name: str | None) -> str:
        return self.named.format(first_name=first_name) if first_name else self.unnamed


class _Entry(BaseModel):
    """One client's entry as written in the file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_SLUG)
    title: str = Field(min_length=1)
    queue: str = Field(pattern=_SLUG)
    subject: str = Field(min_length=1)
    text: str = Field(min_length=1)
    html: str = Field(min_length=1)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if "\n" in value.strip() or "\r" in value:
            raise ValueError("must be a single line")
        return _check_template(value, SUBJECT_PLACEHOLDERS)

    @field_validator("text", "html")
    @classmethod
    def _body(cls, value: str) -> str:
        return _check_template(value, BODY_PLACEHOLDERS)


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    greeting: Greeting
    clients: dict[str, _Entry] = Field(min_length=1)

    @field_validator("clients")
    @classmethod
    def _clients(cls, clients: dict[str, _Entry]) -> dict[str, _Entry]:
        bad = sorted(name for name in clients if not re.fullmatch(_SLUG, name))
        if bad:
            raise ValueError(f"client name(s) {bad} must be lower-case slugs such as 'ecbb'")
        seen: dict[str, str] = {}
        for client, entry in clients.items():
            if entry.id in seen:
                raise ValueError(
                    f"deliverable id {entry.id!r} is used by both {seen[entry.id]!r} and "
                    f"{client!r}: ids must be unique"
                )
            seen[entry.id] = client
        return clients


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Deliverable:
    """What a client's leads get by email. `id`, `title` and `queue` are what the caller stores;
    the templates are rendered by `render`."""

    client: str
    id: str
    title: str
    queue: str
    subject: str
    text: str
    html: str
    greeting: Greeting

    def render(self, *, first_name: str | None, team_name: str) -> RenderedEmail:
        """Subject and bodies for one lead. A blank `first_name` counts as missing; values are
        HTML-escaped in the HTML body (the first name comes from lead data)."""
        team = _one_line(team_name)
        if not team:
            raise ValueError("team_name must not be blank")
        name = _one_line(first_name or "")
        values = {
            "greeting": self.greeting.render(name or None),
            "team_name": team,
            "deliverable_title": self.title,
        }
        escaped = {key: html.escape(value) for key, value in values.items()}
        return RenderedEmail(
            subject=_one_line(self.subject.format(**values)),
            text=self.text.format(**values),
            html=self.html.format(**escaped),
        )


@dataclass(frozen=True)
class Catalogue:
    deliverables: dict[str, Deliverable]

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(sorted(self.deliverables))

    def for_client(self, client: str) -> Deliverable:
        """The client's deliverable; ValueError naming the valid clients for an unknown one."""
        found = self.deliverables.get(client.strip().lower())
        if found is None:
            raise ValueError(
                f"unknown client {client!r}: expected one of {', '.join(self.clients)}"
            )
        return found


def _one_line(value: str) -> str:
    # Names and subjects end up in headers and greetings: stray newlines or runs of spaces
    # from lead data would break the one or look odd in the other.
    return _WHITESPACE.sub(" ", value).strip()


def parse_catalogue(document: Any, source: str = CATALOGUE_RESOURCE) -> Catalogue:
    """Validate a parsed catalogue document. CatalogueError names `source` and each bad entry."""
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as exc:
        raise CatalogueError(str(describe(exc, source))) from None
    return Catalogue(
        deliverables={
            client: Deliverable(client=client, greeting=parsed.greeting, **entry.model_dump())
            for client, entry in parsed.clients.items()
        }
    )


def read_catalogue(text: str, source: str = CATALOGUE_RESOURCE) -> Catalogue:
    """Parse and validate catalogue YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: not valid YAML: {exc}") from None
    return parse_catalogue(document, source)


@cache
def load_catalogue() -> Catalogue:
    """The packaged catalogue, read and validated once per process."""
    text = resources.files(PACKAGE).joinpath(CATALOGUE_RESOURCE).read_text(encoding="utf-8")
    return read_catalogue(text)


def deliverable_for(client: str) -> Deliverable:
    """The deliverable `client` sends; ValueError naming the valid clients for an unknown one."""
    return load_catalogue().for_client(client)
