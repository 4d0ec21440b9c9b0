"""SQLAlchemy 2 typed tables. Every tenant table carries `team_id NOT NULL` and every
reference between tenant rows is composite `(team_id, id)`, so a row cannot point into
another team even if application code has a bug. RLS (see migrations) is the second lock."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outreach_core.db.states import (
    CACHE_IN_FLIGHT,
    EXECUTION_OPEN,
    ApprovalStatus,
    BudgetScope,
    CacheStatus,
    CampaignStatus,
    CampaignType,
    Channel,
    CostCategory,
    DeliverableStatus,
    EnrichmentStatus,
    ExecutionStatus,
    FlagAction,
    InboundStatus,
    InboxStatus,
    LeadStatus,
    MessageKind,
    MessageStatus,
    NotificationStatus,
    NumberStatus,
    PhoneFlag,
    Priority,
    ResponseBucket,
    ReviewStatus,
    TaskStatus,
    UploadStatus,
    WorkflowAction,
    lead_open_for_enrichment,
    sql_in,
)
from outreach_core.ingest.columns import STANDARD_COLUMNS
from outreach_core.replies.classes import Client, ReplyClass

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JSONB,
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
    }


def _now() -> Any:
    return mapped_column(server_default=func.now())


def _state(enum: type[StrEnum], length: int) -> SqlEnum:
    """A varchar holding an enum's values, read back as the enum; the table's CHECK
    constraint (built with `sql_in`) is what the database enforces."""
    return SqlEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (CheckConstraint(sql_in("client", Client), name="client"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    # Texting a phone for the first time needs its recorded consent (PhoneFlag.CONSENTED).
    require_consent: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Whose classification rules and reply templates the team's replies use.
    client: Mapped[Client] = mapped_column(
        _state(Client, 40), server_default=Client.OUTREACHGLOBAL.value
    )
    # Answer to HELP / INFO; None: a default naming the team.
    help_text: Mapped[str | None] = mapped_column(Text)
    # Inbound calls are forwarded here (E.164); None: voicemail.
    voice_forward_to: Mapped[str | None] = mapped_column(String(20))
    # The team's last lead id handed out: lead ids are numbered per team so that they reveal
    # nothing about other teams (outreach_core.leads.ids).
    last_lead_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The team's kill switch: while set, no campaign send, follow-up or auto-reply goes out
    # (opt-out confirmations and HELP answers still do).
    automation_paused_at: Mapped[datetime | None]
    automation_paused_by: Mapped[str | None] = mapped_column(String(120))
    automation_paused_reason: Mapped[str | None] = mapped_column(Text)
    # A Slack-compatible incoming-webhook URL for team notifications; None: recorded only.
    notify_webhook_url: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("key_hash"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="default")
    # First characters only, so an operator can tell keys apart without the secret.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None]


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("team_id", "idempotency_key"),
        Index("ix_uploads_status", "status", "team_id", "sector"),
        CheckConstraint(sql_in("status", UploadStatus), name="status"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bucket_id: Mapped[str] = mapped_column(String(120))
    sector: Mapped[str] = mapped_column(String(60))
    filename: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # Bumped by `outreach retry`: each attempt is a new run key for the upload sensor.
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[UploadStatus] = mapped_column(
        _state(UploadStatus, 20), server_default=UploadStatus.RECEIVED.value
    )
    error: Mapped[str | None] = mapped_column(Text)
    total_rows: Mapped[int | None] = mapped_column(BigInteger)
    accepted_rows: Mapped[int | None] = mapped_column(BigInteger)
    rejected_rows: Mapped[int | None] = mapped_column(BigInteger)
    # Duplicates inside the file plus rows merged into leads the team already had.
    merged_rows: Mapped[int | None] = mapped_column(BigInteger)
    inserted_leads: Mapped[int | None] = mapped_column(BigInteger)
    top_rejection_reasons: Mapped[dict[str, Any] | None]
    run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    # Landed, or last put back in the queue (`outreach retry`, the watchdog).
    queued_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None]
    # Renewed by the run processing the upload; a stale one means the run is gone.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class UploadRejection(Base):
    __tablename__ = "upload_rejections"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "upload_id"], ["uploads.team_id", "uploads.id"], ondelete="CASCADE"
        ),
        Index("ix_upload_rejections_upload", "team_id", "upload_id", "row_number"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    upload_id: Mapped[uuid.UUID]
    row_number: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)


# The lead's own fields are exactly the standard columns every upload is mapped to.
LEAD_TEXT_FIELDS: tuple[str, ...] = STANDARD_COLUMNS


# Leads an enrichment run still has to look at; the other statuses are settled.
LEAD_OPEN_FOR_ENRICHMENT = lead_open_for_enrichment()


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["team_id", "source_upload_id"], ["uploads.team_id", "uploads.id"]),
        CheckConstraint(sql_in("enrichment_status", EnrichmentStatus), name="enrichment_status"),
        CheckConstraint(sql_in("status", LeadStatus), name="status"),
        # Dedup keys: one lead per E.164 phone, then per email, inside a team.
        Index(
            "uq_leads_team_phone",
            "team_id",
            "phone",
            unique=True,
            postgresql_where=text("phone IS NOT NULL"),
        ),
        Index(
            "uq_leads_team_email",
            "team_id",
            "email",
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
        ),
        Index("ix_leads_team_bucket", "team_id", "bucket_id", "id"),
        Index(
            "ix_leads_team_sector_to_enrich",
            "team_id",
            "sector",
            "id",
            postgresql_where=text(LEAD_OPEN_FOR_ENRICHMENT),
        ),
        Index(
            "ix_leads_team_enrichment_key",
            "team_id",
            "enrichment_key",
            postgresql_where=text("enrichment_key IS NOT NULL"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Per team, from Team.last_lead_id (outreach_core.leads.ids): no default, on purpose.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    contact_name: Mapped[str | None] = mapped_column(Text)
    # Byte-order collation: dedup keys only need equality, and it makes their indexes cheaper.
    email: Mapped[str | None] = mapped_column(Text(collation="C"))
    phone: Mapped[str | None] = mapped_column(String(20, collation="C"))
    company_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    linkedin_url: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    county: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(2))
    zip: Mapped[str | None] = mapped_column(String(5))
    sic_code: Mapped[str | None] = mapped_column(String(8))
    bucket_id: Mapped[str | None] = mapped_column(String(120))
    sector: Mapped[str | None] = mapped_column(String(60))
    apollo_person_id: Mapped[str | None] = mapped_column(String(64))
    apollo_organization_id: Mapped[str | None] = mapped_column(String(64))
    enrichment_status: Mapped[EnrichmentStatus | None] = mapped_column(_state(EnrichmentStatus, 30))
    enriched_at: Mapped[datetime | None]
    apollo_data: Mapped[dict[str, Any] | None]
    # The dedup cache key of this lead's identifiers, set when a run first claims it.
    enrichment_key: Mapped[str | None] = mapped_column(Text)
    enrichment_error: Mapped[str | None] = mapped_column(Text)
    # Person and organisation as Apollo returned them (the full record is apollo_data).
    seniority: Mapped[str | None] = mapped_column(Text)
    departments: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    apollo_email: Mapped[str | None] = mapped_column(Text)
    email_status: Mapped[str | None] = mapped_column(Text)
    mobile_phones: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    organization_name: Mapped[str | None] = mapped_column(Text)
    organization_website: Mapped[str | None] = mapped_column(Text)
    founded_year: Mapped[int | None] = mapped_column(Integer)
    employee_count: Mapped[int | None] = mapped_column(Integer)
    industry: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    organization_location: Mapped[str | None] = mapped_column(Text)
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    technologies: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # Derived (outreach_core.enrich.derive).
    revenue_tier: Mapped[str | None] = mapped_column(String(20))
    years_in_business: Mapped[int | None] = mapped_column(Integer)
    has_verified_email: Mapped[bool | None]
    has_linkedin: Mapped[bool | None]
    is_owner_or_c_level: Mapped[bool | None]
    is_main_street: Mapped[bool | None]
    is_established: Mapped[bool | None]
    # No default: ingestion writes the base from the scoring rules (enrich/scoring.yaml);
    # every later change is a lead_score_events row (outreach_core.leads.scoring).
    score: Mapped[int] = mapped_column(Integer)
    status: Mapped[LeadStatus] = mapped_column(
        _state(LeadStatus, 30), server_default=LeadStatus.NEW.value
    )
    source: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    source_upload_id: Mapped[uuid.UUID | None]
    last_upload_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class BucketIndex(Base):
    """Per-bucket counts, the database twin of the datalake's index.json."""

    __tablename__ = "bucket_index"
    __table_args__ = (ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),)

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bucket_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    sector: Mapped[str] = mapped_column(String(60))
    index: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = _now()


