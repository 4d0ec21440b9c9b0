"""Budget alerts: when a budget's spend reaches a threshold of its cap (80% and 100% by
default, `budget_alert_thresholds_pct`), one `budget_alerts` row is recorded and the team is
notified (`notify.outbox`), once per budget and threshold.

Budgets are a team's monthly caps (per cost category and on the total, per UTC month) and a
campaign's budget. Spend is the ledger: `check_spend` runs where ledger rows are written
(`budget.commit_by_id`), in the same transaction, so every category alerts, enrichment too.
The send path also records the 100% alert when it pauses a campaign because the budget cannot
pay for its next message (`budget_exhausted`), which may happen a little before the ledger
itself reaches the cap.

Concurrency: commits that may cross a threshold take a per-team advisory lock before
summing, so two commits crossing it together are counted one after the other (neither
misses the other's row); the unique (team, subject, threshold) row and the notification's
dedupe key make each alert once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from outreach_core.costs.budget import (
    LedgerEntry,
    Limit,
    Room,
    campaign_subject,
    cap_column,
    month_bounds,
    team_subject,
)
from outreach_core.db.states import BudgetScope, CostCategory
from outreach_core.db.tables import BudgetAlert, Campaign, CostLedger
from outreach_core.notify.outbox import enqueue
from outreach_core.settings import get_settings

NOTIFICATION_KIND = "budget_alert"
EXHAUSTED_PCT = 100


def check_spend(session: Session, team_id: uuid.UUID, entries: Sequence[LedgerEntry]) -> int:
    """After `entries` were written to the ledger in this transaction: record and notify
    each threshold their budgets have now reached. Returns how many alerts were new."""
    categories: list[CostCategory | None] = [*sorted({e.category for e in entries}), None]
    team_caps = _team_caps(session, team_id, categories)
    campaign_caps = _campaign_caps(
        session, team_id, {e.campaign_id for e in entries if e.campaign_id}
    )
    if not team_caps and not campaign_caps:
        return 0
    now = session.scalar(text("SELECT now()")).astimezone(UTC)
    subjects = [team_subject(c, now) for c in team_caps] + [
        campaign_subject(c) for c in campaign_caps
    ]
    if not _open_thresholds(session, team_id, subjects):
        return 0
    # Serialises this team's commits from here to their ends (see the module's docstring).
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"budget-alerts:{team_id}"},
    )
    limits = [
        Limit(team_subject(category, now), cap, used)
        for category, (cap, used) in _team_spend(session, team_id, team_caps, now).items()
    ]
    if campaign_caps:
        spent = dict(
            session.execute(
                select(CostLedger.campaign_id, func.sum(CostLedger.amount))
                .where(CostLedger.team_id == team_id)
                .where(CostLedger.campaign_id.in_(campaign_caps))
                .group_by(CostLedger.campaign_id)
            ).all()
        )
        limits += [
            Limit(campaign_subject(c), cap, spent.get(c, Decimal(0)), c)
            for c, cap in campaign_caps.items()
        ]
    new = 0
    for limit in limits:
        for pct in get_settings().budget_alert_thresholds_pct:
            if limit.used > 0 and limit.used * 100 >= limit.cap * pct:
                new += record_alert(session, team_id, limit, pct)
    return new


def budget_exhausted(session: Session, team_id: uuid.UUID, room: Room) -> bool:
    """The send path found that `room`'s binding budget cannot pay for the next message: its
    100% alert (once), whatever the ledger alone says yet."""
    if room.binding is None:
        return False
    return record_alert(session, team_id, room.binding, EXHAUSTED_PCT, held=True)


def record_alert(
    session: Session, team_id: uuid.UUID, limit: Limit, pct: int, *, held: bool = False
) -> bool:
    """One budget_alerts row and its notification, unless this threshold of this budget was
    recorded already (then False). `held`: `limit.used` counts reservations too."""
    scope = BudgetScope.CAMPAIGN if limit.campaign_id else BudgetScope.TEAM
    inserted = session.scalar(
        insert(BudgetAlert)
        .values(
            team_id=team_id,
            scope=scope,
            campaign_id=limit.campaign_id,
            subject=limit.subject,
            threshold_pct=pct,
            spent=limit.used,
            cap=limit.cap,
        )
        .on_conflict_do_nothing(index_elements=["team_id", "subject", "threshold_pct"])
        .returning(BudgetAlert.id)
    )
    if inserted is None:
        return False
    enqueue(
        session,
        team_id,
        NOTIFICATION_KIND,
        _text(session, limit, pct, held),
        {
            "subject": limit.subject,
            "scope": str(scope),
            "campaign_id": str(limit.campaign_id) if limit.campaign_id else None,
            "threshold_pct": pct,
            "spent": str(limit.used),
            "cap": str(limit.cap),
        },
        dedupe_key=f"budget:{limit.subject}:{pct}",
    )
    return True


def _text(session: Session, limit: Limit, pct: int, held: bool) -> str:
    spent = f"${limit.used:.2f} of ${limit.cap:.2f} {'spent or held' if held else 'spent'}"
    if limit.campaign_id is not None:
        name = session.scalar(select(Campaign.name).where(Campaign.id == limit.campaign_id))
        what, then = f'campaign "{name}"', "it is paused before its next send"
    else:
        # "team:<category or total>:<YYYY-MM>"
        _, category, month = limit.subject.split(":")
        kind = "" if category == "total" else f" {category}"
        what = f"the team's{kind} budget for {month}"
        then = "what it pays for stops until the cap is raised or the month ends"
    if pct < EXHAUSTED_PCT:
        return f"Budget alert: {what} is {pct}% used ({spent})."
    return f"Budget reached: {what} is used up ({spent}); {then}."


def _team_caps(
    session: Session, team_id: uuid.UUID, categories: list[CostCategory | None]
) -> dict[CostCategory | None, Decimal]:
    """The team's caps on these categories (None: the total) that are set."""
    row = session.execute(
        text(
            f"SELECT {', '.join(cap_column(c) for c in categories)} "
            "FROM team_budgets WHERE team_id = :t"
        ),
        {"t": team_id},
    ).one_or_none()
    if row is None:
        return {}
    return {c: Decimal(cap) for c, cap in zip(categories, row, strict=True) if cap is not None}


