"""Posting team notifications to the team's Slack-compatible incoming webhook
(`teams.notify_webhook_url`) as `{"text": ...}`.

Each due notification is claimed (`sending`, committed before the POST), posted, then marked
`sent` or `failed` (a 4xx other than 429, a redirect, or its attempts used up: the reason is
kept in `error`), or put back to `pending` until `next_attempt_at` after a 5xx, a 429 or a
connection error (the wait doubles with each attempt; a longer Retry-After wins). A claim
whose run died is claimed again once stale, so nothing is lost; a run that died after the
webhook took the post but before our commit makes it post again (incoming webhooks have no
idempotency key: at least once).

A team without a URL has its notifications recorded only: they end `failed` with the reason,
and are not posted later if a URL is set then."""

from __future__ import annotations

import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select, update

from outreach_core.crashpoints import crashpoint
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import NotificationStatus
from outreach_core.db.tables import Team, TeamNotification
from outreach_core.settings import get_settings

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
NO_URL = "not posted: the team has no notify_webhook_url"
# A Retry-After longer than this is not waited for (the attempts cap still applies).
MAX_RETRY_AFTER = timedelta(hours=1)


def check_webhook_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; ValueError saying what is wrong (without
    echoing it: an incoming-webhook URL is a secret)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(
            f"notify_webhook_url must be a URL of 1-{MAX_URL_LENGTH} characters without spaces"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "notify_webhook_url must be an http:// or https:// URL with a host, e.g. "
            "https://hooks.slack.com/services/..."
        )
    if get_settings().provider_mode == "live":
        # A tenant must not make our workers post into our own network (SSRF); loopback
        # receivers are for the sandbox.
        if parts.scheme != "https":
            raise ValueError("notify_webhook_url must be an https:// URL in live mode")
        if _internal_address(parts.hostname, resolve=False):
            raise ValueError(
                "notify_webhook_url must not point at a non-public address (loopback, "
                "private, link-local) in live mode"
            )
    return url


def _internal_address(host: str, *, resolve: bool) -> bool:
    """Whether `host` is (or, resolving it, names) an address that is not public."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return False  # a name: checked again, resolved, when a post is made
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return False  # unresolvable: the post fails and is retried
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    return any(not a.is_global for a in addresses)


def masked_url(url: str | None) -> str | None:
    """Enough of an incoming-webhook URL to recognise it; the rest is its secret."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


class _Refused(Exception):
    """A post we will not make."""


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    retrying: int = 0


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    text: str
    attempts: int
    url: str


def deliver_pending(
    team_id: uuid.UUID, *, now: datetime | None = None, client: httpx.Client | None = None
) -> DeliveryStats:
    """Post the team's due notifications, each tried at most once per call (a retry waits
    for its `next_attempt_at` and a later call)."""
    now = now or datetime.now(UTC)
    stats = DeliveryStats()
    tried: list[uuid.UUID] = []
    with tenant_session(team_id) as session:
        url = session.scalar(select(Team.notify_webhook_url).where(Team.id == team_id))
    http = client or httpx.Client(timeout=get_settings().notify_timeout_s, follow_redirects=False)
    try:
        while (found := _claim_next(team_id, url, now, tried, stats)) is not None:
            tried.append(found[0])
            claimed = found[1]
            if claimed is None:
                continue  # settled at the claim: no URL, or no attempts left
            crashpoint("notify.after_claim")
            _post_one(team_id, claimed, http, now, stats)
    finally:
        if client is None:
            http.close()
    return stats


