"""/v1/inbox, /v1/conversations and /v1/reviews: work the replies. The rules are
`outreach_core.inbox`'s; these routes translate."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from outreach_api.deps import NO_NUL, TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.db.states import (
    Channel,
    InboxStatus,
    MessageStatus,
    Priority,
    ResponseBucket,
    ReviewStatus,
)
from outreach_core.inbox import queries
from outreach_core.inbox.queries import Conflict, Cursor, InboxFilter, NotFound
from outreach_core.messaging.sender import send_replies
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.replies.classes import ReplyClass

router = APIRouter(tags=["inbox"], responses=V1_ERRORS)

# Until users come with their names, the API key's team is who acted.
API_ACTOR = "api"
ITEM_NOT_FOUND = error(404, "No inbox item with this id in your team.")
REVIEW_NOT_FOUND = error(404, "No review with this id in your team.")
DECIDED = error(409, "The review was approved or rejected already.")
MAX_PAGE = 500


class InboxItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    lead_id: int | None
    campaign_id: uuid.UUID | None
    contact_phone: str
    direction: str = "inbound"
    channel: Channel
    body: str
    classification: ReplyClass
    classification_name: str
    confidence: int
    fields: dict[str, Any]
    priority: Priority
    bucket: ResponseBucket
    status: InboxStatus
    handling: str | None = Field(
        description="What happened automatically: auto_reply, review, opt_out, opt_in, "
        "help, call, suppressed."
    )
    created_at: datetime


class InboxPageOut(BaseModel):
    items: list[InboxItemOut]
    next_cursor: str | None = Field(description="Pass as `after` for the next page.")


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: ResponseBucket
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: InboxStatus


class MovementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_bucket: str | None
    to_bucket: ResponseBucket
    actor: str
    reason: str | None
    at: datetime


class MovedOut(InboxItemOut):
    movements: list[MovementOut]


class ThreadEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    direction: str
    channel: str
    kind: str
    body: str
    status: str


class ConversationOut(BaseModel):
    contact_phone: str
    lead_id: int | None
    campaign_id: uuid.UUID | None
    stage: str | None
    last_intent: str | None
    inbound_count: int
    outbound_count: int
    first_name: str | None
    email: str | None
    last_message_at: datetime | None
    messages: list[ThreadEntryOut]


class ReviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    inbox_item_id: uuid.UUID
    contact_phone: str
    incoming: str
    draft: str
    alternatives: list[str]
    intent: str
    confidence: int
    stage: str
    reason: str = Field(description="Why it was not answered automatically.")
    status: ReviewStatus
    decided_by: str | None
    decided_at: datetime | None
    message_id: uuid.UUID | None


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        default=None, min_length=1, max_length=1600, pattern=NO_NUL, description="Edited text."
    )
    alternative: int | None = Field(
        default=None, ge=0, le=2, description="Send this alternative (0-2) instead."
    )


class ApprovedOut(ReviewOut):
    message_status: MessageStatus = Field(
        description="The reply's status: sent (or further), or pending when a guardrail "
        "holds it (quiet hours) until the replies sensor sends it."
    )
    block_reason: str | None


@router.get(
    "/v1/inbox",
    response_model=InboxPageOut,
    responses=error(
        422,
        "A parameter failed validation, or `after` is no cursor.",
        ValidationErrorOut | ErrorOut,
    ),
)
def inbox(
    team_id: TeamId,
    bucket: ResponseBucket | None = None,
    priority: Priority | None = None,
    classification: ReplyClass | None = None,
    status: InboxStatus | None = None,
    campaign_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    after: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="`next_cursor` of the last page"),
    ] = None,
) -> InboxPageOut:
    """The team's inbox, newest first."""
    try:
        cursor = Cursor.decode(after) if after else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    which = InboxFilter(bucket, priority, classification, status, campaign_id)
    items, following = queries.list_inbox(team_id, which, limit=limit, after=cursor)
    return InboxPageOut(
        items=[InboxItemOut.model_validate(i) for i in items],
        next_cursor=following.encode() if following else None,
    )


