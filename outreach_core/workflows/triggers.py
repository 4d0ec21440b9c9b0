"""Triggers in SQL: what holds for an inbox item (`facts`), and the set-based scheduling of
executions for every item whose trigger holds (`schedule`). The same facts are read again
when an execution runs, so the rule for each condition is written once, here.

An execution is created as soon as an item matches a trigger's state (its class, email
given or not, a person in contact or not), due when the time conditions will be met
(`due_at`), so the schedule shows what will happen. When it runs, the facts are read again:
a contact who wrote since, gave an email or was reached by a person is not followed up.

What counts:
- the last inbound: the contact's latest message to us (`conversations.last_inbound_at`);
- the last message: that, or the latest of our messages to them that went out (or may have);
- email provided: the contact gave an address in the conversation (an email capture), not
  an address the lead came with;
- a person made contact: since the item, a person approved a drafted reply to them (a
  review; the reply itself goes out as a `reply` message, through the guardrails), or marked
  a task about them done (a call, a visit: what people do outside the system)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from outreach_core.db.states import (
    MESSAGE_GONE_OUT,
    CampaignStatus,
    ExecutionStatus,
    PhoneFlag,
    ReviewStatus,
    TaskStatus,
    sql_in,
)
from outreach_core.workflows.definitions import Loaded, Trigger

# Campaigns whose items get no follow-ups while they are so (a kill switch).
HELD_CAMPAIGN = CampaignStatus.PAUSED
STOPPED_CAMPAIGN = CampaignStatus.CANCELLED

_GONE_OUT = sql_in("m.status", MESSAGE_GONE_OUT)


def _per_contact(phone: str | None) -> dict[str, str]:
    """Per contact phone of the team: when we last texted them, and when a person last
    reached them (derived tables joined on `contact_phone`); `phone` narrows them to one
    contact (a bound parameter's name), None keeps every contact (the tick)."""

    def only(column: str) -> str:
        return f"AND {column} = :{phone}" if phone else ""

    return {
        "outbound": f"""(
            SELECT m.to_phone AS contact_phone,
                   max(coalesce(m.sent_at, m.claimed_at, m.created_at)) AS at
              FROM messages m
             WHERE m.team_id = :team_id AND {_GONE_OUT} {only("m.to_phone")}
             GROUP BY m.to_phone)""",
        "person": f"""(
            SELECT contact_phone, max(at) AS at FROM (
                SELECT r.contact_phone, r.decided_at AS at FROM reviews r
                 WHERE r.team_id = :team_id AND r.status = '{ReviewStatus.APPROVED}'
                       {only("r.contact_phone")}
                UNION ALL
                SELECT t.contact_phone, t.done_at FROM tasks t
                 WHERE t.team_id = :team_id AND t.status = '{TaskStatus.DONE}'
                       {only("t.contact_phone")}
            ) reached GROUP BY contact_phone)""",
    }


def _from(items: str, trigger: Trigger | None, phone: str | None = None) -> str:
    """`items` (aliased i) with what the trigger's facts need (everything for None)."""
    derived = _per_contact(phone)
    joins = [
        f"{items} i",
        "LEFT JOIN conversations c ON c.team_id = i.team_id AND c.contact_phone = i.contact_phone",
        "LEFT JOIN campaigns k ON k.team_id = i.team_id AND k.id = i.campaign_id",
    ]
    if trigger is None or trigger.hours_since_last_message is not None:
        joins.append(f"LEFT JOIN {derived['outbound']} lo ON lo.contact_phone = i.contact_phone")
    if trigger is None or trigger.person_contacted is not None:
        joins.append(f"LEFT JOIN {derived['person']} pc ON pc.contact_phone = i.contact_phone")
    return "\n    ".join(joins)


_LAST_INBOUND = "GREATEST(c.last_inbound_at, i.created_at)"


def _columns(trigger: Trigger | None) -> dict[str, str]:
    """The facts a trigger needs (all of them for None), as SQL over `_from`."""
    columns = {
        "item_id": "i.id",
        "team_id": "i.team_id",
        "lead_id": "i.lead_id",
        "contact_phone": "i.contact_phone",
        "item_at": "i.created_at",
        "classification": "i.classification",
        "campaign_status": "k.status",
        "last_inbound_at": _LAST_INBOUND,
        "email_provided": "(c.email IS NOT NULL)",
    }
    if trigger is None or trigger.hours_since_last_message is not None:
        columns["last_message_at"] = f"GREATEST({_LAST_INBOUND}, lo.at)"
    if trigger is None or trigger.person_contacted is not None:
        columns["person_contacted"] = "coalesce(pc.at >= i.created_at, false)"
    return columns


def _due(trigger: Trigger) -> str:
    """When the trigger's time conditions are met, given the facts `f`."""
    moments = ["f.item_at"]
    if trigger.hours_since_last_inbound is not None:
        moments.append("f.last_inbound_at + :hours_in")
    if trigger.hours_since_last_message is not None:
        moments.append("f.last_message_at + :hours_msg")
    return f"GREATEST({', '.join(moments)})"


def _hours(trigger: Trigger) -> dict[str, timedelta]:
    return {
        "hours_in": timedelta(hours=trigger.hours_since_last_inbound or 0),
        "hours_msg": timedelta(hours=trigger.hours_since_last_message or 0),
    }


def _state_conditions(trigger: Trigger) -> list[str]:
    conditions = []
    for fact, wanted in (
        ("email_provided", trigger.email_provided),
        ("person_contacted", trigger.person_contacted),
    ):
        if wanted is not None:
            conditions.append(f"f.{fact}" if wanted else f"NOT f.{fact}")
    return conditions


# No newer item of the contact: only what a contact said last is followed up.
_LATEST = """NOT EXISTS (
    SELECT 1 FROM inbox_items n
     WHERE n.team_id = i.team_id AND n.contact_phone = i.contact_phone
       AND (n.created_at, n.id) > (i.created_at, i.id))"""


def schedule(session: Session, team_id: uuid.UUID, workflow: Loaded, now: datetime) -> int:
    """Create the executions (one per step) of every contact's latest item whose trigger's
    state holds now and that has none for this workflow yet; returns how many were created.

    Two set-based statements: one finds the items, the other inserts their executions with
    ON CONFLICT DO NOTHING, so overlapping ticks insert each execution once (the unique
    key). They are apart because an INSERT whose own SELECT anti-joins the table it fills
    can be planned (on a table that was empty when analysed) as a nested loop rescanning
    that table while it grows: 100,000 items took minutes instead of seconds."""
    trigger = workflow.trigger
    columns = ",\n               ".join(
        f"{sql} AS {name}" for name, sql in _columns(trigger).items()
    )
    where = [
        f"f.campaign_status IS DISTINCT FROM '{HELD_CAMPAIGN}'",
        f"f.campaign_status IS DISTINCT FROM '{STOPPED_CAMPAIGN}'",
        *_state_conditions(trigger),
    ]
    found = session.execute(
        text(f"""
            SELECT f.item_id, f.lead_id, f.contact_phone, {_due(trigger)} AS due_at
              FROM (
                SELECT {columns}
                  FROM {_from("inbox_items", trigger)}
                 WHERE i.team_id = :team_id
                   AND i.classification = ANY(CAST(:classes AS text[]))
                   AND i.created_at >= :oldest
                   AND {_LATEST}
                   AND NOT EXISTS (
                       SELECT 1 FROM phone_flags p
                        WHERE p.team_id = i.team_id AND p.phone = i.contact_phone
                          AND p.flag = '{PhoneFlag.SUPPRESSED}')
                   AND NOT EXISTS (
                       SELECT 1 FROM workflow_executions x
                        WHERE x.team_id = i.team_id AND x.workflow_id = :workflow_id
                          AND x.inbox_item_id = i.id)
              ) f
             WHERE {" AND ".join(where)}
        """),
        {
            "team_id": team_id,
            "workflow_id": workflow.id,
            "classes": [str(c) for c in trigger.classification],
            "oldest": now - timedelta(hours=trigger.max_item_age_hours),
            **_hours(trigger),
        },
    ).all()
    if not found:
        return 0
    items, leads, phones, dues = (list(column) for column in zip(*found, strict=True))
    steps = workflow.steps
    result = session.execute(
        text(f"""
            INSERT INTO workflow_executions (
                team_id, id, workflow_id, inbox_item_id, step, action, status, due_at,
                lead_id, contact_phone, created_at, updated_at)
            SELECT :team_id, gen_random_uuid(), :workflow_id, n.item_id, s.step, s.action,
                   '{ExecutionStatus.PENDING}', n.due_at + s.delay, n.lead_id,
                   n.contact_phone, :now, :now
              FROM unnest(
                  CAST(:items AS uuid[]), CAST(:leads AS bigint[]), CAST(:phones AS text[]),
                  CAST(:dues AS timestamptz[])
              ) AS n(item_id, lead_id, contact_phone, due_at)
             CROSS JOIN unnest(
                 CAST(:steps AS int[]), CAST(:actions AS text[]), CAST(:delays AS interval[])
             ) AS s(step, action, delay)
            ON CONFLICT (team_id, workflow_id, inbox_item_id, step) DO NOTHING
        """),
        {
            "team_id": team_id,
            "workflow_id": workflow.id,
            "now": now,
            "items": items,
            "leads": leads,
            "phones": phones,
            "dues": dues,
            "steps": list(range(len(steps))),
            "actions": [str(s.action) for s in steps],
            "delays": [s.delay for s in steps],
        },
    )
    return result.rowcount


@dataclass(frozen=True)
class Facts:
    """What holds for one inbox item now."""

    item_id: uuid.UUID
    lead_id: int | None
    contact_phone: str
    item_at: datetime
    latest: bool
    campaign_status: str | None
    last_inbound_at: datetime
    last_message_at: datetime
    email_provided: bool
    person_contacted: bool

    def due(self, trigger: Trigger) -> datetime:
        """When the trigger's time conditions are met (the step's delay not included)."""
        moments = [self.item_at]
        if trigger.hours_since_last_inbound is not None:
            moments.append(self.last_inbound_at + timedelta(hours=trigger.hours_since_last_inbound))
        if trigger.hours_since_last_message is not None:
            moments.append(self.last_message_at + timedelta(hours=trigger.hours_since_last_message))
        return max(moments)

    def failed_condition(self, trigger: Trigger) -> str | None:
        """The state condition of `trigger` that no longer holds, in words; None if all do."""
        if not self.latest:
            return "the contact wrote again"
        if trigger.email_provided is not None and self.email_provided != trigger.email_provided:
            return "they gave an email" if self.email_provided else "no email any more"
        if (
            trigger.person_contacted is not None
            and self.person_contacted != trigger.person_contacted
        ):
            return "a person reached them" if self.person_contacted else "no person reached them"
        return None


def facts(session: Session, team_id: uuid.UUID, item_id: uuid.UUID, contact: str) -> Facts:
    """What holds for one item (of `contact`) now: the executor reads it again before running
    a step."""
    columns = {**_columns(None), "latest": _LATEST}
    row = (
        session.execute(
            text(
                f"SELECT {', '.join(f'{sql} AS {name}' for name, sql in columns.items())} "
                f"FROM {_from('inbox_items', None, phone='phone')} "
                "WHERE i.team_id = :team_id AND i.id = :item"
            ),
            {"team_id": team_id, "item": item_id, "phone": contact},
        )
        .mappings()
        .one()
    )
    values: dict[str, Any] = {name: row[name] for name in Facts.__dataclass_fields__}
    return Facts(**values)
