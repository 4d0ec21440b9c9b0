"""Classify an inbound SMS reply: opt-out, called the phone line, email captured, interested...

Pure (no database, no network) and on the inbound webhook's hot path: everything is compiled
once per process, and `classify()` costs tens of microseconds.

The rules are data, in `classification_rules.yaml` next to this module: its header describes
the order of decisions, the normalised text the patterns see, the rule flags and the
confidence scale. Opt-out detection is shared with the carrier keywords (`keywords.py`), so a
reply classified opt-out and `keyword_intent()` never disagree about STOP."""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from outreach_core.replies.classes import (
    Alternation,
    Client,
    ReplyClass,
    read_yaml_resource,
    validation_error,
)
from outreach_core.replies.keywords import (
    KeywordIntent,
    KeywordMatch,
    KeywordRules,
    load_keyword_rules,
)

RULES_RESOURCE = "classification_rules.yaml"
BASE = "base"

# Classes decided by dedicated detectors rather than by rules in the file.
BUILT_IN = frozenset({ReplyClass.EMAIL_CAPTURE, ReplyClass.CALLED_PHONE_LINE})
RULE_CLASSES = tuple(c for c in ReplyClass if c not in BUILT_IN)

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TERM_REF = re.compile(r"\{([a-z_]+)\}")
_WORDS_IN = re.compile(r"[a-z][a-z']+")


@dataclass(frozen=True)
class Classification:
    """What a reply means, how sure we are, and why."""

    id: ReplyClass
    name: str  # human name from the yaml, e.g. "Email captured"
    priority: int
    confidence: int  # 0..100; auto-replies need >= scoring.auto_reply_threshold (70)
    fields: dict[str, str] = field(default_factory=dict)  # extracted, e.g. {"email": ...}
    matched: tuple[str, ...] = ()  # ids of the rules that matched, winning class first


# ----------------------------------------------------------------------------- the data file


Strength = Literal["strong", "medium", "weak"]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    strength: Strength
    patterns: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)
    when_negated: str = "ignore"
    only_alone: bool = False

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(f"{value!r} is not a lower-case slug such as 'call-me'")
        return value

    @field_validator("when_negated")
    @classmethod
    def _negation_target(cls, value: str) -> str:
        allowed = ["ignore", "drop", *(c.value for c in RULE_CLASSES if c != ReplyClass.OPT_OUT)]
        if value not in allowed:
            raise ValueError(f"{value!r}: expected one of {allowed}")
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> Rule:
        if not self.patterns and not self.phrases:
            raise ValueError(f"rule {self.id!r} has neither patterns nor phrases")
        return self


class ClassInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    priority: int = Field(ge=0, le=1000)


class Conflict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[ReplyClass, ReplyClass]
    penalty: int = Field(ge=0, le=100)
    # Whether "X but Y" settles this conflict in favour of the later clause.
    contrast: bool = False


