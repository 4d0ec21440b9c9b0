"""An inbound SMS or call, from the webhook to the inbox.

`receive` routes the message by its `To` number to the team that owns the number, commits it
(unique by Twilio's SID: a retried webhook stores nothing twice and gets no second answer),
and only then processes it. Processing, in one transaction:

1. **Opt-out first**: a STOP keyword, Twilio's `OptOutType` or a clear phrasing suppresses
   the phone for the team (logged in `phone_flag_events` with the source message) and answers
   one plain confirmation; nothing else runs. START/UNSTOP/YES after an opt-out re-subscribes;
   HELP/INFO gets the team's help text.
2. **Classification** with the team's client rules; the inbox item gets its priority and
   response bucket (`inbox_rules.yaml`); an email capture creates a deliverable job.
3. **The conversation** (per team and contact phone) is updated: counts, stage, history.
4. **Answer**: a confident draft that passes every guardrail (not suppressed, inside the
   recipient's window, under the per-conversation cap, not the last text again, consent for
   a first contact, the team's SMS budget) goes out at once as TwiML; any other draft waits
   for a person as a review with its alternatives.

When processing fails the message stays stored as `processing_failed` (the webhook still
answers Twilio) and the replies sensor runs it again; answers decided then go through the
outbox (`sender.send_replies`) instead of TwiML."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from outreach_core.costs import budget
from outreach_core.db.engine import execute_autocommit, tenant_session
from outreach_core.db.states import (
    Channel,
    CostCategory,
    DeliverableStatus,
    FlagAction,
    InboundStatus,
    MessageKind,
    MessageStatus,
    PhoneFlag,
)
from outreach_core.db.tables import (
    Campaign,
    Conversation,
    DeliverableJob,
    InboundMessage,
    InboxItem,
    Lead,
    Message,
    PhoneFlagEvent,
    PhoneFlagRow,
    Review,
    Team,
)
from outreach_core.guardrails.quiet_hours import check_quiet_hours
from outreach_core.guardrails.reasons import BlockReason
from outreach_core.guardrails.rules import load_quiet_hours_rules
from outreach_core.guardrails.timezones import locate_recipient
from outreach_core.inbox.rules import load_inbox_rules
from outreach_core.leads.scoring import score_reply
from outreach_core.messaging import defaults
from outreach_core.messaging.consent import contacted_phones
from outreach_core.messaging.segments import count_segments
from outreach_core.messaging.sender import phone_flags, worst_case_price
from outreach_core.replies.classes import ReplyClass
from outreach_core.replies.classify import (
    Classification,
    classify,
    default_classifier,
    load_classification_rules,
)
from outreach_core.replies.drafts import (
    Draft,
    ServiceKind,
    draft_reply,
    load_personas,
    load_responder_templates,
    service_text,
)
from outreach_core.replies.keywords import KeywordIntent, keyword_intent, load_keyword_rules
from outreach_core.replies.llm import LlmDrafter
from outreach_core.replies.stages import ConversationSnapshot, detect_stage
from outreach_core.settings import get_settings
from outreach_core.workflows.executions import cancel_for_contact

log = logging.getLogger(__name__)

DAY = timedelta(hours=24)
# Exchanges kept in a conversation's history (the rest is in the messages themselves).
HISTORY_LENGTH = 20


class Handling:
    """What processing did with an inbound message (`inbox_items.handling`)."""

    AUTO_REPLY = "auto_reply"
    REVIEW = "review"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CALL = "call"
    SUPPRESSED = "suppressed"  # an opted-out contact wrote again: kept, never answered
    QUEUED = "queued"  # a burst: classified at the webhook, processed by the replies run


@dataclass(frozen=True)
class Inbound:
    sid: str
    channel: Channel
    from_phone: str
    to_phone: str
    body: str
    opt_out_type: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the webhook answers: `reply` is the SMS text for TwiML (None: no answer)."""

    handling: str
    inbound_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    reply: str | None = None
    forward_to: str | None = None


@dataclass(frozen=True)
class Stored:
    """An inbound message as the webhook stored it; `inbound_id` None: stored already."""

    team_id: uuid.UUID
    client: str
    inbound_id: uuid.UUID | None
    queued: bool = False