# ------------------------------------------------------------------ enrichment cost control


class ProviderRateWindow(Base):
    """Provider-wide fixed-window request counters (not tenant data: every team shares the
    provider's limits). One row per provider, window kind and UTC-aligned window start."""

    __tablename__ = "provider_rate_windows"
    __table_args__ = (CheckConstraint("\"window\" IN ('minute', 'hour', 'day')", name="window"),)

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    window: Mapped[str] = mapped_column(String(10), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(Integer, server_default="0")


class ProviderPause(Base):
    """Set after a 429: no process sends to `provider` before `until`."""

    __tablename__ = "provider_pauses"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    until: Mapped[datetime]


class ProviderPacing(Base):
    """The next free send time when a provider's requests are spaced evenly."""

    __tablename__ = "provider_pacing"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_at: Mapped[datetime]


class CostLedger(Base):
    """What was really spent: one row per paid call (or per priced message attempt)."""

    __tablename__ = "cost_ledger"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["team_id", "upload_id"], ["uploads.team_id", "uploads.id"]),
        ForeignKeyConstraint(["team_id", "campaign_id"], ["campaigns.team_id", "campaigns.id"]),
        CheckConstraint("units >= 0 AND amount >= 0", name="non_negative"),
        CheckConstraint(sql_in("category", CostCategory), name="category"),
        Index("ix_cost_ledger_team_time", "team_id", "created_at"),
        Index(
            "ix_cost_ledger_campaign",
            "team_id",
            "campaign_id",
            postgresql_where=text("campaign_id IS NOT NULL"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    category: Mapped[CostCategory] = mapped_column(_state(CostCategory, 20))
    provider: Mapped[str] = mapped_column(String(40))
    operation: Mapped[str] = mapped_column(String(60))
    units: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    upload_id: Mapped[uuid.UUID | None]
    campaign_id: Mapped[uuid.UUID | None]
    reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class TeamBudget(Base):
    """A team's monthly caps (UTC months): one per cost category and one on the total;
    NULL is no cap. The row is also the lock that serialises the team's reservations."""

    __tablename__ = "team_budgets"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        CheckConstraint("enrichment_monthly_cap >= 0", name="cap_non_negative"),
        CheckConstraint(
            "sms_monthly_cap >= 0 AND voice_monthly_cap >= 0 AND email_monthly_cap >= 0 "
            "AND total_monthly_cap >= 0",
            name="caps_non_negative",
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # One column per CostCategory, named `<category>_monthly_cap` (outreach_core.costs).
    enrichment_monthly_cap: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    sms_monthly_cap: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    voice_monthly_cap: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    email_monthly_cap: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    total_monthly_cap: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    updated_at: Mapped[datetime] = _now()


class BudgetReservation(Base):
    """Money set aside before a paid call (a worst case), replaced by the ledger row of
    what the call cost; a crashed run's reservations stop counting after `expires_at`."""

    __tablename__ = "budget_reservations"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        CheckConstraint("amount >= 0", name="non_negative"),
        CheckConstraint(sql_in("category", CostCategory), name="category"),
        Index("ix_budget_reservations_team_expiry", "team_id", "expires_at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    category: Mapped[CostCategory] = mapped_column(_state(CostCategory, 20))
    provider: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    # Counts against this campaign's budget too (no FK: a reservation is short-lived).
    campaign_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]


class EnrichmentCache(Base):
    """One row per person identity per team: a claim while a run is asking the provider
    (`pending`), then the answer (`matched` / `no_match`) until `expires_at`."""

    __tablename__ = "enrichment_cache"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        CheckConstraint(sql_in("status", CacheStatus), name="status"),
        Index(
            "ix_enrichment_cache_in_flight",
            "team_id",
            "claimed_at",
            postgresql_where=text(sql_in("status", CACHE_IN_FLIGHT)),
        ),
        Index(
            "ix_enrichment_cache_person",
            "team_id",
            "apollo_person_id",
            postgresql_where=text("apollo_person_id IS NOT NULL"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    identity_key: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[CacheStatus] = mapped_column(_state(CacheStatus, 20))
    apollo_person_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None]
    credits: Mapped[int] = mapped_column(Integer, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # While `sent`: the budget reservation covering the request in flight.
    reservation_id: Mapped[uuid.UUID | None]


class SendingNumber(Base):
    """A phone number a team sends from: bought through Twilio for the team (or configured),
    never shared: a number belongs to one team only."""

    __tablename__ = "sending_numbers"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("phone_number"),
        CheckConstraint(sql_in("status", NumberStatus), name="status"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(20))
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[NumberStatus] = mapped_column(
        _state(NumberStatus, 20), server_default=NumberStatus.ACTIVE.value
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Campaign(Base):
    """A campaign is a row: it survives restarts, and every change of its status is in
    `campaign_events`."""

    __tablename__ = "campaigns"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["team_id", "sending_number_id"], ["sending_numbers.team_id", "sending_numbers.id"]
        ),
        CheckConstraint(sql_in("status", CampaignStatus), name="status"),
        CheckConstraint(sql_in("type", CampaignType), name="type"),
        CheckConstraint("daily_limit > 0", name="daily_limit_positive"),
        CheckConstraint("budget IS NULL OR budget >= 0", name="budget_non_negative"),
        Index("ix_campaigns_status", "status", "team_id"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[CampaignType] = mapped_column(_state(CampaignType, 10))
    status: Mapped[CampaignStatus] = mapped_column(
        _state(CampaignStatus, 20), server_default=CampaignStatus.DRAFT.value
    )
    # Why it is in its status, when something other than a person put it there.
    status_reason: Mapped[str | None] = mapped_column(Text)
    selection: Mapped[dict[str, Any]]
    template: Mapped[str] = mapped_column(Text)
    schedule_start: Mapped[datetime | None]
    daily_limit: Mapped[int] = mapped_column(Integer)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    persona: Mapped[str] = mapped_column(String(80))
    sending_number_id: Mapped[uuid.UUID | None]
    messaging_service_sid: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class CampaignEvent(Base):
    """The campaign's audit log, append-only (the application role may only insert and
    read it): who or what did what, when and why."""

    __tablename__ = "campaign_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "campaign_id"], ["campaigns.team_id", "campaigns.id"], ondelete="CASCADE"
        ),
        Index("ix_campaign_events_campaign", "team_id", "campaign_id", "id"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]


class PhoneFlagRow(Base):
    """A phone the team must not (or cannot) text, why, and since when. Suppression is the
    team's list plus every opt-out any of its numbers received."""

    __tablename__ = "phone_flags"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        CheckConstraint(sql_in("flag", PhoneFlag), name="flag"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20, collation="C"), primary_key=True)
    flag: Mapped[PhoneFlag] = mapped_column(_state(PhoneFlag, 20), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    # The message that told us (an inbound STOP, a provider error on one of ours).
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Message(Base):
    """The outbox: one row per (campaign, lead, step), committed before the provider is
    called, so a crash can never make a second one."""

    __tablename__ = "messages"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "campaign_id"], ["campaigns.team_id", "campaigns.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["team_id", "lead_id"], ["leads.team_id", "leads.id"]),
        ForeignKeyConstraint(
            ["team_id", "sending_number_id"], ["sending_numbers.team_id", "sending_numbers.id"]
        ),
        UniqueConstraint("team_id", "campaign_id", "lead_id", "step"),
        UniqueConstraint("provider_sid"),
        CheckConstraint(sql_in("status", MessageStatus), name="status"),
        CheckConstraint(sql_in("kind", MessageKind), name="kind"),
        CheckConstraint(
            f"(kind = '{MessageKind.CAMPAIGN}' AND campaign_id IS NOT NULL "
            "AND lead_id IS NOT NULL) OR ("
            + sql_in("kind", (MessageKind.AUTO_REPLY, MessageKind.REPLY, MessageKind.SERVICE))
            + f" AND reply_to IS NOT NULL) OR (kind = '{MessageKind.FOLLOW_UP}' "
            "AND workflow_execution_id IS NOT NULL)",
            name="kind_refs",
        ),
        # One answer per inbound message, however often Twilio retries the webhook.
        Index(
            "uq_messages_reply_to",
            "team_id",
            "reply_to",
            unique=True,
            postgresql_where=text("reply_to IS NOT NULL"),
        ),
        # One follow-up message per workflow execution.
        Index(
            "uq_messages_workflow_execution",
            "team_id",
            "workflow_execution_id",
            unique=True,
            postgresql_where=text("workflow_execution_id IS NOT NULL"),
        ),
        # In the claim's order (migration 0015): a batch reads its rows, no sort of them all.
        Index(
            "ix_messages_due", "team_id", "campaign_id", "status", "not_before", "lead_id", "step"
        ),
        Index("ix_messages_to_phone", "team_id", "to_phone", "created_at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[MessageKind] = mapped_column(
        _state(MessageKind, 20), server_default=MessageKind.CAMPAIGN.value
    )
    campaign_id: Mapped[uuid.UUID | None]
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    # The inbound message this answers (auto_reply, reply, service).
    reply_to: Mapped[uuid.UUID | None]
    # The workflow step that sent it (follow_up).
    workflow_execution_id: Mapped[uuid.UUID | None]
    step: Mapped[int] = mapped_column(Integer, server_default="0")
    to_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    sending_number_id: Mapped[uuid.UUID | None]
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    status: Mapped[MessageStatus] = mapped_column(
        _state(MessageStatus, 20), server_default=MessageStatus.PENDING.value
    )
    # Not sent before this time (the schedule, or the next window after quiet hours).
    not_before: Mapped[datetime] = _now()
    # The last guardrail that held it back (rescheduled), or that blocked it for good.
    block_reason: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    price_unit: Mapped[str | None] = mapped_column(String(3))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # The budget reservation of its worst-case price while it is claimed or waiting for
    # its price (outreach_core.costs).
    reservation_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class PhoneFlagEvent(Base):
    """Append-only: every opt-out, re-subscribe and consent change, with its source."""

    __tablename__ = "phone_flag_events"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        CheckConstraint(sql_in("flag", PhoneFlag), name="flag"),
        CheckConstraint(sql_in("action", FlagAction), name="action"),
        Index("ix_phone_flag_events_phone", "team_id", "phone", "at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20, collation="C"))
    flag: Mapped[PhoneFlag] = mapped_column(_state(PhoneFlag, 20))
    action: Mapped[FlagAction] = mapped_column(_state(FlagAction, 10))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _now()


class InboundMessage(Base):
    """An inbound SMS or call, committed before any processing; unique by Twilio's SID, so
    the webhook's retries store it once."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("provider_sid"),
        CheckConstraint(sql_in("channel", Channel), name="channel"),
        CheckConstraint(sql_in("status", InboundStatus), name="status"),
        CheckConstraint(sql_in("classification", ReplyClass), name="classification"),
        Index("ix_inbound_messages_from", "team_id", "from_phone", "received_at"),
        Index(
            "ix_inbound_messages_unprocessed",
            "team_id",
            "received_at",
            postgresql_where=text(f"status <> '{InboundStatus.PROCESSED}'"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(_state(Channel, 10))
    from_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    to_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    body: Mapped[str] = mapped_column(Text)
    # Twilio's OptOutType (STOP, START, HELP) when Advanced Opt-Out posted one.
    opt_out_type: Mapped[str | None] = mapped_column(String(20))
    sending_number_id: Mapped[uuid.UUID | None]
    status: Mapped[InboundStatus] = mapped_column(
        _state(InboundStatus, 20), server_default=InboundStatus.RECEIVED.value
    )
    # Set by the webhook when it leaves processing to the replies run (`queued`).
    classification: Mapped[ReplyClass | None] = mapped_column(_state(ReplyClass, 40))
    confidence: Mapped[int | None] = mapped_column(SmallInteger)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = _now()
    processed_at: Mapped[datetime | None]


class Conversation(Base):
    """What we know of the exchange with one contact phone, per team: kept in PostgreSQL,
    so a restart loses no context."""

    __tablename__ = "conversations"
    __table_args__ = (ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),)

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_phone: Mapped[str] = mapped_column(String(20, collation="C"), primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign_id: Mapped[uuid.UUID | None]
    inbound_count: Mapped[int] = mapped_column(Integer, server_default="0")
    outbound_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_intent: Mapped[str | None] = mapped_column(String(40))
    stage: Mapped[str | None] = mapped_column(String(40))
    # The latest exchanges, newest last: [{"at", "direction", "text", "intent"}].
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    first_name: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    property_address: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    last_message_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = _now()


class InboxItem(Base):
    """One per inbound message: classified, prioritised, in one of the team's response
    buckets."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["team_id", "inbound_id"], ["inbound_messages.team_id", "inbound_messages.id"]
        ),
        UniqueConstraint("team_id", "inbound_id"),
        CheckConstraint(sql_in("channel", Channel), name="channel"),
        CheckConstraint(sql_in("classification", ReplyClass), name="classification"),
        CheckConstraint(sql_in("priority", Priority), name="priority"),
        CheckConstraint(sql_in("bucket", ResponseBucket), name="bucket"),
        CheckConstraint(sql_in("status", InboxStatus), name="status"),
        Index("ix_inbox_items_page", "team_id", "created_at", "id"),
        # A contact's items, newest last: the workflows follow up only the latest one.
        Index("ix_inbox_items_contact", "team_id", "contact_phone", "created_at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    inbound_id: Mapped[uuid.UUID]
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign_id: Mapped[uuid.UUID | None]
    contact_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    channel: Mapped[Channel] = mapped_column(_state(Channel, 10))
    body: Mapped[str] = mapped_column(Text)
    classification: Mapped[ReplyClass] = mapped_column(_state(ReplyClass, 40))
    classification_name: Mapped[str] = mapped_column(Text)
    confidence: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    priority: Mapped[Priority] = mapped_column(_state(Priority, 10))
    bucket: Mapped[ResponseBucket] = mapped_column(_state(ResponseBucket, 40))
    status: Mapped[InboxStatus] = mapped_column(
        _state(InboxStatus, 10), server_default=InboxStatus.UNREAD.value
    )
    # What happened automatically: "auto_reply", "review", "opt_out", "opt_in", "help", ...
    handling: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class BucketMovement(Base):
    """Append-only: an inbox item moved between response buckets, by whom and why."""

    __tablename__ = "bucket_movements"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "inbox_item_id"], ["inbox_items.team_id", "inbox_items.id"]
        ),
        CheckConstraint(sql_in("to_bucket", ResponseBucket), name="to_bucket"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inbox_item_id: Mapped[uuid.UUID]
    from_bucket: Mapped[str | None] = mapped_column(String(40))
    to_bucket: Mapped[ResponseBucket] = mapped_column(_state(ResponseBucket, 40))
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _now()


class Review(Base):
    """A drafted reply waiting for a person: approve (optionally edited, or an alternative)
    sends it through the guardrails and the outbox; reject drops it."""

    __tablename__ = "reviews"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "inbox_item_id"], ["inbox_items.team_id", "inbox_items.id"]
        ),
        UniqueConstraint("team_id", "inbox_item_id"),
        CheckConstraint(sql_in("status", ReviewStatus), name="status"),
        Index(
            "ix_reviews_pending",
            "team_id",
            "created_at",
            postgresql_where=text(f"status = '{ReviewStatus.PENDING}'"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    inbox_item_id: Mapped[uuid.UUID]
    inbound_id: Mapped[uuid.UUID]
    contact_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    incoming: Mapped[str] = mapped_column(Text)
    draft: Mapped[str] = mapped_column(Text)
    alternatives: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    intent: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(40))
    # Why it was not answered automatically (low confidence, quiet hours, ...).
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[ReviewStatus] = mapped_column(
        _state(ReviewStatus, 10), server_default=ReviewStatus.PENDING.value
    )
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    message_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()


class DeliverableJob(Base):
    """An email capture's deliverable, emailed once by a sensor."""

    __tablename__ = "deliverable_jobs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "inbox_item_id"], ["inbox_items.team_id", "inbox_items.id"]
        ),
        UniqueConstraint("team_id", "inbox_item_id"),
        CheckConstraint(sql_in("status", DeliverableStatus), name="status"),
        Index(
            "ix_deliverable_jobs_open",
            "status",
            "created_at",
            postgresql_where=text(
                f"status IN ('{DeliverableStatus.PENDING}', '{DeliverableStatus.SENDING}')"
            ),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    inbox_item_id: Mapped[uuid.UUID]
    client: Mapped[str] = mapped_column(String(40))
    deliverable: Mapped[str] = mapped_column(String(80))
    queue: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[DeliverableStatus] = mapped_column(
        _state(DeliverableStatus, 10), server_default=DeliverableStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    email_message_id: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class Workflow(Base):
    """A team's follow-up workflow: a trigger and its steps, loaded from YAML
    (`outreach workflows apply`) or the defaults; `enabled` is its kill switch."""

    __tablename__ = "workflows"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("team_id", "name"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    trigger: Mapped[dict[str, Any]]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # Where it was loaded from: a file path, or "defaults".
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class WorkflowExecution(Base):
    """One step of a workflow for one inbox item. Unique per (workflow, item, step), so
    overlapping sensor ticks never make two."""

    __tablename__ = "workflow_executions"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["team_id", "workflow_id"], ["workflows.team_id", "workflows.id"]),
        ForeignKeyConstraint(
            ["team_id", "inbox_item_id"], ["inbox_items.team_id", "inbox_items.id"]
        ),
        UniqueConstraint("team_id", "workflow_id", "inbox_item_id", "step"),
        CheckConstraint(sql_in("action", WorkflowAction), name="action"),
        CheckConstraint(sql_in("status", ExecutionStatus), name="status"),
        CheckConstraint(sql_in("approval", ApprovalStatus), name="approval"),
        Index(
            "ix_workflow_executions_due",
            "status",
            "due_at",
            postgresql_where=text(sql_in("status", EXECUTION_OPEN)),
        ),
        Index("ix_workflow_executions_contact", "team_id", "contact_phone", "status"),
        # A team's next pending execution, soonest first (migration 0012).
        Index(
            "ix_workflow_executions_team_due",
            "team_id",
            "due_at",
            "step",
            postgresql_where=text(f"status = '{ExecutionStatus.PENDING}'"),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workflow_id: Mapped[uuid.UUID]
    inbox_item_id: Mapped[uuid.UUID]
    step: Mapped[int] = mapped_column(Integer)
    action: Mapped[WorkflowAction] = mapped_column(_state(WorkflowAction, 30))
    status: Mapped[ExecutionStatus] = mapped_column(
        _state(ExecutionStatus, 20), server_default=ExecutionStatus.PENDING.value
    )
    due_at: Mapped[datetime]
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_phone: Mapped[str] = mapped_column(String(20, collation="C"))
    # Why it was skipped, cancelled, rescheduled or failed.
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any] | None]
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # None: no approval needed (yet); set when the contact never consented (migration 0012).
    approval: Mapped[ApprovalStatus | None] = mapped_column(_state(ApprovalStatus, 10))
    approval_by: Mapped[str | None] = mapped_column(String(120))
    approval_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Task(Base):
    """Work for a person (a workflow's create_task step, a hot lead to call)."""

    __tablename__ = "tasks"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("team_id", "workflow_execution_id"),
        CheckConstraint(sql_in("priority", Priority), name="priority"),
        CheckConstraint(sql_in("status", TaskStatus), name="status"),
        Index("ix_tasks_open", "team_id", "status", "created_at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[Priority] = mapped_column(_state(Priority, 10))
    status: Mapped[TaskStatus] = mapped_column(
        _state(TaskStatus, 10), server_default=TaskStatus.OPEN.value
    )
    inbox_item_id: Mapped[uuid.UUID | None]
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_phone: Mapped[str | None] = mapped_column(String(20, collation="C"))
    workflow_execution_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(120))


class TeamNotification(Base):
    """An outbox of posts to the team's incoming-webhook URL; `dedupe_key` makes each
    notification (one budget alert, one execution's step) at most one row."""

    __tablename__ = "team_notifications"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("team_id", "dedupe_key"),
        CheckConstraint(sql_in("status", NotificationStatus), name="status"),
        Index(
            "ix_team_notifications_open",
            "status",
            "created_at",
            postgresql_where=text(
                sql_in("status", (NotificationStatus.PENDING, NotificationStatus.SENDING))
            ),
        ),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    dedupe_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[NotificationStatus] = mapped_column(
        _state(NotificationStatus, 10), server_default=NotificationStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    # After a retryable failure, a pending row waits until then.
    next_attempt_at: Mapped[datetime | None]


class LeadScoreEvent(Base):
    """Append-only: every change of a lead's score, the event that made it, the delta and
    the new score."""

    __tablename__ = "lead_score_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["team_id", "lead_id"], ["leads.team_id", "leads.id"], ondelete="CASCADE"
        ),
        Index("ix_lead_score_events_lead", "team_id", "lead_id", "id"),
        # One cause scores once: a retried webhook or execution finds its row there.
        UniqueConstraint("team_id", "lead_id", "event", "source"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    lead_id: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(40))
    delta: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(Integer)
    # What caused it: an inbox item, an enrichment, a workflow execution.
    source: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _now()


class BudgetAlert(Base):
    """Append-only: a budget crossed a threshold (80%, 100%); one row per subject and
    threshold, so the team is told once."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        UniqueConstraint("team_id", "subject", "threshold_pct"),
        CheckConstraint(sql_in("scope", BudgetScope), name="scope"),
        CheckConstraint("threshold_pct BETWEEN 1 AND 100", name="threshold_pct"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    scope: Mapped[BudgetScope] = mapped_column(_state(BudgetScope, 10))
    campaign_id: Mapped[uuid.UUID | None]
    # What the cap is on: "campaign:<id>", "team:<category or total>:<YYYY-MM>".
    subject: Mapped[str] = mapped_column(Text)
    threshold_pct: Mapped[int] = mapped_column(Integer)
    spent: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    cap: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    at: Mapped[datetime] = _now()


# Last, so that it sees every table above.
TENANT_TABLES: tuple[str, ...] = tuple(
    t.name for t in Base.metadata.sorted_tables if "team_id" in t.columns
)
