"""Inbound messages the webhook queued during a burst, and those whose processing failed
(or whose webhook died mid-way), are processed here, the latter at most
`inbound_max_attempts` times; their answers go through the outbox."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import InboundStatus
from outreach_core.db.tables import InboundMessage
from outreach_core.inbox.processing import mark_failed, process
from outreach_core.settings import get_settings

log = logging.getLogger(__name__)

# Messages between two progress lines of a replies run.
PROGRESS_EVERY = 100


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
                        InboundMessage.status.in_(
                            [InboundStatus.QUEUED, InboundStatus.PROCESSING_FAILED]
                        ),
                        (InboundMessage.status == InboundStatus.RECEIVED)
                        & (InboundMessage.received_at < stale),
                    )
                )
                .order_by(InboundMessage.received_at)
            )
        )


def process_pending(
    team_id: uuid.UUID,
    *,
    now: datetime | None = None,
    log_progress: Callable[[str], None] = log.info,
) -> int:
    """Process the team's queued, failed or stuck inbound messages, oldest first; returns how
    many now are processed. One failing is recorded and left for the next try. All of them
    before any answer is sent: answers go out at the sending number's pace (1 a second by
    default), and a burst's later messages would otherwise wait for them to reach the inbox."""
    now = now or datetime.now(UTC)
    done = 0
    pending = pending_inbound(team_id, now)
    for position, inbound_id in enumerate(pending, 1):
        if position % PROGRESS_EVERY == 0:
            log_progress(f"inbound processed {position - 1} of {len(pending)}")
        try:
            process(team_id, inbound_id, inline=False)
        except Exception as exc:  # noqa: BLE001 - recorded; the next tick tries again
            log.exception("inbound %s: processing failed again", inbound_id)
            mark_failed(team_id, inbound_id, exc)
            continue
        done += 1
    return done
