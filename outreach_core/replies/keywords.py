"""Carrier keywords in inbound SMS: opt-out (STOP...), opt-in (START...) and help (HELP...).

The keywords and the natural wordings of an opt-out are data, in `keywords.yaml` next to this
module (see its header for the matching order). They are parsed, validated and compiled once
per process by `load_keyword_rules()`; a bad file fails at load with a message naming the entry.

Pure: no database, no network. `keyword_intent()` is on the inbound webhook's hot path."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from outreach_core.replies.classes import Alternation, read_yaml_resource, validation_error

RULES_RESOURCE = "keywords.yaml"


class KeywordIntent(StrEnum):
    """What a carrier keyword asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


@dataclass(frozen=True)
class KeywordMatch:
    """Why a message has an intent: `rule` names the keyword, typo or phrase that matched;
    `how` is "twilio", "keyword", "typo", "clause" or "phrase" (weakest last)."""

    intent: KeywordIntent
    rule: str
    how: str


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TERM_REF = re.compile(r"\{([a-z_]+)\}")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# Clause punctuation becomes a " . " marker; any other symbol or emoji separates words.
_CLAUSE_BREAK = re.compile(r"[.!?,;:\n\r\u2026]+")
_SYMBOL = re.compile(r"[^\w\s'.#]+|_")
_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[\W_]+")
_RUNS = re.compile(r"(.)\1+")


def squeeze(word: str) -> str:
    """`word` with runs of one character counted once ("stoppp" -> "stop")."""
    return _RUNS.sub(r"\1", word)


def whole_message_key(text: str) -> str:
    """The message as one lower-case word: no spaces, punctuation or emoji, runs squeezed.
    "Stop.", " STOP!! ", "stop 🛑" and "S-T-O-P" all give "stop"."""
    return squeeze(_NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).lower()))


def clause_text(text: str) -> str:
    """The message as the phrase patterns see it (see keywords.yaml): lower case, straight
    quotes, clause punctuation as " . ", other symbols and emoji as spaces."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_QUOTES)
    text = _CLAUSE_BREAK.sub(" . ", text)
    text = _SYMBOL.sub(" ", text)
    return _SPACES.sub(" ", text).strip(" .")


class OptOutPhrase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    pattern: str

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(f"{value!r} is not a lower-case slug such as 'stop-contacting'")
        return value


class ClauseFillers(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class KeywordRules(BaseModel):
    """keywords.yaml, validated. `matcher` is the compiled form used at run time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keywords: dict[KeywordIntent, list[str]]
    typos: dict[KeywordIntent, list[str]] = Field(default_factory=dict)
    twilio_opt_out_type: dict[str, KeywordIntent]
    clause_fillers: ClauseFillers
    not_after: list[list[str]] = Field(min_length=1)
    terms: dict[str, str] = Field(default_factory=dict)
    opt_out_phrases: list[OptOutPhrase]

    @field_validator("keywords")
    @classmethod
    def _every_intent(cls, value: dict[KeywordIntent, list[str]]) -> dict[KeywordIntent, list[str]]:
        missing = [intent.value for intent in KeywordIntent if not value.get(intent)]
        if missing:
            raise ValueError(f"no keywords for {missing}")
        return value

    @field_validator("keywords", "typos")
    @classmethod
    def _keys_distinct(
        cls, value: dict[KeywordIntent, list[str]]
    ) -> dict[KeywordIntent, list[str]]:
        # Two intents sharing a whole-message key would make the answer depend on dict order.
        owner: dict[str, KeywordIntent] = {}
        for intent, words in value.items():
            for word in words:
                key = whole_message_key(word)
                if not key:
                    raise ValueError(f"{intent.value}: {word!r} has no letters or digits")
                if owner.setdefault(key, intent) != intent:
                    raise ValueError(
                        f"{word!r} is both {owner[key].value} and {intent.value} "
                        "(case, spaces, punctuation and doubled letters are ignored)"
                    )
        return value

    @field_validator("twilio_opt_out_type")
    @classmethod
    def _upper_case_values(cls, value: dict[str, KeywordIntent]) -> dict[str, KeywordIntent]:
        for key in value:
            if key != key.strip().upper():
                raise ValueError(f"{key!r}: Twilio sends OptOutType in capitals, e.g. 'STOP'")
        return value

    @field_validator("not_after")
    @classmethod
    def _words(cls, value: list[list[str]]) -> list[list[str]]:
        for group in value:
            for words in group:
                if not isinstance(words, str) or words != " ".join(words.lower().split()):
                    raise ValueError(f"{words!r}: lower-case words separated by single spaces")
        return value

    @field_validator("terms")
    @classmethod
    def _strip_terms(cls, value: dict[str, str]) -> dict[str, str]:
        # Folded YAML scalars put spaces around the `|` of long alternations: not meant literally.
        return {name: re.sub(r"\s*\|\s*", "|", term.strip()) for name, term in value.items()}

    @model_validator(mode="after")
    def _phrases_compile(self) -> KeywordRules:
        ids: set[str] = set()
        for index, phrase in enumerate(self.opt_out_phrases):
            where = f"opt_out_phrases.{index} ({phrase.id})"
            if phrase.id in ids:
                raise ValueError(f"{where}: duplicate id")
            ids.add(phrase.id)
            unknown = sorted(set(_TERM_REF.findall(phrase.pattern)) - set(self.terms))
            if unknown:
                raise ValueError(
                    f"{where}: unknown term(s) {unknown}; terms are {sorted(self.terms)}"
                )
            try:
                compiled = re.compile(self.expand(phrase.pattern))
            except re.error as exc:
                raise ValueError(f"{where}: not a valid regular expression: {exc}") from None
            if compiled.groupindex:
                raise ValueError(f"{where}: named groups are reserved, use (?:...)")
        return self

    def expand(self, pattern: str) -> str:
        """`pattern` with each `{term}` replaced by its alternation."""
        return _TERM_REF.sub(lambda m: f"(?:{self.terms[m.group(1)]})", pattern)

    @cached_property
    def matcher(self) -> KeywordMatcher:
        return KeywordMatcher(self)


