"""SMS message templates: `{{variable}}` placeholders filled from a lead's values, and the
opt-out language a first message must carry.

Syntax (parsed once by `parse_template`; a bad template fails there, not lead by lead):

    {{name}}             the variable's value; a lead without one is left out (MissingVariable)
    {{name|fallback}}    the value, or `fallback` when the lead has none

Spaces around the name, the `|` and the fallback are ignored (`{{ firstName | there }}`).
Names are the keys of `template_variables.yaml` and are case-sensitive. The fallback is
literal text: it may not be empty (drop the `|` to require a value) and may not contain `|`,
`{` or `}`. Literal braces are not supported anywhere in a template: outside a well-formed
placeholder a brace is almost always a mistyped one, so it is an error rather than text sent
to every lead.

Rendering reads a plain mapping of the lead's values keyed by lead field name (see the YAML
file), so this module needs no database and no SQLAlchemy.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any, Final

import yaml

__all__ = [
    "OPT_OUT_SEPARATOR",
    "OPT_OUT_TEXT",
    "MissingVariable",
    "MoneyStyle",
    "Placeholder",
    "Template",
    "TemplateError",
    "UnknownVariable",
    "ValueFormat",
    "Variable",
    "VariableTable",
    "VariableTableError",
    "has_opt_out_instruction",
    "load_variables",
    "parse_template",
    "parse_variables",
    "with_opt_out",
]

VARIABLES_RESOURCE: Final = "template_variables.yaml"

# Appended to a lead's first message unless the body already says how to opt out.
OPT_OUT_TEXT: Final = "Reply STOP to opt out"
# A line break keeps the notice apart from the copy without adding punctuation the author did
# not write; it costs one character, like a space, and is in the GSM-7 basic set.
OPT_OUT_SEPARATOR: Final = "\n"

_OPEN: Final = "{{"
_CLOSE: Final = "}}"
_FALLBACK_BAR: Final = "|"
# Inner text cannot hold a brace, so `{{{x}}}` leaves a stray brace for the literal check.
_PLACEHOLDER: Final = re.compile(r"\{\{([^{}]*)\}\}")
_VARIABLE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_SUGGESTION_LIMIT: Final = 3

# An opt-out *instruction*, not merely the word: "stop by our office" or "unsubscribe anytime"
# must still get the notice, since a body wrongly judged compliant goes out without one.
# Either a verb before the keyword ("Reply STOP", "text 'stop'", "reply with UNSUBSCRIBE") or
# an opt-out purpose after it ("STOP to end", "Stop 2 quit", "STOP=end"); a bare "stop to"
# is not enough ("don't stop to think").
_OPT_OUT_KEYWORD: Final = r"(?:stop|unsubscribe)"
_OPT_OUT_VERB: Final = r"(?:reply|respond|text|txt|send|msg|message)"
_OPT_OUT_PURPOSE: Final = r"(?:end|quit|cancel|stop|unsubscribe|unsub|opt[\s-]?out)"
_QUOTE: Final = "[\"'\u2018\u2019\u201c\u201d]?"
_OPT_OUT_INSTRUCTION: Final = re.compile(
    rf"\b{_OPT_OUT_VERB}\s+(?:with\s+)?{_QUOTE}{_OPT_OUT_KEYWORD}\b"
    rf"|\b{_OPT_OUT_KEYWORD}{_QUOTE}\s*(?:(?:to|2)\s+{_OPT_OUT_PURPOSE}\b|=)",
    re.IGNORECASE,
)


class TemplateError(ValueError):
    """The template is malformed or names an unknown variable. The API answers it with 422.

    `position` is the 0-based index in the template text where the problem starts."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class UnknownVariable(TemplateError):
    """A placeholder names no known variable; `known` lists the ones that exist."""

    def __init__(self, name: str, known: Sequence[str], position: int | None = None) -> None:
        self.name = name
        self.known = tuple(known)
        suggestions = _suggest(name, self.known)
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        where = f" at position {position}" if position is not None else ""
        super().__init__(
            f"unknown template variable {name!r}{where}{hint} "
            f"(known variables: {', '.join(self.known)})",
            position,
        )


class MissingVariable(LookupError):
    """A lead has no value for a variable the template requires (no fallback given).

    Not a TemplateError: the template is fine, this lead just cannot receive it, so the caller
    leaves the lead out with `reason`."""

    reason: Final = "missing_variable"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no value for template variable {self.name!r}"


class VariableTableError(ValueError):
    """The variables data file is malformed."""


class ValueFormat(StrEnum):
    TEXT = "text"
    MONEY = "money"
    WHOLE_NUMBER = "whole_number"


@dataclass(frozen=True)
class MoneyStyle:
    symbol: str
    decimal_places: int

    def format(self, amount: Decimal) -> str:
        places = self.decimal_places
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        # `rounded < 0` is False for -0, so -0.4 shows as $0, not -$0.
        sign = "-" if rounded < 0 else ""
        return f"{sign}{self.symbol}{abs(rounded):,.{places}f}"