@dataclass(frozen=True)
class Classified:
    """What the webhook makes of an SMS it queues: the class for `client`'s rules."""

    client: str
    classification: ReplyClass
    confidence: int
    opt_out: bool


# The client of each number this process has seen, at most this many: only a guess, which
# the database checks (a team may change its client), so a message is classified and stored
# in one round trip.
MAX_NUMBERS = 100_000
_CLIENT_OF_NUMBER: dict[str, str] = {}


# The migrations' functions (0014), built once: the webhook calls one per request.
_STORE = text(
    "SELECT team_id, client, inbound_id, queued FROM outreach_store_inbound("
    ":id, :sid, :channel, :from_, :to, :body, :opt_out_type, :client, :class,"
    " CAST(:confidence AS smallint), :reason, :source)"
)
_QUEUE = text(
    "SELECT outreach_queue_inbound(:team, :id, :class, CAST(:confidence AS smallint),"
    " :phone, :reason, :source)"
)


def receive(
    inbound: Inbound,
    *,
    defer: bool = False,
    now: datetime | None = None,
    llm: LlmDrafter | None = None,
) -> Outcome:
    """Route and store (committed), then process; never raises for a processing failure.
    `defer` (a burst): classify and queue an SMS for the replies run instead of processing
    it here; the webhook then answers nothing itself."""
    defer = defer and inbound.channel is Channel.SMS
    guess = _CLIENT_OF_NUMBER.get(inbound.to_phone) if defer else None
    stored = store(inbound, classify_inbound(inbound, guess) if guess else None)
    if stored is None:
        # Answered, stored nowhere a team can see: the number is nobody's here.
        log.warning("inbound %s to %s: not a number of any team", inbound.sid, inbound.to_phone)
        return Outcome("unknown_number")
    if len(_CLIENT_OF_NUMBER) >= MAX_NUMBERS:
        _CLIENT_OF_NUMBER.clear()
    _CLIENT_OF_NUMBER[inbound.to_phone] = stored.client
    if stored.inbound_id is None:
        return Outcome("duplicate", team_id=stored.team_id)
    if stored.queued:
        return Outcome(Handling.QUEUED, stored.inbound_id, stored.team_id)
    if defer:
        try:
            queue(stored, inbound, classify_inbound(inbound, stored.client))
        except Exception:  # noqa: BLE001 - stored all the same: the sensor takes it later
            log.exception("inbound %s: could not queue it", stored.inbound_id)
        return Outcome(Handling.QUEUED, stored.inbound_id, stored.team_id)
    try:
        return process(stored.team_id, stored.inbound_id, inline=True, now=now, llm=llm)
    except Exception as exc:  # noqa: BLE001 - any failure: kept, retried by the sensor
        log.exception("inbound %s: processing failed", stored.inbound_id)
        mark_failed(stored.team_id, stored.inbound_id, exc)
        return Outcome("processing_failed", stored.inbound_id, stored.team_id)


def classify_inbound(inbound: Inbound, client: str) -> Classified:
    """The class of an SMS by `client`'s rules; a STOP keyword makes any text an opt-out."""
    keyword = keyword_intent(inbound.body, inbound.opt_out_type)
    result = classify(inbound.body, client, opt_out_type=inbound.opt_out_type)
    opt_out = keyword is KeywordIntent.OPT_OUT or result.id is ReplyClass.OPT_OUT
    return Classified(
        client, ReplyClass.OPT_OUT if opt_out else result.id, result.confidence, opt_out
    )


def store(inbound: Inbound, classified: Classified | None = None) -> Stored | None:
    """Route by the `To` number and commit the message before anything else, in one round
    trip; `classified` for the number's team's client: queued too. None: the number is no
    team's."""
    inbound_id = uuid.uuid4()
    rows = execute_autocommit(
        _STORE,
        {
            "id": inbound_id,
            "sid": inbound.sid,
            "channel": str(inbound.channel),
            "from_": inbound.from_phone,
            "to": inbound.to_phone,
            "body": inbound.body,
            "opt_out_type": inbound.opt_out_type,
            **_queue_params(inbound, inbound_id, classified),
        },
    )
    if not rows:
        return None
    (row,) = rows
    return Stored(row.team_id, row.client, row.inbound_id, row.queued)


