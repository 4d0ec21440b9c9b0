"""Every persisted set of states, one StrEnum each. The tables' CHECK constraints, the SQL
that filters on a state and the API's filters are all built from these."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class UploadStatus(StrEnum):
    """received -> processing -> completed | failed (a retry sets it back to received)."""

    RECEIVED = "received"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


# Not final yet: a run (or the sensor that starts one) still owes these an outcome.
UPLOAD_ACTIVE = (UploadStatus.RECEIVED, UploadStatus.PROCESSING)


class EnrichmentStatus(StrEnum):
    """A lead's enrichment outcome; NULL means no run has looked at it yet."""

    ENRICHED = "enriched"
    NO_MATCH = "no_match"
    INSUFFICIENT_DATA = "insufficient_data"
    ENRICH_FAILED = "enrich_failed"  # Apollo kept failing; not charged
    BUSY = "busy"  # another run was buying the same person
    QUARANTINED = "quarantined"  # an answer (or a refusal of our request) we could not use
    IN_DOUBT = "in_doubt"  # in flight when a run died: booked, never bought again


# Leads the next enrichment run looks at again (besides those never looked at).
ENRICHMENT_OPEN = (
    EnrichmentStatus.INSUFFICIENT_DATA,
    EnrichmentStatus.ENRICH_FAILED,
    EnrichmentStatus.BUSY,
)


class CacheStatus(StrEnum):
    """An enrichment cache entry: a claim in flight, then a settled answer."""

    PENDING = "pending"  # claimed, not sent yet
    SENT = "sent"  # the request may have left
    MATCHED = "matched"
    NO_MATCH = "no_match"
    QUARANTINED = "quarantined"
    IN_DOUBT = "in_doubt"


CACHE_IN_FLIGHT = (CacheStatus.PENDING, CacheStatus.SENT)
CACHE_SETTLED = (
    CacheStatus.MATCHED,
    CacheStatus.NO_MATCH,
    CacheStatus.QUARANTINED,
    CacheStatus.IN_DOUBT,
)


class CampaignType(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"
    MULTI = "multi"


# Accepted as types today; only these can send (the others are refused with a message).
SENDABLE_CAMPAIGN_TYPES = (CampaignType.SMS,)


class CampaignStatus(StrEnum):
    """draft -> scheduled -> active <-> paused -> completed; cancelled from any live state."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CAMPAIGN_FINAL = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)
CAMPAIGN_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.CANCELLED}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.ACTIVE: frozenset(
        {CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset(
        {CampaignStatus.ACTIVE, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    # Final: a finished campaign has nothing left to cancel.
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}


class NumberStatus(StrEnum):
    """A team's sending number: usable, or halted (e.g. the carrier refused it as an
    unregistered sender) until someone looks at it."""

    ACTIVE = "active"
    HALTED = "halted"


class PhoneFlag(StrEnum):
    """What a team knows about a phone: what stops messages to it, and its consent."""

    SUPPRESSED = "suppressed"  # opted out, blocked us, or on the team's own list
    INVALID = "invalid"  # the provider says it is not a valid mobile number
    LANDLINE = "landline"  # cannot receive SMS
    # Agreed to be contacted (with where that consent came from): a team that requires
    # consent texts a phone for the first time only with this flag.
    CONSENTED = "consented"


# Flags that stop every message to the phone.
PHONE_BLOCKING_FLAGS = (PhoneFlag.SUPPRESSED, PhoneFlag.INVALID, PhoneFlag.LANDLINE)


class CostCategory(StrEnum):
    """What money was spent on: every ledger row and every reservation has one, and a team
    can cap each category and the total per month."""

    ENRICHMENT = "enrichment"
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"


class MessageStatus(StrEnum):
    """An outbound message in the outbox. `pending` waits for its time; `claimed` is
    committed before the provider is called (after a crash, recovery asks the provider
    whether it went out); then the provider's own statuses, which only move forward
    (`MESSAGE_PROGRESS`); `blocked` by a guardrail for good, with the reason; `cancelled`
    with its campaign before it was sent."""

    PENDING = "pending"
    CLAIMED = "claimed"
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    CANCELED = "canceled"  # the provider's spelling: it cancelled a scheduled message
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


# How far along a message is: a status callback never moves it back (a late `sent` after
# `delivered` changes nothing). Final statuses share the top rank.
MESSAGE_PROGRESS: dict[MessageStatus, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.CLAIMED: 1,
    MessageStatus.ACCEPTED: 2,
    MessageStatus.SCHEDULED: 2,
    MessageStatus.QUEUED: 2,
    MessageStatus.SENDING: 3,
    MessageStatus.SENT: 4,
    MessageStatus.DELIVERED: 5,
    MessageStatus.UNDELIVERED: 5,
    MessageStatus.FAILED: 5,
    MessageStatus.READ: 5,
    MessageStatus.CANCELED: 5,
    MessageStatus.BLOCKED: 5,
    MessageStatus.CANCELLED: 5,
}
MESSAGE_UNSENT = (MessageStatus.PENDING, MessageStatus.CLAIMED)
# A message that left (or may have left) for the provider.
MESSAGE_GONE_OUT = tuple(
    s
    for s in MessageStatus
    if s not in (MessageStatus.PENDING, MessageStatus.BLOCKED, MessageStatus.CANCELLED)
)


class MessageKind(StrEnum):
    """Why an outbound message exists. Campaign messages belong to a campaign and a lead;
    the others answer one inbound message (`reply_to`), at most one each."""

    CAMPAIGN = "campaign"
    AUTO_REPLY = "auto_reply"  # answered at once with TwiML (Twilio sends it)
    REPLY = "reply"  # a person approved a drafted reply; sent through the outbox
    # Opt-out and opt-in confirmations, the help text: the only messages that pass
    # suppression and quiet hours (a person just wrote to us; carriers require them).
    SERVICE = "service"
    # A workflow's send_sms step (`workflow_execution_id`), one per execution.
    FOLLOW_UP = "follow_up"


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"


class InboundStatus(StrEnum):
    """received (committed before anything else) -> processed | processing_failed (a
    sensor retries it); during a burst received -> queued (classified at the webhook,
    processed by the replies run) -> processed | processing_failed."""

    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSED = "processed"
    PROCESSING_FAILED = "processing_failed"


class Priority(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class ResponseBucket(StrEnum):
    EMAIL_CAPTURES = "email-captures"
    HOT_RESPONSES = "hot-responses"
    OBJECTIONS = "objections"
    DNC = "dnc"
    OTHER = "other"


class InboxStatus(StrEnum):
    UNREAD = "unread"
    READ = "read"
    ARCHIVED = "archived"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DeliverableStatus(StrEnum):
    """pending -> sending (committed before the SMTP call) -> sent | failed; a retryable
    refusal, or a `sending` claim older than the stale limit, goes back to pending."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class FlagAction(StrEnum):
    """A change to a phone's flags, kept in `phone_flag_events` (opt-out, re-subscribe)."""

    ADDED = "added"
    REMOVED = "removed"