class Scoring(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strength: dict[Strength, int]
    whole_message_bonus: int = Field(ge=0, le=100)
    fuzzy_penalty: int = Field(ge=0, le=100)
    hedge_penalty: int = Field(ge=0, le=100)
    agreement_bonus: int = Field(ge=0, le=100)
    max_agreement_bonus: int = Field(ge=0, le=100)
    no_match: int = Field(ge=0, le=100)
    auto_reply_threshold: int = Field(ge=0, le=100)
    called_phone_line: int = Field(ge=0, le=100)
    email: dict[Literal["typed", "spelled_out"], int]
    opt_out: dict[Literal["twilio", "keyword", "clause", "typo", "phrase", "rule"], int]
    help_keyword: int = Field(ge=0, le=100)
    contrast_penalty: int = Field(ge=0, le=100)
    conflicts: list[Conflict] = Field(default_factory=list)

    @field_validator("strength", "email", "opt_out")
    @classmethod
    def _complete_scale(cls, value: dict[str, int], info: Any) -> dict[str, int]:
        expected = {
            "strength": ("strong", "medium", "weak"),
            "email": ("typed", "spelled_out"),
            "opt_out": ("twilio", "keyword", "clause", "typo", "phrase", "rule"),
        }[info.field_name]
        missing = [key for key in expected if key not in value]
        if missing:
            raise ValueError(f"missing {missing}")
        out_of_range = {k: v for k, v in value.items() if not 0 <= v <= 100}
        if out_of_range:
            raise ValueError(f"scores must be 0..100, got {out_of_range}")
        return value


class TextSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: dict[str, str] = Field(default_factory=dict)
    fuzzy_vocabulary: list[str] = Field(default_factory=list)
    fuzzy_min_length: int = Field(ge=4)
    negators: list[str] = Field(min_length=1)
    negation_exceptions: list[str] = Field(default_factory=list)
    negation_window: int = Field(ge=0, le=6)
    hedges: list[str] = Field(default_factory=list)
    contrast_words: list[str] = Field(default_factory=list)
    clause_breaks: list[str] = Field(default_factory=list)

    @field_validator("aliases")
    @classmethod
    def _single_word_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, replacement in value.items():
            if not re.fullmatch(r"[a-z0-9']+", str(key)) or not str(replacement).strip():
                raise ValueError(f"{key!r}: an alias is one lower-case word -> non-empty text")
        return {str(k): str(v).strip() for k, v in value.items()}

    @field_validator("negation_exceptions")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            if len(pair.split()) != 2:
                raise ValueError(f"{pair!r}: an exception is two words, a negator and the next")
        return value

    @model_validator(mode="after")
    def _fuzzy_words_long_enough(self) -> TextSettings:
        short = [w for w in self.fuzzy_vocabulary if len(w) < self.fuzzy_min_length]
        if short:
            # A one-typo neighbourhood of a short word is full of other real words.
            raise ValueError(f"fuzzy_vocabulary: {short} shorter than {self.fuzzy_min_length}")
        return self


class EmailSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spelled_out_tlds: list[str] = Field(min_length=1)
    not_local_parts: list[str] = Field(default_factory=list)


RuleSet = dict[ReplyClass, list[Rule]]


class ClassificationRules(BaseModel):
    """classification_rules.yaml, validated (patterns compile, ids unique, classes known)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scoring: Scoring
    classes: dict[ReplyClass, ClassInfo]
    text: TextSettings
    email: EmailSettings
    terms: dict[str, str] = Field(default_factory=dict)
    rules: dict[str, RuleSet]

    @field_validator("classes")
    @classmethod
    def _every_class_once(cls, value: dict[ReplyClass, ClassInfo]) -> dict[ReplyClass, ClassInfo]:
        missing = [c.value for c in ReplyClass if c not in value]
        if missing:
            raise ValueError(f"missing class(es) {missing}")
        by_priority: dict[int, str] = {}
        for reply_class, info in value.items():
            other = by_priority.setdefault(info.priority, reply_class.value)
            if other != reply_class.value:
                raise ValueError(f"{reply_class.value} and {other} share priority {info.priority}")
        return value

    @field_validator("rules")
    @classmethod
    def _known_sets(cls, value: dict[str, RuleSet]) -> dict[str, RuleSet]:
        valid = [BASE, *(c.value for c in Client)]
        unknown = [key for key in value if key not in valid]
        if unknown:
            raise ValueError(f"unknown rule set(s) {unknown}: expected {valid}")
        if BASE not in value:
            raise ValueError("no 'base' rule set")
        for key, rule_set in value.items():
            built_in = [c.value for c in rule_set if c in BUILT_IN]
            if built_in:
                raise ValueError(
                    f"{key}: {built_in} cannot have rules (decided by built-in detectors)"
                )
        return value

    @model_validator(mode="after")
    def _rules_compile(self) -> ClassificationRules:
        unknown_refs = sorted(
            set(_TERM_REF.findall(" ".join(self.terms.values()))) & set(self.terms)
        )
        if unknown_refs:
            raise ValueError(f"terms: a term cannot use another term ({unknown_refs})")
        for client in Client:
            seen: dict[str, str] = {}
            for set_name in (BASE, client.value):
                for reply_class, rules in self.rules.get(set_name, {}).items():
                    for index, rule in enumerate(rules):
                        where = f"rules.{set_name}.{reply_class.value}.{index} ({rule.id})"
                        if seen.setdefault(rule.id, where) != where:
                            raise ValueError(f"{where}: id already used at {seen[rule.id]}")
                        for source in self.sources(rule):
                            self._check_pattern(source, where)
        return self

    def _check_pattern(self, source: str, where: str) -> None:
        unknown = sorted(set(_TERM_REF.findall(source)) - set(self.terms))
        if unknown:
            raise ValueError(f"{where}: unknown term(s) {unknown}; terms are {sorted(self.terms)}")
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise ValueError(f"{where}: not a valid regular expression {source!r}: {exc}") from None
        if compiled.groupindex:
            raise ValueError(f"{where}: named groups are reserved, use (?:...) in {source!r}")

    def sources(self, rule: Rule) -> list[str]:
        """The regular expressions of `rule`: its patterns, terms expanded, then its phrases."""
        expanded = [
            _TERM_REF.sub(
                lambda m: f"(?:{self.terms[m.group(1)]})" if m.group(1) in self.terms else m[0],
                pattern,
            )
            for pattern in rule.patterns
        ]
        return expanded + [_phrase_regex(phrase) for phrase in rule.phrases]

    def rule_sets(self, client: Client) -> RuleSet:
        """The base rules followed by the client's own, per class."""
        merged: RuleSet = {}
        for set_name in (BASE, client.value):
            for reply_class, rules in self.rules.get(set_name, {}).items():
                merged.setdefault(reply_class, []).extend(rules)
        return merged


def _phrase_regex(phrase: str) -> str:
    words = [re.escape(word) for word in phrase.lower().split()]
    body = " ".join(words)
    # Word boundaries only where the phrase starts or ends with a word character (not emoji).
    left = r"(?<!\w)" if re.match(r"\w", phrase) else ""
    right = r"(?!\w)" if re.search(r"\w$", phrase) else ""
    return f"{left}{body}{right}"


def parse_classification_rules(data: Any, source: str = RULES_RESOURCE) -> ClassificationRules:
    """Validate an already parsed YAML document; ReplyRulesError names each problem."""
    try:
        return ClassificationRules.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None


@cache
def load_classification_rules() -> ClassificationRules:
    """The packaged rules, parsed and validated once per process."""
    return parse_classification_rules(read_yaml_resource(RULES_RESOURCE))


# ----------------------------------------------------------------------------- normalised text

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# Emoji modifiers carry no meaning here and would split one emoji into several tokens.
_MODIFIERS = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")
_PUNCTUATION = frozenset(".,!?;:")
_RUN3 = re.compile(r"(.)\1{2,}")
_RUN2 = re.compile(r"(.)\1")


@dataclass(frozen=True)
class Text:
    """A message as the rules see it: tokens joined by single spaces."""

    string: str
    tokens: tuple[str, ...]
    starts: tuple[int, ...]  # offset of each token in `string`
    fuzzy: frozenset[int]  # indices of tokens that are typo corrections
    content: frozenset[int]  # indices of words and emoji (not punctuation)

    def token_range(self, start: int, end: int) -> range:
        return range(bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end))


