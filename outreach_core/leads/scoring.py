"""Lead scores from events, with their history.

The rules are `outreach_core/enrich/scoring.yaml`. A lead is created at the base score;
from then on every change is an event, applied in the caller's transaction together with
its `lead_score_events` row (the event, the change actually made, the new score, the
source), so `leads.score` is always the base plus the deltas of its events.

- Enrichment is one event (`enriched`) whose delta is the profile's bonus, so it adds to what
  replies did instead of overwriting it.
- A reply event moves the score by its delta, the score kept within 0..cap; an event that
  sets the score (an opt-out: 0) sets it. While the lead's phone is suppressed (the contact
  opted out) nothing else moves the score, so an opt-out's 0 holds, also against a later
  enrichment; a re-subscription (START) lifts the hold.
- A `source` names the cause (an inbound message, a workflow execution); an event is applied
  at most once per source (a unique constraint), so a retried webhook or execution never
  scores twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import PhoneFlag
from outreach_core.db.tables import Lead, LeadScoreEvent, PhoneFlagRow
from outreach_core.enrich.derive import load_scoring_table

# The enrichment's event, and its source: the profile's bonus counts once per lead.
ENRICHED = "enriched"
ENRICHMENT_SOURCE = "enrichment"
MAX_EVENT_LENGTH = 40


@dataclass(frozen=True)
class ScoreChange:
    lead_id: int
    event: str
    delta: int
    score: int


class UnknownScoreEvent(ValueError):
    """An event with no rule in the scoring file, and no explicit delta."""


class LeadNotFound(LookupError):
    pass


def base_score() -> int:
    """What a new lead scores (the rules file's `base`)."""
    return load_scoring_table().base


def apply_score_event(
    session: Session,
    team_id: uuid.UUID,
    lead_id: int,
    event: str,
    *,
    delta: int | None = None,
    source: str | None = None,
) -> ScoreChange | None:
    """Apply `event` to the lead's score in the caller's (tenant) transaction and record it.

    `delta` None: the rules file's delta (or set score) for `event`, UnknownScoreEvent if it
    has none; an explicit `delta` (the workflows' `update_lead_score`) moves the score by that
    much under any event name of up to 40 characters. Returns None when nothing was applied:
    the event came from this `source` already, or the lead's phone is suppressed (its score
    holds). LeadNotFound when the team has no such lead."""
    table = load_scoring_table()
    if not 0 < len(event) <= MAX_EVENT_LENGTH:
        raise ValueError(f"a score event is 1-{MAX_EVENT_LENGTH} characters, got {event!r}")
    sets = table.set_to.get(event)
    if sets is not None and delta is not None:
        raise ValueError(f"{event!r} sets the score to {sets}; it takes no delta")
    if sets is None and delta is None:
        delta = table.events.get(event)
        if delta is None:
            known = ", ".join(sorted([*table.events, *table.set_to]))
            raise UnknownScoreEvent(f"no scoring rule for {event!r} (rules: {known})")
    suppressed = exists().where(
        PhoneFlagRow.team_id == Lead.team_id,
        PhoneFlagRow.phone == Lead.phone,
        PhoneFlagRow.flag == PhoneFlag.SUPPRESSED,
    )
    # FOR NO KEY UPDATE: concurrent events of one lead apply one after the other, while
    # inserts referencing the lead (its score events) are not blocked.
    row = session.execute(
        select(Lead.score, suppressed.label("held"))
        .where(Lead.team_id == team_id, Lead.id == lead_id)
        .with_for_update(key_share=True, of=Lead)
    ).one_or_none()
    if row is None:
        raise LeadNotFound(f"no lead {lead_id}")
    if sets is not None:
        new = sets
    elif row.held:
        return None
    else:
        assert delta is not None
        new = min(table.cap, max(0, row.score + delta))
    recorded = session.scalar(
        insert(LeadScoreEvent)
        .values(
            team_id=team_id,
            lead_id=lead_id,
            event=event,
            delta=new - row.score,
            score=new,
            source=source,
        )
        .on_conflict_do_nothing(index_elements=["team_id", "lead_id", "event", "source"])
        .returning(LeadScoreEvent.id)
    )
    if recorded is None:
        return None
    if new != row.score:
        session.execute(
            update(Lead)
            .where(Lead.team_id == team_id, Lead.id == lead_id)
            .values(score=new, updated_at=func.now())
        )
    return ScoreChange(lead_id, event, new - row.score, new)


def score_reply(
    session: Session, team_id: uuid.UUID, lead_id: int, reply_class: str, source: str
) -> ScoreChange | None:
    """A classified reply's event, if the rules give its class one (else None)."""
    table = load_scoring_table()
    if reply_class not in table.events and reply_class not in table.set_to:
        return None
    return apply_score_event(session, team_id, lead_id, reply_class, source=source)


def score_enrichment(
    session: Session, team_id: uuid.UUID, lead_ids: Iterable[int], profile_score: int
) -> None:
    """Enriched leads gain their profile's bonus (`derive`'s score above the base), once per
    lead, on top of whatever replies did."""
    bonus = profile_score - base_score()
    for lead_id in lead_ids:
        apply_score_event(
            session, team_id, lead_id, ENRICHED, delta=bonus, source=ENRICHMENT_SOURCE
        )


def score_events(team_id: uuid.UUID, lead_id: int) -> list[LeadScoreEvent]:
    """The lead's score history, oldest first; LeadNotFound when the team has no such lead."""
    with tenant_session(team_id) as session:
        found = session.scalar(select(Lead.id).where(Lead.team_id == team_id, Lead.id == lead_id))
        if found is None:
            raise LeadNotFound(f"no lead {lead_id}")
        return list(
            session.scalars(
                select(LeadScoreEvent)
                .where(LeadScoreEvent.team_id == team_id, LeadScoreEvent.lead_id == lead_id)
                .order_by(LeadScoreEvent.id)
            )
        )
