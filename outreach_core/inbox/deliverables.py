"""Email deliverable jobs: each pending job is claimed (`sending`, committed before the SMTP
call), emailed, then marked `sent` or `failed`, or put back to `pending` after a retryable
refusal. A job whose run died mid-call is claimed again once stale: the same Message-ID
goes out again (see `outreach_core.deliverables.email` for why SMTP allows no better)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import DeliverableStatus
from outreach_core.db.tables import DeliverableJob, Team
from outreach_core.deliverables.catalogue import deliverable_for
from outreach_core.deliverables.email import EmailRefused, SmtpConfig, compose, send
from outreach_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


def smtp_config(settings: Settings | None = None) -> SmtpConfig:
    settings = settings or get_settings()
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout_s=settings.smtp_timeout_s,
    )


@dataclass
class DeliverableStats:
    sent: int = 0
    failed: int = 0
    retrying: int = 0


def send_pending_deliverables(
    team_id: uuid.UUID, config: SmtpConfig, *, now: datetime | None = None
) -> DeliverableStats:
    """Email the team's pending deliverables, each tried at most once per call (a retryable
    refusal waits for the next call)."""
    stats = DeliverableStats()
    tried: list[uuid.UUID] = []
    while (job_id := _claim_next(team_id, now or datetime.now(UTC), tried)) is not None:
        tried.append(job_id)
        _send_one(team_id, job_id, config, stats)
    return stats


def _claim_next(team_id: uuid.UUID, now: datetime, tried: list[uuid.UUID]) -> uuid.UUID | None:
    stale = now - timedelta(seconds=get_settings().deliverable_stale_seconds)
    with tenant_session(team_id) as session:
        job = session.scalar(
            select(DeliverableJob)
            .where(
                or_(
                    DeliverableJob.status == DeliverableStatus.PENDING,
                    (DeliverableJob.status == DeliverableStatus.SENDING)
                    & (DeliverableJob.claimed_at < stale),
                )
            )
            .where(DeliverableJob.id.not_in(tried))
            .order_by(DeliverableJob.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        job.status = DeliverableStatus.SENDING
        job.claimed_at = now
        job.attempts += 1
        return job.id


def _send_one(
    team_id: uuid.UUID, job_id: uuid.UUID, config: SmtpConfig, stats: DeliverableStats
) -> None:
    with tenant_session(team_id) as session:
        job = session.get(DeliverableJob, (team_id, job_id))
        team = session.get(Team, team_id)
        assert job is not None and team is not None
        try:
            message = compose(
                deliverable_for(job.client),
                to=job.email,
                first_name=job.first_name,
                team_name=team.name,
                job_id=str(job.id),
            )
            job.email_message_id = send(config, message)
        except EmailRefused as refused:
            job.error = str(refused)[:1000]
            if refused.permanent or job.attempts >= get_settings().deliverable_max_attempts:
                job.status = DeliverableStatus.FAILED
                stats.failed += 1
            else:
                job.status = DeliverableStatus.PENDING
                stats.retrying += 1
            log.warning("deliverable %s: %s", job.id, refused)
            return
        job.status = DeliverableStatus.SENT
        job.sent_at = datetime.now(UTC)
        job.error = None
        stats.sent += 1
