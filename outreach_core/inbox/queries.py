"""Working the inbox: list items (filters, keyset pages), move an item between response
buckets (recorded with who and why), change its status; a contact's whole thread; reviews
of drafted replies, approved (sent through the guardrails and the outbox) or rejected."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    InboxStatus,
    MessageKind,
    MessageStatus,
    Priority,
    ResponseBucket,
    ReviewStatus,
)
from outreach_core.db.tables import (
    BucketMovement,
    Conversation,
    InboundMessage,
    InboxItem,
    Message,
    Review,
)
from outreach_core.inbox.processing import append_history
from outreach_core.messaging.segments import count_segments
from outreach_core.replies.classes import ReplyClass


class NotFound(LookupError):
    """No such item (or review) in the caller's team."""


class Conflict(Exception):
    """The review was decided already; the message says how."""


@dataclass(frozen=True)
class InboxFilter:
    bucket: ResponseBucket | None = None
    priority: Priority | None = None
    classification: ReplyClass | None = None
    status: InboxStatus | None = None
    campaign_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended (newest first)."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        return f"{self.created_at.isoformat()}_{self.id}"

    @classmethod
    def decode(cls, value: str) -> Cursor:
        at, _, item_id = value.rpartition("_")
        try:
            return cls(datetime.fromisoformat(at), uuid.UUID(item_id))
        except ValueError:
            raise ValueError(f"not a cursor from a previous page: {value!r}") from None


