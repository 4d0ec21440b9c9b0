"""inbound replies: inbound messages (committed before processing, unique by Twilio SID),
conversations per contact phone, the inbox with response buckets and their movements,
reviews of drafted replies, email deliverable jobs, the append-only log of phone flag
changes; outbound messages gain a kind (campaign, auto_reply, reply, service) and answer
one inbound message at most once; teams gain their client, help text and call forwarding

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outreach_core.db.rls import enable_tenant_rls

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The values of this revision, frozen.
_CLIENTS = ("homeowner-advisor", "nextier", "ecbb", "outreachglobal")
_CLASSES = (
    "email-capture",
    "called-phone-line",
    "opt-out",
    "interested",
    "not-interested",
    "thank-you",
    "question",
    "other",
)
_BUCKETS = ("email-captures", "hot-responses", "objections", "dnc", "other")
_KINDS = ("campaign", "auto_reply", "reply", "service")
_FLAGS = ("suppressed", "invalid", "landline", "consented")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _team_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["team_id"], ["teams.id"], name=op.f(f"fk_{table}_team_id_teams"), ondelete="CASCADE"
    )


def _item_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["team_id", "inbox_item_id"],
        ["inbox_items.team_id", "inbox_items.id"],
        name=op.f(f"fk_{table}_team_id_inbox_items"),
    )


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def upgrade() -> None:
    op.add_column(
        "teams",
        sa.Column("client", sa.String(40), server_default="outreachglobal", nullable=False),
    )
    op.create_check_constraint(op.f("ck_teams_client"), "teams", _in("client", _CLIENTS))
    op.add_column("teams", sa.Column("help_text", sa.Text(), nullable=True))
    op.add_column("teams", sa.Column("voice_forward_to", sa.String(20), nullable=True))

    op.add_column(
        "messages", sa.Column("kind", sa.String(20), server_default="campaign", nullable=False)
    )
    op.add_column("messages", sa.Column("reply_to", sa.UUID(), nullable=True))
    op.alter_column("messages", "campaign_id", nullable=True)
    op.alter_column("messages", "lead_id", nullable=True)
    op.create_check_constraint(op.f("ck_messages_kind"), "messages", _in("kind", _KINDS))
    op.create_check_constraint(
        op.f("ck_messages_kind_refs"),
        "messages",
        "(kind = 'campaign' AND campaign_id IS NOT NULL AND lead_id IS NOT NULL) "
        "OR (kind <> 'campaign' AND reply_to IS NOT NULL)",
    )
    op.create_index(
        "uq_messages_reply_to",
        "messages",
        ["team_id", "reply_to"],
        unique=True,
        postgresql_where=sa.text("reply_to IS NOT NULL"),
    )

    op.create_table(
        "phone_flag_events",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("flag", sa.String(20), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        _now("at"),
        _check("phone_flag_events", "flag", _in("flag", _FLAGS)),
        _check("phone_flag_events", "action", _in("action", ("added", "removed"))),
        _team_fk("phone_flag_events"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_phone_flag_events")),
    )
    op.create_index("ix_phone_flag_events_phone", "phone_flag_events", ["team_id", "phone", "at"])
    op.create_table(
        "inbound_messages",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("provider_sid", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("from_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("to_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("opt_out_type", sa.String(20), nullable=True),
        sa.Column("sending_number_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(20), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _now("received_at"),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        _check("inbound_messages", "channel", _in("channel", ("sms", "voice"))),
        _check(
            "inbound_messages",
            "status",
            _in("status", ("received", "processed", "processing_failed")),
        ),
        _team_fk("inbound_messages"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("provider_sid", name=op.f("uq_inbound_messages_provider_sid")),
    )
    op.create_index(
        "ix_inbound_messages_from", "inbound_messages", ["team_id", "from_phone", "received_at"]
    )
    op.create_index(
        "ix_inbound_messages_unprocessed",
        "inbound_messages",
        ["team_id", "received_at"],
        postgresql_where=sa.text("status <> 'processed'"),
    )
    op.create_table(
        "conversations",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("contact_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("inbound_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("outbound_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_intent", sa.String(40), nullable=True),
        sa.Column("stage", sa.String(40), nullable=True),
        sa.Column("history", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("property_address", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
        _now("updated_at"),
        _team_fk("conversations"),
        sa.PrimaryKeyConstraint("team_id", "contact_phone", name=op.f("pk_conversations")),
    )
    op.create_table(
        "inbox_items",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("inbound_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("contact_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(40), nullable=False),
        sa.Column("classification_name", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("fields", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("bucket", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), server_default="unread", nullable=False),
        sa.Column("handling", sa.String(40), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        _check("inbox_items", "channel", _in("channel", ("sms", "voice"))),
        _check("inbox_items", "classification", _in("classification", _CLASSES)),
        _check("inbox_items", "priority", _in("priority", ("hot", "warm", "cold"))),
        _check("inbox_items", "bucket", _in("bucket", _BUCKETS)),
        _check("inbox_items", "status", _in("status", ("unread", "read", "archived"))),
        _team_fk("inbox_items"),
        sa.ForeignKeyConstraint(
            ["team_id", "inbound_id"],
            ["inbound_messages.team_id", "inbound_messages.id"],
            name=op.f("fk_inbox_items_team_id_inbound_messages"),
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_inbox_items")),
        sa.UniqueConstraint("team_id", "inbound_id", name=op.f("uq_inbox_items_team_id")),
    )
    op.create_index("ix_inbox_items_page", "inbox_items", ["team_id", "created_at", "id"])
    op.create_table(
        "bucket_movements",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("inbox_item_id", sa.UUID(), nullable=False),
        sa.Column("from_bucket", sa.String(40), nullable=True),
        sa.Column("to_bucket", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _now("at"),
        _check("bucket_movements", "to_bucket", _in("to_bucket", _BUCKETS)),
        _item_fk("bucket_movements"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_bucket_movements")),
    )
    op.create_table(
        "reviews",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("inbox_item_id", sa.UUID(), nullable=False),
        sa.Column("inbound_id", sa.UUID(), nullable=False),
        sa.Column("contact_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("incoming", sa.Text(), nullable=False),
        sa.Column("draft", sa.Text(), nullable=False),
        sa.Column("alternatives", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("intent", sa.String(40), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(10), server_default="pending", nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.UUID(), nullable=True),
        _now("created_at"),
        _check("reviews", "status", _in("status", ("pending", "approved", "rejected"))),
        _item_fk("reviews"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("team_id", "inbox_item_id", name=op.f("uq_reviews_team_id")),
    )
    op.create_index(
        "ix_reviews_pending",
        "reviews",
        ["team_id", "created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "deliverable_jobs",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("inbox_item_id", sa.UUID(), nullable=False),
        sa.Column("client", sa.String(40), nullable=False),
        sa.Column("deliverable", sa.String(80), nullable=False),
        sa.Column("queue", sa.String(40), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("status", sa.String(10), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("email_message_id", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _check(
            "deliverable_jobs", "status", _in("status", ("pending", "sending", "sent", "failed"))
        ),
        _item_fk("deliverable_jobs"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_deliverable_jobs")),
        sa.UniqueConstraint("team_id", "inbox_item_id", name=op.f("uq_deliverable_jobs_team_id")),
    )
    op.create_index(
        "ix_deliverable_jobs_open",
        "deliverable_jobs",
        ["status", "created_at"],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )

    role = op.get_context().config.attributes["app_role"]
    tables = (
        "phone_flag_events",
        "inbound_messages",
        "conversations",
        "inbox_items",
        "bucket_movements",
        "reviews",
        "deliverable_jobs",
    )
    for table in tables:
        enable_tenant_rls(table)
    for table in (
        "inbound_messages",
        "conversations",
        "inbox_items",
        "reviews",
        "deliverable_jobs",
    ):
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
    # Append-only for the application.
    for table in ("phone_flag_events", "bucket_movements"):
        op.execute(f'GRANT SELECT, INSERT ON {table} TO "{role}"')
    # The webhook's only cross-tenant read: which team a number belongs to.
    op.execute(
        "CREATE POLICY owner_lookup ON sending_numbers FOR SELECT TO CURRENT_USER USING (true)"
    )
    # The replies sensor's: teams with inbound messages to process again, replies or
    # deliverables due.
    for table in ("inbound_messages", "deliverable_jobs"):
        op.execute(f"CREATE POLICY owner_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION outreach_number_team(p_phone text)
        RETURNS TABLE (team_id uuid, number_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT team_id, id FROM sending_numbers WHERE phone_number = p_phone
        $$
    """)
    op.execute("""
        CREATE FUNCTION outreach_replies_with_work(
            p_inbound_stale interval, p_sending_stale interval
        )
        RETURNS TABLE (team_id uuid, work text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT DISTINCT team_id, 'inbound' FROM inbound_messages
             WHERE status = 'processing_failed'
                OR (status = 'received' AND received_at < now() - p_inbound_stale)
            UNION
            SELECT DISTINCT team_id, 'reply' FROM messages
             WHERE kind IN ('reply', 'service')
               AND (status = 'claimed' OR (status = 'pending' AND not_before <= now()))
            UNION
            SELECT DISTINCT team_id, 'deliverable' FROM deliverable_jobs
             WHERE status = 'pending'
                OR (status = 'sending' AND claimed_at < now() - p_sending_stale)
        $$
    """)
    for fn in ("outreach_number_team(text)", "outreach_replies_with_work(interval, interval)"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {fn} TO "{role}"')
    op.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION outreach_replies_with_work(interval, interval)")
    op.execute("DROP FUNCTION outreach_number_team(text)")
    op.execute("DROP POLICY owner_lookup ON sending_numbers")
    for table in (
        "deliverable_jobs",
        "reviews",
        "bucket_movements",
        "inbox_items",
        "conversations",
        "inbound_messages",
        "phone_flag_events",
    ):
        op.drop_table(table)
    op.execute("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY")
    op.execute("DELETE FROM messages WHERE kind <> 'campaign'")
    op.execute("ALTER TABLE messages FORCE ROW LEVEL SECURITY")
    op.drop_index("uq_messages_reply_to", table_name="messages")
    op.drop_constraint(op.f("ck_messages_kind_refs"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_kind"), "messages", type_="check")
    op.alter_column("messages", "lead_id", nullable=False)
    op.alter_column("messages", "campaign_id", nullable=False)
    op.drop_column("messages", "reply_to")
    op.drop_column("messages", "kind")
    op.drop_column("teams", "voice_forward_to")
    op.drop_column("teams", "help_text")
    op.drop_constraint(op.f("ck_teams_client"), "teams", type_="check")
    op.drop_column("teams", "client")
