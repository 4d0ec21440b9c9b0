"""Inbound messages whose processing failed (or whose webhook died mid-way) are processed
again, at most `inbound_max_attempts` times; their answers go through the outbox."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import InboundStatus
from outreach_core.db.tables import InboundMessage
from outreach_core.inbox.processing import mark_failed, process
from outreach_core.settings import get_settings

log = logging.getLogger(__name__)


def pending_inbound(team_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    settings = get_settings()
    stale = now - timedelta(seconds=settings.inbound_retry_after_seconds)
    with tenant_session(team_id) as session:
        return list(
            session.scalars(
                select(InboundMessage.id)
                .where(InboundMessage.attempts < settings.inbound_max_attempts)
                .where(
                    or_(
                        InboundMessage.status == InboundStatus.PROCESSING_FAILED,
                        (InboundMessage.status == InboundStatus.RECEIVED)
                        & (InboundMessage.received_at < stale),
                    )
                )
                .order_by(InboundMessage.received_at)
            )
        )


def process_pending(team_id: uuid.UUID, *, now: datetime | None = None) -> int:
    """Process the team's failed or stuck inbound messages again; returns how many now are
    processed. One failing again is recorded and left for the next try."""
    now = now or datetime.now(UTC)
    done = 0
    for inbound_id in pending_inbound(team_id, now):
        try:
            process(team_id, inbound_id, inline=False)
        except Exception as exc:  # noqa: BLE001 - recorded; the next tick tries again
            log.exception("inbound %s: processing failed again", inbound_id)
            mark_failed(team_id, inbound_id, exc)
            continue
        done += 1
    return done