def list_inbox(
    team_id: uuid.UUID, which: InboxFilter, *, limit: int, after: Cursor | None = None
) -> tuple[list[InboxItem], Cursor | None]:
    """A page of the team's items, newest first, and the cursor of the next page."""
    query = select(InboxItem).where(InboxItem.team_id == team_id)
    for column, value in (
        (InboxItem.bucket, which.bucket),
        (InboxItem.priority, which.priority),
        (InboxItem.classification, which.classification),
        (InboxItem.status, which.status),
        (InboxItem.campaign_id, which.campaign_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(
            tuple_(InboxItem.created_at, InboxItem.id) < tuple_(after.created_at, after.id)
        )
    query = query.order_by(InboxItem.created_at.desc(), InboxItem.id.desc()).limit(limit + 1)
    with tenant_session(team_id) as session:
        items = list(session.scalars(query))
    more = len(items) > limit
    items = items[:limit]
    return items, Cursor(items[-1].created_at, items[-1].id) if more else None


def _item(session: Any, team_id: uuid.UUID, item_id: uuid.UUID) -> InboxItem:
    item = session.get(InboxItem, (team_id, item_id), with_for_update=True)
    if item is None:
        raise NotFound(f"no inbox item {item_id} in your team")
    return item


def move_item(
    team_id: uuid.UUID, item_id: uuid.UUID, to: ResponseBucket, actor: str, reason: str | None
) -> InboxItem:
    with tenant_session(team_id) as session:
        item = _item(session, team_id, item_id)
        move_in(session, item, to, actor, reason)
        return item


def move_in(
    session: Any, item: InboxItem, to: ResponseBucket, actor: str, reason: str | None
) -> bool:
    """Move a locked item in the caller's transaction (a workflow step moves one too);
    False when it is in that bucket already."""
    if item.bucket is to:
        return False
    session.add(
        BucketMovement(
            team_id=item.team_id,
            inbox_item_id=item.id,
            from_bucket=str(item.bucket),
            to_bucket=to,
            actor=actor,
            reason=reason,
        )
    )
    item.bucket = to
    item.updated_at = datetime.now(UTC)
    return True


def bucket_movements(team_id: uuid.UUID, item_id: uuid.UUID) -> list[BucketMovement]:
    with tenant_session(team_id) as session:
        return list(
            session.scalars(
                select(BucketMovement)
                .where(BucketMovement.inbox_item_id == item_id)
                .order_by(BucketMovement.id)
            )
        )


def set_item_status(team_id: uuid.UUID, item_id: uuid.UUID, status: InboxStatus) -> InboxItem:
    with tenant_session(team_id) as session:
        item = _item(session, team_id, item_id)
        item.status = status
        item.updated_at = datetime.now(UTC)
        return item


@dataclass(frozen=True)
class ThreadEntry:
    at: datetime
    direction: str  # "inbound" | "outbound"
    channel: str
    kind: str  # campaign, auto_reply, reply, service; "sms"/"voice" for inbound
    body: str
    status: str
    id: uuid.UUID


def conversation(team_id: uuid.UUID, phone: str) -> tuple[Conversation | None, list[ThreadEntry]]:
    """The contact's context and every message both ways, oldest first."""
    with tenant_session(team_id) as session:
        context = session.get(Conversation, (team_id, phone))
        inbound = session.scalars(
            select(InboundMessage).where(InboundMessage.from_phone == phone)
        ).all()
        outbound = session.scalars(select(Message).where(Message.to_phone == phone)).all()
    entries = [
        ThreadEntry(
            m.received_at, "inbound", str(m.channel), str(m.channel), m.body, str(m.status), m.id
        )
        for m in inbound
    ] + [
        ThreadEntry(
            m.sent_at or m.created_at, "outbound", "sms", str(m.kind), m.body, str(m.status), m.id
        )
        for m in outbound
    ]
    return context, sorted(entries, key=lambda e: e.at)


def list_reviews(team_id: uuid.UUID, status: ReviewStatus | None, limit: int) -> list[Review]:
    query = select(Review).order_by(Review.created_at).limit(limit)
    if status is not None:
        query = query.where(Review.status == status)
    with tenant_session(team_id) as session:
        return list(session.scalars(query))


def reject_review(team_id: uuid.UUID, review_id: uuid.UUID, actor: str) -> Review:
    with tenant_session(team_id) as session:
        review = _pending_review(session, team_id, review_id)
        review.status = ReviewStatus.REJECTED
        review.decided_by = actor
        review.decided_at = datetime.now(UTC)
        return review


def approve_review(
    team_id: uuid.UUID,
    review_id: uuid.UUID,
    actor: str,
    *,
    text: str | None = None,
    alternative: int | None = None,
) -> Review:
    """Queue the draft (or `text`, or alternative number `alternative`) in the outbox as the
    answer to its inbound message; the caller sends it with `sender.send_replies`, which
    applies the guardrails. ValueError for a bad alternative or an empty text."""
    with tenant_session(team_id) as session:
        review = _pending_review(session, team_id, review_id)
        body = _approved_text(review, text, alternative)
        inbound = session.get(InboundMessage, (team_id, review.inbound_id))
        assert inbound is not None
        item = session.get(InboxItem, (team_id, review.inbox_item_id))
        now = datetime.now(UTC)
        message = Message(
            team_id=team_id,
            id=uuid.uuid4(),
            kind=MessageKind.REPLY,
            reply_to=review.inbound_id,
            lead_id=item.lead_id if item else None,
            to_phone=review.contact_phone,
            sending_number_id=inbound.sending_number_id,
            body=body,
            segments=count_segments(body).segments,
            status=MessageStatus.PENDING,
            not_before=now,
        )
        session.add(message)
        review.status = ReviewStatus.APPROVED
        review.decided_by = actor
        review.decided_at = now
        review.message_id = message.id
        conversation_ = session.get(Conversation, (team_id, review.contact_phone))
        if conversation_ is not None:
            conversation_.outbound_count += 1
            append_history(conversation_, "outbound", body, now)
        return review


def _approved_text(review: Review, text: str | None, alternative: int | None) -> str:
    if text is not None and alternative is not None:
        raise ValueError("give either `text` or `alternative`, not both")
    if alternative is not None:
        if not 0 <= alternative < len(review.alternatives):
            raise ValueError(
                f"alternative {alternative} does not exist: this draft has "
                f"{len(review.alternatives)} (numbered from 0)"
            )
        return review.alternatives[alternative]
    body = (text if text is not None else review.draft).strip()
    if not body:
        raise ValueError("the reply text is empty")
    return body


def _pending_review(session: Any, team_id: uuid.UUID, review_id: uuid.UUID) -> Review:
    review = session.get(Review, (team_id, review_id), with_for_update=True)
    if review is None:
        raise NotFound(f"no review {review_id} in your team")
    if review.status is not ReviewStatus.PENDING:
        raise Conflict(f"review {review_id} was {review.status} by {review.decided_by} already")
    return review


def message_status(team_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
    with tenant_session(team_id) as session:
        return session.get(Message, (team_id, message_id))


__all__ = [
    "Conflict",
    "Cursor",
    "InboxFilter",
    "NotFound",
    "ThreadEntry",
    "approve_review",
    "bucket_movements",
    "conversation",
    "list_inbox",
    "list_reviews",
    "message_status",
    "move_in",
    "move_item",
    "reject_review",
    "set_item_status",
]