def _claim_next(
    team_id: uuid.UUID,
    url: str | None,
    now: datetime,
    tried: list[uuid.UUID],
    stats: DeliveryStats,
) -> tuple[uuid.UUID, _Claimed | None] | None:
    """The next due notification, claimed and committed; None when none is due. A row that
    cannot be posted (no URL, its attempts used up by dead runs) is failed here instead."""
    settings = get_settings()
    stale = now - timedelta(seconds=settings.notify_stale_seconds)
    with tenant_session(team_id) as session:
        row = session.scalar(
            select(TeamNotification)
            .where(TeamNotification.team_id == team_id)
            .where(
                or_(
                    (TeamNotification.status == NotificationStatus.PENDING)
                    & or_(
                        TeamNotification.next_attempt_at.is_(None),
                        TeamNotification.next_attempt_at <= now,
                    ),
                    (TeamNotification.status == NotificationStatus.SENDING)
                    & (TeamNotification.claimed_at < stale),
                )
            )
            .where(TeamNotification.id.not_in(tried))
            .order_by(TeamNotification.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        if url is None or row.attempts >= settings.notify_max_attempts:
            row.status = NotificationStatus.FAILED
            if url is None:
                row.error = NO_URL
            else:
                row.error = f"gave up after {row.attempts} attempts: {row.error or 'run died'}"
            stats.failed += 1
            return row.id, None
        row.status = NotificationStatus.SENDING
        row.claimed_at = now
        row.next_attempt_at = None
        row.attempts += 1
        return row.id, _Claimed(row.id, row.text, row.attempts, url)


def _post_one(
    team_id: uuid.UUID, claimed: _Claimed, http: httpx.Client, now: datetime, stats: DeliveryStats
) -> None:
    retry_after: timedelta | None = None
    host = urlsplit(claimed.url).hostname or ""
    try:
        if get_settings().provider_mode == "live" and _internal_address(host, resolve=True):
            # A name may resolve into our network although its URL passed the check.
            raise _Refused("the webhook's host resolves to a non-public address")
        response = http.post(claimed.url, json={"text": claimed.text})
    except _Refused as refused:
        outcome, error = NotificationStatus.FAILED, str(refused)
    except httpx.HTTPError as exc:
        # Connection refused or reset, a timeout: the webhook may come back.
        outcome, error = NotificationStatus.PENDING, f"{type(exc).__name__}: {exc}"
    else:
        status = response.status_code
        error = f"HTTP {status}: {response.text[:200]}"
        if response.is_success:
            outcome, error = NotificationStatus.SENT, None
        elif status == 429 or status >= 500:
            outcome, retry_after = NotificationStatus.PENDING, _retry_after(response, now)
        elif response.is_redirect:
            outcome, error = NotificationStatus.FAILED, f"HTTP {status}: redirects are not followed"
        else:
            outcome = NotificationStatus.FAILED
    settings = get_settings()
    if outcome is NotificationStatus.PENDING and claimed.attempts >= settings.notify_max_attempts:
        outcome, error = (
            NotificationStatus.FAILED,
            f"gave up after {claimed.attempts} attempts: {error}",
        )
    values: dict[str, object] = {"status": outcome, "error": error}
    if outcome is NotificationStatus.SENT:
        values["sent_at"] = datetime.now(UTC)
        stats.sent += 1
    elif outcome is NotificationStatus.PENDING:
        backoff = timedelta(seconds=settings.notify_retry_seconds * 2 ** (claimed.attempts - 1))
        values["next_attempt_at"] = now + max(backoff, retry_after or timedelta(0))
        stats.retrying += 1
    else:
        stats.failed += 1
    log.info("notification %s: %s%s", claimed.id, outcome, f" ({error})" if error else "")
    with tenant_session(team_id) as session:
        # Only our claim: a run that took it over (ours was stale) records its own outcome.
        session.execute(
            update(TeamNotification)
            .where(TeamNotification.team_id == team_id, TeamNotification.id == claimed.id)
            .where(TeamNotification.status == NotificationStatus.SENDING)
            .where(TeamNotification.claimed_at == now)
            .values(**values)
        )


def _retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """The response's Retry-After (seconds or an HTTP date), at most MAX_RETRY_AFTER."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            wait = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return min(max(wait, timedelta(0)), MAX_RETRY_AFTER)
