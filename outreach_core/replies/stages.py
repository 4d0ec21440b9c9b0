"""Where a conversation stands when a reply comes in. Pure, no database.

`detect_stage` maps the reply's class (its intent) and what the database keeps about the
conversation (`ConversationSnapshot`) to a `Stage`; the drafter picks its wording by stage.
The rules, first match wins:

    intent                          condition                                stage
    not-interested, opt-out         always                                   handling_pushback
    interested, email-capture,      always                                   hot_response
      called-phone-line
    question, thank-you, other      we sent more than they did               follow_up
    question, thank-you, other      an earlier reply was positive            warming_up
    question, thank-you, other      otherwise (first reply, or no positive   cold_open
                                    reply yet)

"We sent more than they did" is `outbound_count > inbound_count`, counting this reply: in a
plain exchange every inbound is answered by one outbound (the first inbound answers our opener),
so the counts stay level, and an excess of outbound means at least one of ours went unanswered,
i.e. they are answering a follow-up. It is checked before "earlier positive" because a contact
who went quiet after showing interest and came back after a nudge is best met by acknowledging
the gap. A positive reply (interested, email, called) always wins: whatever came before, they
want the deliverable now.

"An earlier reply was positive" is read from `last_intent` (a hot intent) or from the previous
stage (hot_response or warming_up), so a thank-you after a thank-you stays warm.

Opt-out maps to handling_pushback only so every intent has a stage: an opt-out is answered with
the service confirmation (drafts.service_text), never with a drafted reply.

`hours_since_last_outbound` is not used by the rules: the counts already say whether a
follow-up was sent, and a time threshold would be a second, disagreeing definition of one.

Intents are the reply classifier's classes (outreach_core.replies.classes.ReplyClass); plain
strings are accepted too. A class added there and not to a group below counts as neutral, the
safe reading: it gets the conversational wording, never the "send it now" one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from outreach_core.replies.classes import ReplyClass

__all__ = [
    "HOT_INTENTS",
    "INTENTS",
    "NEUTRAL_INTENTS",
    "OPT_OUT_INTENT",
    "PUSHBACK_INTENTS",
    "ConversationSnapshot",
    "Stage",
    "detect_stage",
    "validate_intent",
]


class Stage(StrEnum):
    COLD_OPEN = "cold_open"
    WARMING_UP = "warming_up"
    HOT_RESPONSE = "hot_response"
    HANDLING_PUSHBACK = "handling_pushback"
    FOLLOW_UP = "follow_up"


OPT_OUT_INTENT: Final = ReplyClass.OPT_OUT
HOT_INTENTS: Final = frozenset(
    {ReplyClass.INTERESTED, ReplyClass.EMAIL_CAPTURE, ReplyClass.CALLED_PHONE_LINE}
)
PUSHBACK_INTENTS: Final = frozenset({ReplyClass.NOT_INTERESTED, ReplyClass.OPT_OUT})
INTENTS: Final = frozenset(ReplyClass)
NEUTRAL_INTENTS: Final = INTENTS - HOT_INTENTS - PUSHBACK_INTENTS

_WARM_STAGES: Final = frozenset({Stage.HOT_RESPONSE, Stage.WARMING_UP})


@dataclass(frozen=True)
class ConversationSnapshot:
    """What the database keeps per (team, contact phone), read when a reply arrives."""

    inbound_count: int  # inbound messages so far, including this one
    outbound_count: int
    last_intent: str | None  # the previous inbound's class id
    stage: Stage | None  # the stage before this message
    hours_since_last_outbound: float | None
    first_name: str | None = None
    company: str | None = None
    property_address: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        # Counts come from the database; a negative or zero inbound count is a bug upstream
        # that would silently pick the wrong stage, so it fails here instead.
        if self.inbound_count < 1:
            raise ValueError(
                f"inbound_count counts the reply being answered, so it is at least 1, "
                f"got {self.inbound_count}"
            )
        if self.outbound_count < 0:
            raise ValueError(f"outbound_count cannot be negative, got {self.outbound_count}")
        if self.last_intent is not None:
            validate_intent(self.last_intent)


def validate_intent(intent: str) -> ReplyClass:
    """`intent` as a ReplyClass; ValueError naming the valid ids when it is not one."""
    try:
        return ReplyClass(intent)
    except ValueError:
        valid = ", ".join(c.value for c in ReplyClass)
        raise ValueError(f"unknown reply intent {intent!r}; valid intents: {valid}") from None


def detect_stage(snapshot: ConversationSnapshot, intent: str) -> Stage:
    """The stage the conversation is in once this reply (of class `intent`) is in."""
    intent = validate_intent(intent)
    if intent in PUSHBACK_INTENTS:
        return Stage.HANDLING_PUSHBACK
    if intent in HOT_INTENTS:
        return Stage.HOT_RESPONSE
    if snapshot.outbound_count > snapshot.inbound_count:
        return Stage.FOLLOW_UP
    if _was_positive(snapshot):
        return Stage.WARMING_UP
    return Stage.COLD_OPEN


def _was_positive(snapshot: ConversationSnapshot) -> bool:
    return snapshot.last_intent in HOT_INTENTS or snapshot.stage in _WARM_STAGES
