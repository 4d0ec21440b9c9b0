"""Teams and their API keys. A key is shown once; only its SHA-256 is stored (keys are
random 256-bit secrets, so a slow password hash would add latency and no safety)."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from outreach_core.db.engine import system_session, tenant_session
from outreach_core.db.tables import ApiKey, Team

KEY_PREFIX = "ok_"
_KEY_BYTES = 32
# What _new_key makes: the prefix and unpadded URL-safe base64 of _KEY_BYTES random bytes.
# Explicit ASCII ranges: a key is matched exactly, never after trimming or Unicode folding.
_KEY = re.compile(rf"{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]{{{math.ceil(_KEY_BYTES * 4 / 3)}}}")


@dataclass(frozen=True)
class NewTeam:
    team_id: uuid.UUID
    name: str
    api_key: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def create_team(name: str) -> NewTeam:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("team name must be 1-200 characters")
    team_id = uuid.uuid4()
    with tenant_session(team_id) as session:
        session.add(Team(id=team_id, name=name))
        session.flush()
        api_key = _add_key(session, team_id, "default")
    return NewTeam(team_id=team_id, name=name, api_key=api_key)


def _add_key(session: Session, team_id: uuid.UUID, name: str) -> str:
    api_key = _new_key()
    session.add(
        ApiKey(
            team_id=team_id,
            id=uuid.uuid4(),
            name=name,
            prefix=api_key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(api_key),
        )
    )
    return api_key


def create_api_key(team_id: uuid.UUID, name: str = "default") -> str:
    with tenant_session(team_id) as session:
        return _add_key(session, team_id, name)


def revoke_api_key(team_id: uuid.UUID, api_key: str) -> bool:
    with tenant_session(team_id) as session:
        result = session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_key(api_key), ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        return result.rowcount > 0


def resolve_api_key(api_key: str) -> uuid.UUID | None:
    """The team a live key belongs to, or None. Runs before any tenant is known, through
    the one SECURITY DEFINER function made for it."""
    if not _KEY.fullmatch(api_key):
        return None
    with system_session() as session:
        return session.scalar(text("SELECT outreach_resolve_api_key(:h)"), {"h": hash_key(api_key)})


def get_team(team_id: uuid.UUID) -> Team | None:
    with tenant_session(team_id) as session:
        return session.scalar(select(Team).where(Team.id == team_id))


# The settings a team may change itself (PATCH /v1/teams/me, `outreach team settings`).
TEAM_SETTINGS = (
    "require_consent",
    "client",
    "help_text",
    "voice_forward_to",
    "notify_webhook_url",
)


def update_team_settings(team_id: uuid.UUID, changes: dict[str, object]) -> None:
    """Change the given settings; ValueError names an unknown setting or a bad value."""
    from outreach_core.messaging.consent import e164
    from outreach_core.notify.deliver import check_webhook_url
    from outreach_core.replies.classes import Client

    unknown = sorted(set(changes) - set(TEAM_SETTINGS))
    if unknown:
        raise ValueError(f"not a team setting: {', '.join(unknown)}")
    changes = dict(changes)
    if changes.get("client") is not None:
        changes["client"] = Client.parse(str(changes["client"]))
    if changes.get("voice_forward_to") is not None:
        changes["voice_forward_to"] = e164(str(changes["voice_forward_to"]))
    if changes.get("notify_webhook_url") is not None:
        changes["notify_webhook_url"] = check_webhook_url(str(changes["notify_webhook_url"]))
    if changes:
        with tenant_session(team_id) as session:
            session.execute(update(Team).where(Team.id == team_id).values(**changes))