class Normaliser:
    """Turns raw text into `Text`: aliases, stretched words and typos resolved (cached)."""

    def __init__(self, settings: TextSettings, known_words: Iterable[str]) -> None:
        self._aliases = settings.aliases
        self._vocabulary = frozenset(settings.fuzzy_vocabulary)
        self._min_length = settings.fuzzy_min_length
        self._known = frozenset(known_words) | self._vocabulary
        self._deletions: dict[str, list[str]] = {}
        for word in sorted(self._vocabulary):
            for variant in {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}:
                self._deletions.setdefault(variant, []).append(word)
        self.word = lru_cache(maxsize=8192)(self._word)

    def normalise(self, raw: str) -> Text:
        if not raw.isascii():
            raw = _MODIFIERS.sub("", unicodedata.normalize("NFKC", raw))
        tokens: list[str] = []
        fuzzy: set[int] = set()
        for token in _TOKEN.findall(raw.lower().translate(_QUOTES)):
            if token[0].isalnum():
                replacement, corrected = self.word(token)
                for word in replacement.split():
                    if corrected:
                        fuzzy.add(len(tokens))
                    tokens.append(word)
            elif token in _PUNCTUATION:
                if not tokens or tokens[-1] != token:  # "!!!" is one "!"
                    tokens.append(token)
            elif not token.isascii():  # emoji and other symbols; ASCII symbols carry nothing
                tokens.append(token)
        starts, offset = [], 0
        for token in tokens:
            starts.append(offset)
            offset += len(token) + 1
        content = frozenset(i for i, t in enumerate(tokens) if t not in _PUNCTUATION)
        return Text(" ".join(tokens), tuple(tokens), tuple(starts), frozenset(fuzzy), content)

    def _word(self, token: str) -> tuple[str, bool]:
        """(replacement text, whether it is a typo correction) for one word token."""
        if token in self._aliases:
            return self._aliases[token], False
        if token in self._known:
            return token, False
        if _RUN3.search(token):  # stretched: "yesss" -> "yes", "cooool" -> "cool"
            once, twice = _RUN3.sub(r"\1", token), _RUN3.sub(r"\1\1", token)
            known = next((w for w in (once, twice) if w in self._known or w in self._aliases), None)
            return self._word(known or twice)
        single = _RUN2.sub(r"\1", token)  # "yess" -> "yes", only if that is a word we use
        if single != token and (single in self._known or single in self._aliases):
            return self._word(single)
        if len(token) >= self._min_length and token.isalpha():
            correction = self._correct(token)
            if correction is not None:
                return correction, True
        return token, False

    def _correct(self, token: str) -> str | None:
        candidates: list[str] = list(self._deletions.get(token, ()))
        for i in range(len(token)):
            candidates.extend(self._deletions.get(token[:i] + token[i + 1 :], ()))
        for word in sorted(set(candidates)):
            if _one_edit(token, word):
                return word
        return None