class LeadStatus(StrEnum):
    """Where a person (or their CRM) says a lead stands after contact; the analytics funnel
    counts qualified, meeting and deal (each includes the stages after it)."""

    NEW = "new"
    QUALIFIED = "qualified"
    MEETING = "meeting"
    DEAL = "deal"
    LOST = "lost"


# The funnel's order after contact: a status counts for its own stage and every earlier one.
LEAD_FUNNEL = (LeadStatus.QUALIFIED, LeadStatus.MEETING, LeadStatus.DEAL)


class WorkflowAction(StrEnum):
    """What a workflow step does."""

    SEND_SMS = "send_sms"
    SEND_EMAIL = "send_email"
    CREATE_TASK = "create_task"
    MOVE_TO_BUCKET = "move_to_bucket"
    UPDATE_LEAD_SCORE = "update_lead_score"
    TAG_LEAD = "tag_lead"
    NOTIFY_TEAM = "notify_team"


class ExecutionStatus(StrEnum):
    """A workflow step for one inbox item: pending (waits for `due_at`) -> running (claimed)
    -> completed | failed; cancelled (suppressed contact, kill switch) and skipped (a
    guardrail or a condition no longer holds) always carry their reason."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


EXECUTION_OPEN = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class ApprovalStatus(StrEnum):
    """A follow-up to a contact who never consented waits for a person (`awaiting`), who
    approves it (it then runs through every other guardrail) or rejects it (cancelled)."""

    AWAITING = "awaiting"
    APPROVED = "approved"
    REJECTED = "rejected"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class NotificationStatus(StrEnum):
    """A team notification (incoming-webhook post): pending -> sending (committed before the
    POST) -> sent | failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class BudgetScope(StrEnum):
    TEAM = "team"
    CAMPAIGN = "campaign"


def sql_in(column: str, values: Iterable[StrEnum]) -> str:
    """`column IN ('a', 'b')` for CHECK constraints and partial indexes (values are ours)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def lead_open_for_enrichment(column: str = "enrichment_status") -> str:
    return f"{column} IS NULL OR {sql_in(column, ENRICHMENT_OPEN)}"