@dataclass(frozen=True)
class Variable:
    """One template variable: how to get its text from a lead's values.

    `sources` are alternatives, tried in order; each is a tuple of field names joined with a
    space, yielding a value only when every field has one."""

    name: str
    format: ValueFormat
    sources: tuple[tuple[str, ...], ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Every lead field this variable may read, in order, without repeats."""
        return tuple(dict.fromkeys(f for source in self.sources for f in source))


@dataclass(frozen=True)
class VariableTable:
    """The known variables (in file order) and the money style they format with."""

    variables: Mapping[str, Variable]
    money: MoneyStyle

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.variables)

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def value(self, name: str, values: Mapping[str, object]) -> str | None:
        """The text of variable `name` for a lead's `values`, or None when it has none."""
        variable = self.variables[name]
        for source in variable.sources:
            if len(source) == 1:
                text = self._formatted(variable.format, values.get(source[0]))
            else:
                # Only text variables may join fields (checked at load time).
                parts = [_text(values.get(f)) for f in source]
                text = " ".join(parts) if all(parts) else None  # type: ignore[arg-type]
            if text:
                return text
        return None

    def _formatted(self, kind: ValueFormat, raw: object) -> str | None:
        if kind is ValueFormat.TEXT:
            return _text(raw)
        number = _number(raw, self.money.symbol)
        if number is None:
            return None
        if kind is ValueFormat.MONEY:
            return self.money.format(number)
        # A count of whole years (or units) completed: 12.9 years owned is 12.
        return str(int(number)) if number >= 0 else None


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    # Lead files carry stray spaces, tabs and line breaks; none of them belong in an SMS.
    text = " ".join(str(raw).split())
    return text or None


def _number(raw: object, symbol: str) -> Decimal | None:
    """`raw` as a finite Decimal, or None. Accepts what lead files hold: 350000, 350000.0,
    '350,000', '$350,000.00', '-$20,000'."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        # Via str so 0.1 stays 0.1 rather than its binary expansion.
        number = Decimal(str(raw))
    elif isinstance(raw, str):
        cleaned = raw.strip().replace(",", "").replace(" ", "")
        if symbol:
            cleaned = cleaned.replace(symbol, "")
        try:
            number = Decimal(cleaned)
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _suggest(name: str, known: Sequence[str]) -> list[str]:
    by_case = [k for k in known if k.lower() == name.lower()]
    return by_case or difflib.get_close_matches(name, known, n=_SUGGESTION_LIMIT)


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise VariableTableError(f"{where}: expected a {kind.__name__}, got {value!r}")
    return value


def _source(raw: Any, where: str) -> tuple[str, ...]:
    fields = (raw,) if isinstance(raw, str) else tuple(_expect(raw, list, where))
    if not fields:
        raise VariableTableError(f"{where}: an empty list of fields")
    for name in fields:
        if not (isinstance(name, str) and _FIELD_NAME.fullmatch(name)):
            raise VariableTableError(f"{where}: {name!r} is not a snake_case field name")
    return fields


def parse_variables(data: Mapping[str, Any]) -> VariableTable:
    """Validate the YAML document (already parsed) into a VariableTable."""
    _expect(data, dict, "template variables")
    unknown = set(data) - {"money", "variables"}
    if unknown:
        raise VariableTableError(f"unknown top-level keys: {sorted(unknown)}")

    money = _expect(data.get("money"), dict, "money")
    symbol = _expect(money.get("symbol"), str, "money.symbol")
    places = money.get("decimal_places")
    if isinstance(places, bool) or not isinstance(places, int) or places < 0:
        raise VariableTableError(f"money.decimal_places: expected an integer >= 0, got {places!r}")

    variables: dict[str, Variable] = {}
    for name, spec in _expect(data.get("variables"), dict, "variables").items():
        where = f"variables.{name}"
        if not (isinstance(name, str) and _VARIABLE_NAME.fullmatch(name)):
            raise VariableTableError(f"{where}: a name is letters and digits, starting a letter")
        _expect(spec, dict, where)
        extra = set(spec) - {"format", "sources"}
        if extra:
            raise VariableTableError(f"{where}: unknown keys {sorted(extra)}")
        try:
            kind = ValueFormat(spec.get("format"))
        except ValueError:
            formats = ", ".join(ValueFormat)
            raise VariableTableError(
                f"{where}.format: {spec.get('format')!r} is not one of {formats}"
            ) from None
        raw_sources = _expect(spec.get("sources"), list, f"{where}.sources")
        if not raw_sources:
            raise VariableTableError(f"{where}.sources: empty")
        sources = tuple(_source(s, f"{where}.sources[{i}]") for i, s in enumerate(raw_sources))
        if kind is not ValueFormat.TEXT and any(len(s) > 1 for s in sources):
            # Joining two numbers with a space would not be a number.
            raise VariableTableError(f"{where}: only text variables may join fields")
        variables[name] = Variable(name=name, format=kind, sources=sources)
    if not variables:
        raise VariableTableError("variables: none defined")
    return VariableTable(variables=variables, money=MoneyStyle(symbol, places))


@functools.cache
def load_variables() -> VariableTable:
    """The packaged variables table, parsed and validated once per process."""
    text = resources.files(__package__).joinpath(VARIABLES_RESOURCE).read_text(encoding="utf-8")
    return parse_variables(yaml.safe_load(text))


@dataclass(frozen=True)
class Placeholder:
    name: str
    # None: the lead must have a value. Otherwise the literal text used when it has none.
    fallback: str | None
    position: int


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and placeholders, in order. Build with parse_template."""

    text: str
    parts: tuple[str | Placeholder, ...]
    table: VariableTable = field(repr=False, compare=False)

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names used, in order of first use."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, Placeholder)))

    @property
    def fields(self) -> tuple[str, ...]:
        """The lead fields rendering may read, so a caller can select only those."""
        return tuple(
            dict.fromkeys(f for name in self.variables for f in self.table.variables[name].fields)
        )

    def render(self, values: Mapping[str, object]) -> str:
        """The message for one lead. Raises MissingVariable for the first placeholder without
        a fallback whose variable the lead has no value for."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self.table.value(part.name, values)
            if value is None:
                if part.fallback is None:
                    raise MissingVariable(part.name)
                value = part.fallback
            out.append(value)
        return "".join(out)


def _check_literal(text: str, start: int, end: int) -> None:
    """Raise TemplateError for the first brace in text[start:end], which lies outside any
    well-formed placeholder."""
    for i in range(start, end):
        char = text[i]
        if char not in "{}":
            continue
        # Measure the whole run, placeholder braces included: `{{{x}}}` is one mistake at 0,
        # not an unclosed '{{' followed by a valid placeholder.
        first = len(text[:i].rstrip(char))
        run = len(text[first:]) - len(text[first:].lstrip(char))
        if run > len(_OPEN):
            raise TemplateError(
                f"{run} {char!r} in a row at position {first}: a placeholder is written "
                "{{name}}",
                first,
            )
        if text.startswith(_OPEN, i):
            raise TemplateError(f"'{{{{' at position {i} is not closed by '}}}}'", i)
        if text.startswith(_CLOSE, i):
            raise TemplateError(f"'}}}}' at position {i} has no opening '{{{{'", i)
        raise TemplateError(
            f"single {char!r} at position {i}: placeholders are written {{{{name}}}} "
            "and literal braces are not supported",
            i,
        )


def _placeholder(inner: str, position: int, table: VariableTable) -> Placeholder:
    name_part, bar, fallback_part = inner.partition(_FALLBACK_BAR)
    name = name_part.strip()
    if not name:
        raise TemplateError(f"empty placeholder at position {position}", position)
    if name not in table:
        raise UnknownVariable(name, table.names, position)
    if not bar:
        return Placeholder(name=name, fallback=None, position=position)
    if _FALLBACK_BAR in fallback_part:
        raise TemplateError(
            f"placeholder {name!r} at position {position} has more than one '|'", position
        )
    fallback = fallback_part.strip()
    if not fallback:
        raise TemplateError(
            f"placeholder {name!r} at position {position} has an empty fallback; "
            "drop the '|' to require a value",
            position,
        )
    return Placeholder(name=name, fallback=fallback, position=position)


def parse_template(text: str, table: VariableTable | None = None) -> Template:
    """Parse `text` once; raises TemplateError (UnknownVariable for an unknown name) for the
    first problem found. `table` defaults to the packaged variables."""
    if not isinstance(text, str):
        raise TypeError(f"template text must be a str, got {type(text).__name__}")
    table = table or load_variables()
    parts: list[str | Placeholder] = []
    cursor = 0
    for match in _PLACEHOLDER.finditer(text):
        _check_literal(text, cursor, match.start())
        if match.start() > cursor:
            parts.append(text[cursor : match.start()])
        parts.append(_placeholder(match.group(1), match.start(), table))
        cursor = match.end()
    _check_literal(text, cursor, len(text))
    if cursor < len(text):
        parts.append(text[cursor:])
    return Template(text=text, parts=tuple(parts), table=table)


def has_opt_out_instruction(body: str) -> bool:
    """Whether `body` already tells the recipient how to opt out ("Text STOP to quit",
    "reply stop to unsubscribe"), as opposed to merely using the word ("stop by")."""
    return _OPT_OUT_INSTRUCTION.search(body) is not None


def with_opt_out(body: str, first_message: bool) -> str:
    """`body` with OPT_OUT_TEXT appended when it is the lead's first message and does not
    already carry an opt-out instruction; any other body is returned unchanged."""
    if not first_message or has_opt_out_instruction(body):
        return body
    copy = body.rstrip()
    return f"{copy}{OPT_OUT_SEPARATOR}{OPT_OUT_TEXT}" if copy else OPT_OUT_TEXT