def _one_edit(a: str, b: str) -> bool:
    """Whether `a` and `b` differ by one insertion, deletion, substitution or adjacent swap."""
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


# ----------------------------------------------------------------------------- email


_TYPED_EMAIL = re.compile(
    # A space may come before a dot of the domain ("bob@gmail .com"), never after one: in
    # "bob@x.io. thanks" the sentence goes on.
    r"(?<![\w.+%-])([\w.+%-]+)\s*@\s*((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])? ?\.)+[a-z]{2,})"
    r"(?![a-z0-9-])"
)
_SPELLED_EMAIL = re.compile(
    r"(?<![\w.])([a-z0-9][a-z0-9._+-]*(?:\s+dot\s+[a-z0-9_+-]+)*)"
    r"\s+(?:at|\(at\)|\[at\])\s+"
    r"([a-z0-9-]+(?:(?:\s+dot\s+|\.)[a-z0-9-]+)*?)(\s+dot\s+|\.)([a-z]{2,})\b"
)
_DOT_WORD = re.compile(r"\s+dot\s+")


class EmailFinder:
    """The first valid email address in a message, typed or spelled out, lower-cased."""

    def __init__(self, settings: EmailSettings) -> None:
        self._tlds = frozenset(settings.spelled_out_tlds)
        self._not_local = frozenset(settings.not_local_parts)

    def find(self, raw: str) -> tuple[str, str] | None:
        """(address, "typed" | "spelled_out"), or None."""
        text = unicodedata.normalize("NFKC", raw).lower() if not raw.isascii() else raw.lower()
        if "@" in text:
            for match in _TYPED_EMAIL.finditer(text):
                address = _valid(f"{match.group(1)}@{match.group(2).replace(' ', '')}")
                if address:
                    return address, "typed"
        if " at " in text or "(at)" in text or "[at]" in text:
            address = self._spelled(text)
            if address:
                return address, "spelled_out"
        return None

    def _spelled(self, text: str) -> str | None:
        position = 0
        while (match := _SPELLED_EMAIL.search(text, position)) is not None:
            position = match.start() + 1
            local, domain, last_dot, tld = match.groups()
            if tld not in self._tlds or local in self._not_local:
                continue
            spelled = "dot" in last_dot or " dot " in domain or " dot " in local
            if not spelled and "." not in local:
                continue  # "look at zillow.com" is not an address
            address = _valid(_DOT_WORD.sub(".", f"{local}@{domain}.{tld}"))
            if address:
                return address
        return None