@router.post("/v1/inbox/{item_id}/move", response_model=MovedOut, responses=ITEM_NOT_FOUND)
def move(item_id: uuid.UUID, body: MoveIn, team_id: TeamId) -> MovedOut:
    """Move an item to another response bucket; the movement is recorded."""
    try:
        item = queries.move_item(team_id, item_id, body.bucket, API_ACTOR, body.reason)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    movements = queries.bucket_movements(team_id, item_id)
    return MovedOut(
        **InboxItemOut.model_validate(item).model_dump(),
        movements=[MovementOut.model_validate(m) for m in movements],
    )


@router.post("/v1/inbox/{item_id}/status", response_model=InboxItemOut, responses=ITEM_NOT_FOUND)
def set_status(item_id: uuid.UUID, body: StatusIn, team_id: TeamId) -> InboxItemOut:
    try:
        item = queries.set_item_status(team_id, item_id, body.status)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return InboxItemOut.model_validate(item)


@router.get(
    "/v1/conversations/{phone}",
    response_model=ConversationOut,
    responses=error(404, "No message to or from this phone in your team."),
)
def thread(
    phone: Annotated[str, Path(min_length=2, max_length=20, pattern=r"^\+?[0-9]+$")],
    team_id: TeamId,
) -> ConversationOut:
    """The whole thread with one contact: outbound and inbound, oldest first."""
    context, entries = queries.conversation(team_id, phone)
    if context is None and not entries:
        raise HTTPException(404, f"no message to or from {phone} in your team")
    return ConversationOut(
        contact_phone=phone,
        lead_id=context.lead_id if context else None,
        campaign_id=context.campaign_id if context else None,
        stage=context.stage if context else None,
        last_intent=context.last_intent if context else None,
        inbound_count=context.inbound_count if context else 0,
        outbound_count=context.outbound_count if context else len(entries),
        first_name=context.first_name if context else None,
        email=context.email if context else None,
        last_message_at=context.last_message_at if context else None,
        messages=[ThreadEntryOut.model_validate(e) for e in entries],
    )


@router.get("/v1/reviews", response_model=list[ReviewOut])
def reviews(
    team_id: TeamId,
    status: ReviewStatus | None = ReviewStatus.PENDING,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[ReviewOut]:
    """Drafted replies waiting for a person (oldest first), or those in `status`."""
    return [ReviewOut.model_validate(r) for r in queries.list_reviews(team_id, status, limit)]


@router.post(
    "/v1/reviews/{review_id}/approve",
    response_model=ApprovedOut,
    responses={
        **REVIEW_NOT_FOUND,
        **DECIDED,
        **error(
            422,
            "A field failed validation, or the alternative does not exist.",
            ValidationErrorOut | ErrorOut,
        ),
    },
)
async def approve(review_id: uuid.UUID, body: ApproveIn, team_id: TeamId) -> ApprovedOut:
    """Send the draft (or the edited text, or an alternative) through the same guardrails
    and outbox as a campaign."""
    try:
        review = await run_in_threadpool(
            queries.approve_review,
            team_id,
            review_id,
            API_ACTOR,
            text=body.text,
            alternative=body.alternative,
        )
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    gateway = TwilioGateway.from_settings()
    await run_in_threadpool(send_replies, team_id, gateway, f"api:{review.id}")
    assert review.message_id is not None
    message = queries.message_status(team_id, review.message_id)
    assert message is not None
    return ApprovedOut(
        **ReviewOut.model_validate(review).model_dump(),
        message_status=message.status,
        block_reason=message.block_reason,
    )


@router.post(
    "/v1/reviews/{review_id}/reject",
    response_model=ReviewOut,
    responses={**REVIEW_NOT_FOUND, **DECIDED},
)
def reject(review_id: uuid.UUID, team_id: TeamId) -> ReviewOut:
    try:
        review = queries.reject_review(team_id, review_id, API_ACTOR)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return ReviewOut.model_validate(review)