class KeywordMatcher:
    """KeywordRules compiled: dictionaries for whole-message keys, regexes for the rest."""

    def __init__(self, rules: KeywordRules) -> None:
        self._twilio = dict(rules.twilio_opt_out_type)
        self._whole: dict[str, KeywordMatch] = {}
        for intent, words in rules.keywords.items():
            for word in words:
                self._whole[whole_message_key(word)] = KeywordMatch(
                    intent, f"keyword:{word}", "keyword"
                )
        for intent, words in rules.typos.items():
            for word in words:
                self._whole.setdefault(
                    whole_message_key(word), KeywordMatch(intent, f"typo:{word}", "typo")
                )
        before = _alternation(rules.clause_fillers.before)
        keywords = _alternation(rules.keywords[KeywordIntent.OPT_OUT])
        after = _alternation(rules.clause_fillers.after)
        self._clause = re.compile(
            rf"(?:^|\. )(?:(?:{before}) )*(?P<keyword>{keywords})(?: (?:{after}))*(?= \.|$)"
        )
        # One alternation tried at each word start: far cheaper than searching each phrase.
        self._phrases = Alternation(
            [
                (f"p{i}", rules.expand(phrase.pattern))
                for i, phrase in enumerate(rules.opt_out_phrases)
            ]
        )
        self._phrase_ids = {f"p{i}": phrase.id for i, phrase in enumerate(rules.opt_out_phrases)}
        guards = [tuple(words.split()) for group in rules.not_after for words in group]
        self._guards = frozenset(guards)
        self._guard_lengths = sorted({len(guard) for guard in guards})

    def detect(self, text: str, opt_out_type: str | None = None) -> KeywordMatch | None:
        """The intent of `text` and why, or None. See keywords.yaml for the order of checks."""
        if opt_out_type:
            intent = self._twilio.get(opt_out_type.strip().upper())
            if intent is not None:
                return KeywordMatch(intent, f"twilio:{opt_out_type.strip().upper()}", "twilio")
        whole = self._whole.get(whole_message_key(text))
        if whole is not None:
            return whole
        clauses = clause_text(text)
        if not clauses:
            return None
        clause = self._clause.search(clauses)
        if clause is not None:
            return KeywordMatch(
                KeywordIntent.OPT_OUT, f"clause:{clause.group('keyword')}", "clause"
            )
        by_char, elsewhere = self._phrases.by_char, self._phrases.elsewhere
        for start in _word_starts(clauses):
            pattern = by_char.get(clauses[start], elsewhere)
            match = pattern.match(clauses, start) if pattern is not None else None
            # Every alternative at one start shares the words before it, so one guard check.
            if match is not None and not self._guarded(clauses, start):
                rule_id = self._phrase_ids[match.lastgroup or ""]
                return KeywordMatch(KeywordIntent.OPT_OUT, f"phrase:{rule_id}", "phrase")
        return None

    def _guarded(self, clauses: str, start: int) -> bool:
        """Whether the words right before `start` are one of `not_after`."""
        before = clauses[max(0, start - 40) : start].split()
        return any(tuple(before[-size:]) in self._guards for size in self._guard_lengths)


def _word_starts(text: str) -> list[int]:
    return [0, *(i + 1 for i, char in enumerate(text) if char == " ")]


def _alternation(words: list[str]) -> str:
    # Longest first, so "stop all" is tried before "stop".
    return "|".join(re.escape(w).replace(r"\ ", " ?") for w in sorted(words, key=len, reverse=True))


def parse_keyword_rules(data: Any, source: str = RULES_RESOURCE) -> KeywordRules:
    """Validate an already parsed YAML document; ReplyRulesError names each problem."""
    try:
        return KeywordRules.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None


@cache
def load_keyword_rules() -> KeywordRules:
    """The packaged rules, parsed, validated and compiled once per process."""
    rules = parse_keyword_rules(read_yaml_resource(RULES_RESOURCE))
    rules.matcher  # noqa: B018 - compile now: a broken rule should fail at load, not mid-request
    return rules


def detect_keyword(text: str, opt_out_type: str | None = None) -> KeywordMatch | None:
    """`keyword_intent()` with the reason: which keyword, typo or phrase matched, and how."""
    return load_keyword_rules().matcher.detect(text, opt_out_type)


def keyword_intent(text: str, opt_out_type: str | None = None) -> KeywordIntent | None:
    """The carrier-keyword intent of an inbound SMS, or None.

    `opt_out_type` is Twilio's OptOutType form field (STOP, START, HELP); when present it
    decides. Otherwise:

    - OPT_OUT: the whole message is an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
      QUIT, REVOKE, OPTOUT, REMOVE; case, punctuation, spaces and emoji ignored), the keyword
      stands as a clause of its own ("Wrong number, stop"), or the message revokes consent in
      a natural wording ("stop texting me", "take me off your list", "I revoke consent").
      A message merely containing the word is not an opt-out ("what's the end date?").
    - OPT_IN: the whole message is START, UNSTOP or YES. Callers must treat it as a
      re-subscribe only when the phone is currently opted out: "yes" is otherwise an answer.
    - HELP: the whole message is HELP or INFO."""
    match = detect_keyword(text, opt_out_type)
    return match.intent if match is not None else None