def _valid(candidate: str) -> str | None:
    candidate = candidate.strip(".")
    try:
        return validate_email(candidate, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Hit:
    rule: str
    score: int
    tokens: range
    only_alone: bool


@dataclass(frozen=True)
class _ClassRules:
    reply_class: ReplyClass
    pattern: Alternation
    rules: dict[str, Rule]  # by group name


class ClientClassifier:
    """The rules of one client, compiled: one alternation per class, one group per pattern."""

    def __init__(self, rules: ClassificationRules, client: Client) -> None:
        self._compiled: list[_ClassRules] = []
        for reply_class, class_rules in rules.rule_sets(client).items():
            groups: dict[str, Rule] = {}
            alternatives = []
            for index, rule in enumerate(class_rules):
                for number, source in enumerate(rules.sources(rule)):
                    name = f"r{index}_{number}"
                    groups[name] = rule
                    alternatives.append((name, source))
            self._compiled.append(_ClassRules(reply_class, Alternation(alternatives), groups))

    def hits(self, text: Text, scope: Scope) -> dict[ReplyClass, list[_Hit]]:
        """Every counted rule match, by the class it counts for (after negation)."""
        found: dict[ReplyClass, list[_Hit]] = {}
        string, starts = text.string, text.starts
        for class_rules in self._compiled:
            by_char, elsewhere = class_rules.pattern.by_char, class_rules.pattern.elsewhere
            # Every token start, even inside an earlier match: a longer, weaker rule must not
            # hide a stronger one that starts a word later.
            for start in starts:
                pattern = by_char.get(string[start], elsewhere)
                match = pattern.match(string, start) if pattern is not None else None
                if match is None:
                    continue
                rule = class_rules.rules[match.lastgroup or ""]
                tokens = text.token_range(match.start(), match.end())
                target, hedged = scope.effect(text, tokens, rule, class_rules.reply_class)
                if target is None:
                    continue
                score = scope.score(rule, tokens, text, hedged)
                # A negated match explains itself: "interested->not-interested".
                name = rule.id if target == class_rules.reply_class else f"{rule.id}->{target}"
                found.setdefault(target, []).append(_Hit(name, score, tokens, rule.only_alone))
        return found


class Scope:
    """Negation, hedging and the per-match score."""

    def __init__(self, rules: ClassificationRules) -> None:
        settings = rules.text
        self._negators = frozenset(settings.negators)
        self._exceptions = frozenset(tuple(pair.split()) for pair in settings.negation_exceptions)
        self._hedges = frozenset(settings.hedges)
        self._breaks = frozenset(settings.clause_breaks) | _PUNCTUATION
        self._window = settings.negation_window
        self._strength = rules.scoring.strength
        self._fuzzy_penalty = rules.scoring.fuzzy_penalty
        self._hedge_penalty = rules.scoring.hedge_penalty

    def effect(
        self, text: Text, matched: range, rule: Rule, reply_class: ReplyClass
    ) -> tuple[ReplyClass | None, bool]:
        """The class a match over tokens `matched` counts for (None: it does not), and whether
        it is hedged."""
        tokens = text.tokens
        negated = False
        # A hedge inside the match counts ("might sell"), unless it is all the match ("maybe").
        inside = [tokens[i] in self._hedges for i in matched if i in text.content]
        hedged = any(inside) and not all(inside)
        first = matched.start
        for j in range(first - 1, max(first - 1 - self._window, -1), -1):
            token = tokens[j]
            if token in self._breaks:
                break
            if token in self._hedges:
                hedged = True
            elif token in self._negators:
                following = tokens[j + 1] if j + 1 < len(tokens) else ""
                if (token, following) not in self._exceptions:
                    negated = True
                    break
        if not negated or rule.when_negated == "ignore":
            return reply_class, hedged
        if rule.when_negated == "drop":
            return None, hedged
        return ReplyClass(rule.when_negated), False

    def score(self, rule: Rule, tokens: range, text: Text, hedged: bool) -> int:
        score = self._strength[rule.strength]
        if any(i in text.fuzzy for i in tokens):
            score -= self._fuzzy_penalty
        if hedged:
            score -= self._hedge_penalty
        return score


class ReplyClassifier:
    """classification_rules.yaml and keywords.yaml compiled for every client."""

    def __init__(self, rules: ClassificationRules, keywords: KeywordRules) -> None:
        self.rules = rules
        self._keywords = keywords.matcher
        known = set(_WORDS_IN.findall(" ".join(self._all_sources(rules))))
        known.update(w for v in rules.text.aliases.values() for w in v.split())
        settings = rules.text
        known.update(settings.negators + settings.hedges + settings.clause_breaks)
        known.update(settings.contrast_words)
        self._normaliser = Normaliser(rules.text, known)
        self._scope = Scope(rules)
        self._emails = EmailFinder(rules.email)
        self._clients = {client: ClientClassifier(rules, client) for client in Client}
        self._priority = {c: info.priority for c, info in rules.classes.items()}
        self._contrast_words = frozenset(settings.contrast_words)
        self._contrasts = [c.classes for c in rules.scoring.conflicts if c.contrast]
        self._conflicts: dict[ReplyClass, list[tuple[ReplyClass, int]]] = {}
        for conflict in rules.scoring.conflicts:
            first, second = conflict.classes
            self._conflicts.setdefault(first, []).append((second, conflict.penalty))
            self._conflicts.setdefault(second, []).append((first, conflict.penalty))

    @staticmethod
    def _all_sources(rules: ClassificationRules) -> Iterable[str]:
        for rule_set in rules.rules.values():
            for class_rules in rule_set.values():
                for rule in class_rules:
                    yield from rules.sources(rule)

    def classify(
        self,
        text: str,
        client: Client | str,
        *,
        opt_out_type: str | None = None,
        is_call: bool = False,
    ) -> Classification:
        """See `classify()`."""
        compiled = self._clients[Client.parse(client)]
        raw = text or ""
        scoring = self.rules.scoring
        keyword = self._keywords.detect(raw, opt_out_type)
        if keyword is not None and keyword.intent == KeywordIntent.OPT_OUT:
            return self._result(ReplyClass.OPT_OUT, scoring.opt_out[keyword.how], (keyword.rule,))
        normalised = self._normaliser.normalise(raw)
        hits = compiled.hits(normalised, self._scope)
        opt_out = hits.pop(ReplyClass.OPT_OUT, None)
        if opt_out:
            ids = tuple(hit.rule for hit in opt_out)
            return self._result(ReplyClass.OPT_OUT, scoring.opt_out["rule"], ids)
        if is_call:
            return self._result(ReplyClass.CALLED_PHONE_LINE, scoring.called_phone_line, ("call",))
        email = self._emails.find(raw)
        if email is not None:
            address, how = email
            return self._result(
                ReplyClass.EMAIL_CAPTURE, scoring.email[how], (f"email:{how}",), {"email": address}
            )
        return self._by_rules(normalised, hits, keyword)

    def _by_rules(
        self, text: Text, hits: dict[ReplyClass, list[_Hit]], keyword: KeywordMatch | None
    ) -> Classification:
        if keyword is not None and keyword.intent == KeywordIntent.HELP:
            everything = range(len(text.tokens))
            hit = _Hit(keyword.rule, self.rules.scoring.help_keyword, everything, False)
            hits.setdefault(ReplyClass.QUESTION, []).append(hit)
        hits = _drop_courtesies(hits)
        if not hits:
            return self._result(ReplyClass.OTHER, self.rules.scoring.no_match, ())
        settled = self._settle_by_contrast(hits, text)
        ranked = sorted(hits, key=self._priority.__getitem__, reverse=True)
        winner = ranked[0]
        confidence = self._confidence(winner, hits, text)
        if settled:
            confidence = max(0, confidence - self.rules.scoring.contrast_penalty)
        matched = tuple(dict.fromkeys(hit.rule for c in ranked for hit in hits[c]))
        return self._result(winner, confidence, matched)

    def _settle_by_contrast(self, hits: dict[ReplyClass, list[_Hit]], text: Text) -> bool:
        """In "X but Y", drop X's class when it conflicts with Y's; whether one was dropped."""
        pivot = next(
            (
                i
                for i in range(len(text.tokens) - 1, -1, -1)
                if text.tokens[i] in self._contrast_words
            ),
            None,
        )
        if pivot is None:
            return False
        for first, second in self._contrasts:
            if first not in hits or second not in hits:
                continue
            for earlier, later in ((first, second), (second, first)):
                if all(h.tokens.stop <= pivot for h in hits[earlier]) and all(
                    h.tokens.start > pivot for h in hits[later]
                ):
                    del hits[earlier]
                    return True
        return False

    def _confidence(
        self, winner: ReplyClass, hits: dict[ReplyClass, list[_Hit]], text: Text
    ) -> int:
        scoring = self.rules.scoring
        own = hits[winner]
        score = max(hit.score for hit in own)
        covered = {i for hit in own for i in hit.tokens}
        if text.content and text.content <= covered:
            score += scoring.whole_message_bonus
        agreeing = len({hit.rule for hit in own}) - 1
        score += min(agreeing * scoring.agreement_bonus, scoring.max_agreement_bonus)
        for other, penalty in self._conflicts.get(winner, ()):
            if other in hits:
                score -= penalty
        return max(0, min(100, score))

    def _result(
        self,
        reply_class: ReplyClass,
        confidence: int,
        matched: tuple[str, ...],
        fields: dict[str, str] | None = None,
    ) -> Classification:
        info = self.rules.classes[reply_class]
        return Classification(
            id=reply_class,
            name=info.name,
            priority=info.priority,
            confidence=confidence,
            fields=fields or {},
            matched=matched,
        )


def _drop_courtesies(hits: dict[ReplyClass, list[_Hit]]) -> dict[ReplyClass, list[_Hit]]:
    """Without `only_alone` matches when some other class has a real match."""
    substantive = {c for c, class_hits in hits.items() if any(not h.only_alone for h in class_hits)}
    kept: dict[ReplyClass, list[_Hit]] = {}
    for reply_class, class_hits in hits.items():
        if substantive - {reply_class}:
            class_hits = [hit for hit in class_hits if not hit.only_alone]
        if class_hits:
            kept[reply_class] = class_hits
    return kept


@cache
def default_classifier() -> ReplyClassifier:
    """The packaged rules, compiled once per process."""
    return ReplyClassifier(load_classification_rules(), load_keyword_rules())


def classify(
    text: str,
    client: Client | str,
    *,
    opt_out_type: str | None = None,
    is_call: bool = False,
) -> Classification:
    """What an inbound reply to `client`'s outreach means, with a 0..100 confidence.

    `opt_out_type` is Twilio's OptOutType form field, `is_call` marks an inbound voice call
    (its text, if any, a transcript). Opt-out wins over everything, then a call, then an email
    address; otherwise the highest-priority class whose rules match (see
    classification_rules.yaml). `client` may be a string; an unknown one is a ValueError
    naming the valid clients."""
    return default_classifier().classify(text, client, opt_out_type=opt_out_type, is_call=is_call)
