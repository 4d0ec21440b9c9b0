"""Shared pieces of the reply classifier: the reply classes, the clients, reading the data
files, and matching many alternative patterns at a position quickly.

The two data files (`keywords.yaml`, `classification_rules.yaml`) live next to these modules and
are read with importlib.resources, like the guardrails' files; a bad file raises
ReplyRulesError naming the file and the offending entry, in the guardrails' message format."""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from outreach_core.guardrails import _data
from outreach_core.guardrails._data import describe

PACKAGE = "outreach_core.replies"


class ReplyClass(StrEnum):
    """What an inbound reply means. Priorities live in classification_rules.yaml."""

    EMAIL_CAPTURE = "email-capture"
    CALLED_PHONE_LINE = "called-phone-line"
    OPT_OUT = "opt-out"
    INTERESTED = "interested"
    NOT_INTERESTED = "not-interested"
    THANK_YOU = "thank-you"
    QUESTION = "question"
    OTHER = "other"


class Client(StrEnum):
    """Whose outreach the reply answers: each client adds its own rules to the shared ones."""

    HOMEOWNER_ADVISOR = "homeowner-advisor"
    NEXTIER = "nextier"
    ECBB = "ecbb"
    OUTREACHGLOBAL = "outreachglobal"

    @classmethod
    def parse(cls, value: Client | str) -> Client:
        """`value` as a Client; ValueError naming the valid clients when it is none of them."""
        try:
            return cls(value.strip().lower() if isinstance(value, str) else value)
        except ValueError:
            valid = ", ".join(client.value for client in cls)
            raise ValueError(f"unknown client {value!r}: expected one of {valid}") from None


class ReplyRulesError(ValueError):
    """A reply rules file is malformed. The message names the file and the offending entry."""


def read_yaml_resource(name: str) -> Any:
    """The parsed YAML document `name` shipped next to this module."""
    return _data.read_yaml_resource(name, PACKAGE, ReplyRulesError)


def validation_error(exc: ValidationError, source: str) -> ReplyRulesError:
    """One line per problem, each naming where in the document it is (`opt_out_phrases.3`)."""
    return ReplyRulesError(str(describe(exc, source)))


# ----------------------------------------------------------------------------- fast alternation

try:  # the regex parser is private; without it every alternative is simply always tried
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - other Python versions
    _sre = _sre_parse = None  # type: ignore[assignment]

_MAX_FIRST_CHARS = 256


class Alternation:
    """Named regex alternatives tried at a position, like one `(?P<a>...)|(?P<b>...)` pattern,
    but only with the alternatives that can start with the character found there.

    Python's regex engine cannot reject an alternative that begins with a group, `\\b` or a
    lookbehind without entering it, and the rules' patterns all do: trying only the candidates
    for the first character makes matching several times faster. An alternative whose first
    characters cannot be worked out is a candidate everywhere."""

    def __init__(self, alternatives: Sequence[tuple[str, str]]) -> None:
        firsts = [first_chars(source) for _, source in alternatives]
        everywhere = [i for i, chars in enumerate(firsts) if chars is None]
        compiled: dict[tuple[int, ...], re.Pattern[str]] = {}

        def pattern_for(indices: Sequence[int]) -> re.Pattern[str] | None:
            key = tuple(sorted(indices))  # original order: the first listed alternative wins
            if not key:
                return None
            if key not in compiled:
                compiled[key] = re.compile(
                    "|".join(f"(?P<{alternatives[i][0]}>{alternatives[i][1]})" for i in key)
                )
            return compiled[key]

        by_char: dict[str, list[int]] = {}
        for index, chars in enumerate(firsts):
            for char in chars or ():
                by_char.setdefault(char, []).append(index)
        # Public for the hot loops, which look the pattern up themselves (a call per position
        # costs as much as the match): by_char.get(char, elsewhere).
        self.by_char = {
            char: pattern_for([*everywhere, *indices]) for char, indices in by_char.items()
        }
        self.elsewhere = pattern_for(everywhere)
        # An alternative that can match nothing at all may match at the end of the text.
        self._at_end = pattern_for(range(len(alternatives)))

    def match(self, string: str, pos: int) -> re.Match[str] | None:
        """The first alternative matching at `pos`; `lastgroup` names it."""
        if pos >= len(string):
            pattern = self._at_end
        else:
            pattern = self.by_char.get(string[pos], self.elsewhere)
        return pattern.match(string, pos) if pattern is not None else None


def first_chars(source: str) -> frozenset[str] | None:
    """The characters a match of `source` can start with, or None when unknown (or when it can
    match an empty string, which any position allows)."""
    if _sre_parse is None:
        return None
    try:
        parsed = _sre_parse.parse(source)
    except re.error:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    chars, nullable = _first_of_sequence(list(parsed))
    if chars is None or nullable or len(chars) > _MAX_FIRST_CHARS:
        return None
    return frozenset(chars)


def _first_of_sequence(items: list[Any]) -> tuple[set[str] | None, bool]:
    """(first characters, whether the sequence can match empty) of parsed regex items."""
    found: set[str] = set()
    for op, av in items:
        chars, nullable = _first_of_item(op, av)
        if chars is None:
            return None, False
        found |= chars
        if not nullable:
            return found, False
    return found, True


def _first_of_item(op: Any, av: Any) -> tuple[set[str] | None, bool]:
    c = _sre
    if op is c.LITERAL:
        return {chr(av)}, False
    if op is c.IN:
        return _charset(av), False
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
        return set(), True  # zero width: look at what follows
    if op is c.SUBPATTERN:
        return _first_of_sequence(list(av[-1]))
    if op is c.ATOMIC_GROUP:
        return _first_of_sequence(list(av))
    if op is c.BRANCH:
        found: set[str] = set()
        any_nullable = False
        for branch in av[1]:
            chars, nullable = _first_of_sequence(list(branch))
            if chars is None:
                return None, False
            found |= chars
            any_nullable = any_nullable or nullable
        return found, any_nullable
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        low, _, body = av
        chars, nullable = _first_of_sequence(list(body))
        return chars, nullable or low == 0
    return None, False  # ANY, categories, back-references...: could be anything


def _charset(items: Any) -> set[str] | None:
    c = _sre
    chars: set[str] = set()
    for op, av in items:
        if op is c.LITERAL:
            chars.add(chr(av))
        elif op is c.RANGE and av[1] - av[0] < _MAX_FIRST_CHARS:
            chars.update(chr(code) for code in range(av[0], av[1] + 1))
        else:
            return None  # negated sets, categories, big ranges
    return chars