def _team_spend(
    session: Session,
    team_id: uuid.UUID,
    caps: dict[CostCategory | None, Decimal],
    now: datetime,
) -> dict[CostCategory | None, tuple[Decimal, Decimal]]:
    """Each cap with the ledger's spend against it this month."""
    start, end = month_bounds(now)
    by_category: dict[str, Decimal] = dict(
        session.execute(
            select(CostLedger.category, func.sum(CostLedger.amount))
            .where(CostLedger.team_id == team_id)
            .where(CostLedger.created_at >= start, CostLedger.created_at < end)
            .group_by(CostLedger.category)
        ).all()
    )
    return {
        category: (
            cap,
            sum(
                (v for k, v in by_category.items() if category is None or k == category),
                Decimal(0),
            ),
        )
        for category, cap in caps.items()
    }


def _campaign_caps(
    session: Session, team_id: uuid.UUID, campaign_ids: set[uuid.UUID]
) -> dict[uuid.UUID, Decimal]:
    if not campaign_ids:
        return {}
    rows = session.execute(
        select(Campaign.id, Campaign.budget).where(
            Campaign.team_id == team_id,
            Campaign.id.in_(campaign_ids),
            Campaign.budget.is_not(None),
        )
    )
    return {r.id: r.budget for r in rows}


def _open_thresholds(session: Session, team_id: uuid.UUID, subjects: list[str]) -> bool:
    """Whether any of these budgets has a threshold not alerted yet (alerts are never
    removed: once all are there, a commit has nothing to check)."""
    thresholds = get_settings().budget_alert_thresholds_pct
    recorded = session.scalar(
        select(func.count())
        .select_from(BudgetAlert)
        .where(BudgetAlert.team_id == team_id)
        .where(BudgetAlert.subject.in_(subjects), BudgetAlert.threshold_pct.in_(thresholds))
    )
    return (recorded or 0) < len(subjects) * len(set(thresholds))