def queue(stored: Stored, inbound: Inbound, classified: Classified) -> None:
    """Leave a stored message `queued` for the replies run with its class. An opt-out
    suppresses the phone now: no send may slip out before the run processes it (which
    then records the opt-out and queues its one confirmation)."""
    assert stored.inbound_id is not None
    execute_autocommit(
        _QUEUE,
        {
            "team": stored.team_id,
            "id": stored.inbound_id,
            "phone": inbound.from_phone,
            **_queue_params(inbound, stored.inbound_id, classified),
        },
    )


def _queue_params(
    inbound: Inbound, inbound_id: uuid.UUID, classified: Classified | None
) -> dict[str, object]:
    if classified is None:
        return dict.fromkeys(("client", "class", "confidence", "reason", "source"))
    return {
        "client": classified.client,
        "class": str(classified.classification),
        "confidence": classified.confidence,
        "reason": _opt_out_reason(inbound.body) if classified.opt_out else None,
        "source": _source(inbound_id, inbound.sid),
    }


def _opt_out_reason(body: str) -> str:
    return f"opted out by reply: {body[:200]!r}"


def _source(inbound_id: uuid.UUID, sid: str) -> str:
    """What a phone flag set by an inbound message names as its source."""
    return f"inbound {inbound_id} ({sid})"


def mark_failed(team_id: uuid.UUID, inbound_id: uuid.UUID, exc: BaseException) -> None:
    with tenant_session(team_id) as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(
                status=InboundStatus.PROCESSING_FAILED,
                attempts=InboundMessage.attempts + 1,
                error=f"{type(exc).__name__}: {exc}"[:1000],
            )
        )


def process(
    team_id: uuid.UUID,
    inbound_id: uuid.UUID,
    *,
    inline: bool,
    now: datetime | None = None,
    llm: LlmDrafter | None = None,
) -> Outcome:
    """Process one stored inbound message. `inline`: the webhook is waiting, so an answer
    goes back as TwiML; otherwise (a retry) it is queued in the outbox."""
    now = now or datetime.now(UTC)
    llm = llm or configured_llm()
    with tenant_session(team_id) as session:
        inbound = session.get(InboundMessage, (team_id, inbound_id), with_for_update=True)
        if inbound is None or inbound.status is InboundStatus.PROCESSED:
            return Outcome("already_processed", inbound_id, team_id)
        context = _Context.load(session, team_id, inbound, now)
        outcome = _handle(session, context, inline=inline, llm=llm)
        inbound.status = InboundStatus.PROCESSED
        inbound.processed_at = now
        inbound.attempts += 1
        inbound.error = None
    return outcome


def load_data() -> None:
    """Load every rule file and lookup table processing reads. Loaded on first use instead,
    each is read once per thread that asks before it is cached: a cold API worker's first
    burst of webhooks spent up to 7 s of CPU on that (seen under `make dev`)."""
    default_classifier()
    load_keyword_rules()
    load_inbox_rules()
    load_personas()
    load_responder_templates()
    load_quiet_hours_rules()
    # The ZIP table, the state zones and the phone metadata behind quiet hours.
    locate_recipient("10001", "NY", "+12125550100")
    configured_llm()


@cache
def configured_llm() -> LlmDrafter | None:
    """The drafter of OUTREACH_LLM_BASE_URL, once per process; None: templates only."""
    settings = get_settings()
    if not settings.llm_base_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LlmDrafter(settings.llm_base_url, key, settings.llm_model, settings.llm_timeout_s)


@dataclass
class _Context:
    inbound: InboundMessage
    team: Team
    lead: Lead | None
    campaign: Campaign | None
    conversation: Conversation
    flags: set[PhoneFlag]
    now: datetime

    @classmethod
    def load(
        cls, session: Session, team_id: uuid.UUID, inbound: InboundMessage, now: datetime
    ) -> _Context:
        team = session.get(Team, team_id)
        assert team is not None
        phone = inbound.from_phone
        # The team's own lead with this phone, never another team's (RLS and the filter).
        lead = session.scalar(
            select(Lead)
            .where(Lead.team_id == team_id, Lead.phone == phone)
            .order_by(Lead.id.desc())
            .limit(1)
        )
        flags = phone_flags(session, phone)
        return cls(
            inbound=inbound,
            team=team,
            lead=lead,
            campaign=_campaign(session, inbound),
            conversation=_conversation(session, team_id, phone),
            flags=flags,
            now=now,
        )

    @property
    def phone(self) -> str:
        return self.inbound.from_phone


