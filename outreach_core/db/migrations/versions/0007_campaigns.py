"""campaigns: sending numbers (one team each), campaigns as rows with a status machine,
their append-only audit log, phone flags (suppressed, invalid, landline) and the outbox of
messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outreach_core.db.rls import enable_tenant_rls
from outreach_core.db.states import (
    CampaignStatus,
    CampaignType,
    MessageStatus,
    NumberStatus,
    sql_in,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _team_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["team_id"], ["teams.id"], name=op.f(f"fk_{table}_team_id_teams"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "sending_numbers",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("phone_number", sa.String(20), nullable=False),
        sa.Column("provider_sid", sa.String(64), nullable=True),
        sa.Column(
            "status", sa.String(20), server_default=NumberStatus.ACTIVE.value, nullable=False
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        _now("created_at"),
        sa.CheckConstraint(sql_in("status", NumberStatus), name=op.f("ck_sending_numbers_status")),
        _team_fk("sending_numbers"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_sending_numbers")),
        # Global, not per team: a number is never shared across teams.
        sa.UniqueConstraint("phone_number", name=op.f("uq_sending_numbers_phone_number")),
    )
    op.create_table(
        "campaigns",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column(
            "status", sa.String(20), server_default=CampaignStatus.DRAFT.value, nullable=False
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("selection", postgresql.JSONB(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("schedule_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("budget", sa.Numeric(12, 2), nullable=True),
        sa.Column("persona", sa.String(80), nullable=False),
        sa.Column("sending_number_id", sa.UUID(), nullable=True),
        sa.Column("messaging_service_sid", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint(sql_in("status", CampaignStatus), name=op.f("ck_campaigns_status")),
        sa.CheckConstraint(sql_in("type", CampaignType), name=op.f("ck_campaigns_type")),
        sa.CheckConstraint("daily_limit > 0", name=op.f("ck_campaigns_daily_limit_positive")),
        sa.CheckConstraint(
            "budget IS NULL OR budget >= 0", name=op.f("ck_campaigns_budget_non_negative")
        ),
        _team_fk("campaigns"),
        sa.ForeignKeyConstraint(
            ["team_id", "sending_number_id"],
            ["sending_numbers.team_id", "sending_numbers.id"],
            name=op.f("fk_campaigns_team_id_sending_numbers"),
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_status", "campaigns", ["status", "team_id"])
    op.create_table(
        "campaign_events",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        _now("at"),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id", "campaign_id"],
            ["campaigns.team_id", "campaigns.id"],
            name=op.f("fk_campaign_events_team_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_campaign_events")),
    )
    op.create_index(
        "ix_campaign_events_campaign", "campaign_events", ["team_id", "campaign_id", "id"]
    )
    op.create_table(
        "phone_flags",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("flag", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        _now("created_at"),
        # The flags of this revision, frozen: 0008 adds `consented`.
        sa.CheckConstraint(
            "flag IN ('suppressed', 'invalid', 'landline')", name=op.f("ck_phone_flags_flag")
        ),
        _team_fk("phone_flags"),
        sa.PrimaryKeyConstraint("team_id", "phone", "flag", name=op.f("pk_phone_flags")),
    )
    op.create_table(
        "messages",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("to_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("sending_number_id", sa.UUID(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.String(20), server_default=MessageStatus.PENDING.value, nullable=False
        ),
        _now("not_before"),
        sa.Column("block_reason", sa.String(40), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("provider_sid", sa.String(64), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("price", sa.Numeric(12, 5), nullable=True),
        sa.Column("price_unit", sa.String(3), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint(sql_in("status", MessageStatus), name=op.f("ck_messages_status")),
        sa.ForeignKeyConstraint(
            ["team_id", "campaign_id"],
            ["campaigns.team_id", "campaigns.id"],
            name=op.f("fk_messages_team_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id", "lead_id"],
            ["leads.team_id", "leads.id"],
            name=op.f("fk_messages_team_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id", "sending_number_id"],
            ["sending_numbers.team_id", "sending_numbers.id"],
            name=op.f("fk_messages_team_id_sending_numbers"),
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "team_id", "campaign_id", "lead_id", "step", name=op.f("uq_messages_team_id")
        ),
        sa.UniqueConstraint("provider_sid", name=op.f("uq_messages_provider_sid")),
    )
    op.create_index(
        "ix_messages_due", "messages", ["team_id", "campaign_id", "status", "not_before"]
    )
    op.create_index("ix_messages_to_phone", "messages", ["team_id", "to_phone", "created_at"])
    role = op.get_context().config.attributes["app_role"]
    tables = ("sending_numbers", "campaigns", "campaign_events", "phone_flags", "messages")
    for table in tables:
        enable_tenant_rls(table)
    for table in ("sending_numbers", "campaigns", "phone_flags", "messages"):
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
    # The send sensor's and the status webhook's only cross-tenant reads (see 0001 for why
    # the owner needs a read policy of its own): which campaigns have work, and which team a
    # message belongs to.
    for table in ("campaigns", "messages"):
        op.execute(f"CREATE POLICY owner_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    unsent = f"""
        SELECT 1 FROM messages m WHERE m.team_id = c.team_id AND m.campaign_id = c.id
          AND m.status IN ('{MessageStatus.PENDING}', '{MessageStatus.CLAIMED}')"""
    due = f"""
        SELECT 1 FROM messages m WHERE m.team_id = c.team_id AND m.campaign_id = c.id
          AND (m.status = '{MessageStatus.CLAIMED}'
               OR (m.status = '{MessageStatus.PENDING}' AND m.not_before <= now()))"""
    # 'start' a scheduled campaign whose time has come, 'send' an active one with messages
    # due (or claims to recover), 'complete' an active one with nothing left to send.
    op.execute(f"""
        CREATE FUNCTION outreach_campaigns_with_work()
        RETURNS TABLE (team_id uuid, campaign_id uuid, work text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT c.team_id, c.id, CASE
                WHEN c.status = '{CampaignStatus.SCHEDULED}' THEN 'start'
                WHEN NOT EXISTS ({unsent}) THEN 'complete'
                ELSE 'send' END
            FROM campaigns c
            WHERE (c.status = '{CampaignStatus.SCHEDULED}'
                   AND coalesce(c.schedule_start, c.updated_at) <= now())
               OR (c.status = '{CampaignStatus.ACTIVE}'
                   AND (EXISTS ({due}) OR NOT EXISTS ({unsent})))
        $$
    """)
    op.execute("""
        CREATE FUNCTION outreach_message_team(p_id uuid, p_sid text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT team_id FROM messages WHERE id = p_id OR provider_sid = p_sid LIMIT 1
        $$
    """)
    for fn in ("outreach_campaigns_with_work()", "outreach_message_team(uuid, text)"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {fn} TO "{role}"')
    # Append-only for the application: what happened stays as it was written.
    op.execute(f'GRANT SELECT, INSERT ON campaign_events TO "{role}"')
    op.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION outreach_message_team(uuid, text)")
    op.execute("DROP FUNCTION outreach_campaigns_with_work()")
    op.drop_table("messages")
    op.drop_table("phone_flags")
    op.drop_table("campaign_events")
    op.drop_table("campaigns")
    op.drop_table("sending_numbers")