def _campaign(session: Session, inbound: InboundMessage) -> Campaign | None:
    """The campaign this answers: the latest one that texted the contact from this number,
    else the latest one sending from the number."""
    messaged = (
        select(Message.campaign_id)
        .where(Message.to_phone == inbound.from_phone, Message.campaign_id.is_not(None))
        .where(Message.sending_number_id == inbound.sending_number_id)
        .order_by(Message.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    campaign = session.scalar(select(Campaign).where(Campaign.id == messaged))
    if campaign is None and inbound.sending_number_id is not None:
        campaign = session.scalar(
            select(Campaign)
            .where(Campaign.sending_number_id == inbound.sending_number_id)
            .order_by(Campaign.created_at.desc())
            .limit(1)
        )
    return campaign


def _conversation(session: Session, team_id: uuid.UUID, phone: str) -> Conversation:
    """The contact's conversation, created if new, locked: two messages from one phone are
    processed one after the other."""
    session.execute(
        insert(Conversation)
        .values(team_id=team_id, contact_phone=phone)
        .on_conflict_do_nothing(index_elements=["team_id", "contact_phone"])
    )
    conversation = session.get(Conversation, (team_id, phone), with_for_update=True)
    assert conversation is not None
    return conversation


def _handle(session: Session, ctx: _Context, *, inline: bool, llm: LlmDrafter | None) -> Outcome:
    inbound = ctx.inbound
    if inbound.channel is Channel.VOICE:
        result = classify("", ctx.team.client, is_call=True)
        _record(session, ctx, result, Handling.CALL)
        return Outcome(Handling.CALL, inbound.id, ctx.team.id, forward_to=ctx.team.voice_forward_to)
    keyword = keyword_intent(inbound.body, inbound.opt_out_type)
    result = classify(inbound.body, ctx.team.client, opt_out_type=inbound.opt_out_type)
    suppressed = _suppressed_before(session, ctx)
    if keyword is KeywordIntent.OPT_OUT or result.id is ReplyClass.OPT_OUT:
        return _opt_out(session, ctx, result, inline=inline, already=suppressed)
    if keyword is KeywordIntent.OPT_IN and suppressed:
        return _opt_in(session, ctx, result, inline=inline)
    if keyword is KeywordIntent.HELP:
        text_ = service_text(
            ServiceKind.HELP, team_name=ctx.team.name, help_text=ctx.team.help_text
        )
        _record(session, ctx, result, Handling.HELP)
        return _answer(session, ctx, text_, MessageKind.SERVICE, Handling.HELP, inline=inline)
    item = _record(session, ctx, result, Handling.SUPPRESSED if suppressed else None)
    if suppressed:
        return Outcome(Handling.SUPPRESSED, inbound.id, ctx.team.id)
    draft = _draft(ctx, result, llm)
    blocked = _why_not_automatic(session, ctx, result, draft)
    if blocked is not None:
        _review(session, ctx, item, result, draft, blocked)
        item.handling = Handling.REVIEW
        return Outcome(Handling.REVIEW, inbound.id, ctx.team.id)
    item.handling = Handling.AUTO_REPLY
    kind = MessageKind.AUTO_REPLY
    return _answer(session, ctx, draft.text, kind, Handling.AUTO_REPLY, inline=inline)


def _suppressed_before(session: Session, ctx: _Context) -> bool:
    """Whether the phone was suppressed before this message: an opt-out queued during a
    burst suppressed it at the webhook, and still gets recorded and confirmed here."""
    if PhoneFlag.SUPPRESSED not in ctx.flags:
        return False
    source = session.scalar(
        select(PhoneFlagRow.source).where(
            PhoneFlagRow.team_id == ctx.team.id,
            PhoneFlagRow.phone == ctx.phone,
            PhoneFlagRow.flag == PhoneFlag.SUPPRESSED,
        )
    )
    return source != _source(ctx.inbound.id, ctx.inbound.provider_sid)


# --------------------------------------------------------------------- inbox, history


def _record(
    session: Session, ctx: _Context, result: Classification, handling: str | None
) -> InboxItem:
    """The inbox item, the conversation's update and, for an email, the deliverable job."""
    inbound = ctx.inbound
    placement = load_inbox_rules().place(result.id, _also_interested(result, inbound.body, ctx))
    item = InboxItem(
        team_id=ctx.team.id,
        id=uuid.uuid4(),
        inbound_id=inbound.id,
        lead_id=ctx.lead.id if ctx.lead else None,
        campaign_id=ctx.campaign.id if ctx.campaign else None,
        contact_phone=ctx.phone,
        channel=inbound.channel,
        body=inbound.body,
        classification=result.id,
        classification_name=result.name,
        confidence=result.confidence,
        fields=dict(result.fields),
        priority=placement.priority,
        bucket=placement.bucket,
        handling=handling,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    session.add(item)
    session.flush()
    if ctx.lead is not None:
        # Once per inbound message, however often Twilio retries it (scoring's source).
        score_reply(session, ctx.team.id, ctx.lead.id, result.id, f"inbound {inbound.id}")
    _update_conversation(ctx, result)
    email = result.fields.get("email")
    if result.id is ReplyClass.EMAIL_CAPTURE and email:
        _deliverable(session, ctx, item, email)
    return item


def _also_interested(result: Classification, body: str, ctx: _Context) -> bool:
    """An email capture that says it is interested too ("yes! bob@x.io"): the rest of the
    message, without the address, classifies as interested."""
    email = result.fields.get("email")
    if result.id is not ReplyClass.EMAIL_CAPTURE or not email:
        return False
    rest = body.lower().replace(email, " ")
    return classify(rest, ctx.team.client).id is ReplyClass.INTERESTED


def _update_conversation(ctx: _Context, result: Classification) -> None:
    c = ctx.conversation
    lead = ctx.lead
    c.inbound_count += 1
    c.stage = str(detect_stage(_snapshot(ctx), result.id))
    c.last_intent = str(result.id)
    c.lead_id = lead.id if lead else c.lead_id
    c.campaign_id = ctx.campaign.id if ctx.campaign else c.campaign_id
    if lead is not None:
        c.first_name = lead.first_name or c.first_name
        c.company = lead.company_name or c.company
        c.property_address = lead.address or c.property_address
    c.email = result.fields.get("email") or c.email
    c.last_message_at = ctx.now
    c.last_inbound_at = ctx.now
    c.updated_at = ctx.now
    append_history(c, "inbound", ctx.inbound.body, ctx.now, str(result.id))


def append_history(
    c: Conversation, direction: str, body: str, at: datetime, intent: str | None = None
) -> None:
    entry = {"at": at.isoformat(), "direction": direction, "text": body[:500]}
    if intent:
        entry["intent"] = intent
    # A new list: JSONB columns are compared by value, and an in-place append is not seen.
    c.history = [*c.history, entry][-HISTORY_LENGTH:]


def _snapshot(ctx: _Context) -> ConversationSnapshot:
    c = ctx.conversation
    last_out = _last_outbound_at(ctx)
    return ConversationSnapshot(
        inbound_count=max(c.inbound_count, 1),
        outbound_count=c.outbound_count,
        last_intent=c.last_intent,
        stage=c.stage,  # type: ignore[arg-type]
        hours_since_last_outbound=(ctx.now - last_out).total_seconds() / 3600 if last_out else None,
        first_name=c.first_name,
        company=c.company,
        property_address=c.property_address,
        email=c.email,
    )


def _last_outbound(ctx: _Context) -> dict[str, str] | None:
    """The conversation's latest outbound exchange, from its history."""
    return next(
        (e for e in reversed(ctx.conversation.history) if e.get("direction") == "outbound"), None
    )


def _last_outbound_at(ctx: _Context) -> datetime | None:
    last = _last_outbound(ctx)
    return datetime.fromisoformat(last["at"]) if last else None


def _deliverable(session: Session, ctx: _Context, item: InboxItem, email: str) -> None:
    from outreach_core.deliverables.catalogue import deliverable_for

    deliverable = deliverable_for(ctx.team.client)
    session.add(
        DeliverableJob(
            team_id=ctx.team.id,
            id=uuid.uuid4(),
            inbox_item_id=item.id,
            client=ctx.team.client,
            deliverable=deliverable.id,
            queue=deliverable.queue,
            email=email,
            first_name=ctx.conversation.first_name,
            status=DeliverableStatus.PENDING,
        )
    )


# ------------------------------------------------------------------- opt-out, opt-in


def _opt_out(
    session: Session, ctx: _Context, result: Classification, *, inline: bool, already: bool
) -> Outcome:
    if result.id is not ReplyClass.OPT_OUT:
        # A STOP keyword outranks whatever else the text looked like.
        info = load_classification_rules().classes[ReplyClass.OPT_OUT]
        result = Classification(ReplyClass.OPT_OUT, info.name, info.priority, 100, {}, ("keyword",))
    _record(session, ctx, result, Handling.OPT_OUT)
    if already:
        return Outcome(Handling.OPT_OUT, ctx.inbound.id, ctx.team.id)
    source = _source(ctx.inbound.id, ctx.inbound.provider_sid)
    session.execute(
        insert(PhoneFlagRow)
        .values(
            team_id=ctx.team.id,
            phone=ctx.phone,
            flag=PhoneFlag.SUPPRESSED,
            reason=_opt_out_reason(ctx.inbound.body),
            source=source,
            created_at=ctx.now,
        )
        .on_conflict_do_nothing()
    )
    _flag_event(session, ctx, FlagAction.ADDED, "opted out by reply", source)
    # Follow-ups waiting for this contact stop with the opt-out (the executor checks too).
    cancel_for_contact(session, ctx.phone, f"{BlockReason.SUPPRESSED}: opted out by reply", ctx.now)
    confirmation = service_text(ServiceKind.OPT_OUT_CONFIRMATION, team_name=ctx.team.name)
    return _answer(session, ctx, confirmation, MessageKind.SERVICE, Handling.OPT_OUT, inline=inline)


def _opt_in(session: Session, ctx: _Context, result: Classification, *, inline: bool) -> Outcome:
    _record(session, ctx, result, Handling.OPT_IN)
    source = _source(ctx.inbound.id, ctx.inbound.provider_sid)
    session.execute(
        PhoneFlagRow.__table__.delete().where(
            PhoneFlagRow.team_id == ctx.team.id,
            PhoneFlagRow.phone == ctx.phone,
            PhoneFlagRow.flag == PhoneFlag.SUPPRESSED,
        )
    )
    _flag_event(session, ctx, FlagAction.REMOVED, "re-subscribed by reply", source)
    confirmation = service_text(ServiceKind.OPT_IN_CONFIRMATION, team_name=ctx.team.name)
    return _answer(session, ctx, confirmation, MessageKind.SERVICE, Handling.OPT_IN, inline=inline)


def _flag_event(
    session: Session, ctx: _Context, action: FlagAction, reason: str, source: str
) -> None:
    session.add(
        PhoneFlagEvent(
            team_id=ctx.team.id,
            phone=ctx.phone,
            flag=PhoneFlag.SUPPRESSED,
            action=action,
            reason=reason,
            source=source,
            at=ctx.now,
        )
    )


# --------------------------------------------------------------------------- answers


def _draft(ctx: _Context, result: Classification, llm: LlmDrafter | None) -> Draft:
    c = ctx.conversation
    persona = ctx.campaign.persona if ctx.campaign else defaults.CAMPAIGN_PERSONA
    fields = {"inbound_text": ctx.inbound.body}
    if result.fields.get("email"):
        fields["email"] = result.fields["email"]
    return draft_reply(
        client=ctx.team.client,
        persona=persona,
        stage=c.stage,  # type: ignore[arg-type]
        intent=str(result.id),
        snapshot=_snapshot(ctx),
        fields=fields,
        last_outbound_text=_last_outbound_text(ctx),
        llm=llm,
    )


def _last_outbound_text(ctx: _Context) -> str | None:
    last = _last_outbound(ctx)
    return str(last["text"]) if last else None


def _why_not_automatic(
    session: Session, ctx: _Context, result: Classification, draft: Draft
) -> str | None:
    """Why this draft may not go out by itself (None: it may): confidence first, then the
    same guardrails as any outbound message."""
    settings = get_settings()
    if ctx.team.automation_paused_at is not None:
        return "the team's automation is paused"
    threshold = load_classification_rules().scoring.auto_reply_threshold
    if result.confidence < threshold:
        return f"confidence {result.confidence} below {threshold}"
    quiet = check_quiet_hours(
        now_utc=ctx.now,
        zip_code=ctx.lead.zip if ctx.lead else None,
        state=ctx.lead.state if ctx.lead else None,
        phone=ctx.phone,
    )
    if not quiet.allowed:
        return f"outside the recipient's window ({quiet.reason})"
    if _auto_replies_since(session, ctx.phone, ctx.now - DAY) >= (
        settings.auto_replies_per_conversation_per_24h
    ):
        return f"{settings.auto_replies_per_conversation_per_24h} auto-replies in 24 h already"
    last = _last_outbound_text(ctx)
    if last is not None and last.strip().lower() == draft.text.strip().lower():
        return "the same text as the last message"
    if (
        ctx.team.require_consent
        and PhoneFlag.CONSENTED not in ctx.flags
        and not contacted_phones(session, [ctx.phone])
    ):
        return "no consent recorded for a first contact"
    worst = worst_case_price(count_segments(draft.text).segments)
    if not budget.room(session, ctx.team.id, CostCategory.SMS).fits(worst):
        return "the team's SMS budget has no room"
    return None


def _auto_replies_since(session: Session, phone: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.to_phone == phone, Message.kind == MessageKind.AUTO_REPLY)
            .where(Message.created_at >= since)
        )
        or 0
    )


def _review(
    session: Session,
    ctx: _Context,
    item: InboxItem,
    result: Classification,
    draft: Draft,
    reason: str,
) -> None:
    session.add(
        Review(
            team_id=ctx.team.id,
            id=uuid.uuid4(),
            inbox_item_id=item.id,
            inbound_id=ctx.inbound.id,
            contact_phone=ctx.phone,
            incoming=ctx.inbound.body,
            draft=draft.text,
            alternatives=list(draft.alternatives[:3]),
            intent=str(result.id),
            confidence=result.confidence,
            stage=str(draft.stage),
            reason=reason,
            created_at=ctx.now,
        )
    )


def _answer(
    session: Session,
    ctx: _Context,
    body: str,
    kind: MessageKind,
    handling: str,
    *,
    inline: bool,
) -> Outcome:
    """Record the answer in the outbox: handed to Twilio as TwiML now (`inline`), else
    pending for `send_replies`. At most one answer per inbound message (a unique index)."""
    segments = count_segments(body).segments
    message = Message(
        team_id=ctx.team.id,
        id=uuid.uuid4(),
        kind=kind,
        reply_to=ctx.inbound.id,
        lead_id=ctx.lead.id if ctx.lead else None,
        to_phone=ctx.phone,
        sending_number_id=ctx.inbound.sending_number_id,
        body=body,
        segments=segments,
        not_before=ctx.now,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    if inline:
        message.status = MessageStatus.SENT
        message.claimed_at = ctx.now
        message.sent_at = ctx.now
        message.attempts = 1
        # Twilio sends a TwiML answer itself and reports no price to us: book its worst case.
        budget.commit_by_id(
            session,
            ctx.team.id,
            None,
            [
                budget.LedgerEntry(
                    category=CostCategory.SMS,
                    provider=defaults.SMS_PROVIDER,
                    operation=defaults.SMS_TWIML_OPERATION,
                    units=segments,
                    unit_cost=get_settings().sms_worst_case_price_per_segment,
                    reference=f"twiml:{ctx.inbound.id}",
                )
            ],
        )
    session.add(message)
    c = ctx.conversation
    c.outbound_count += 1
    c.last_message_at = ctx.now
    append_history(c, "outbound", body, ctx.now)
    return Outcome(handling, ctx.inbound.id, ctx.team.id, reply=body if inline else None)
