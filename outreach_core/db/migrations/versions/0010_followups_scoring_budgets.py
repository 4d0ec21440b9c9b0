"""follow-ups, lead scoring history, budget alerts: per-team workflows (trigger and steps
as data) and their executions, unique per (workflow, inbox item, step); tasks for people;
team notifications (an outbox to the team's incoming-webhook URL); follow-up messages in
the outbox (kind `follow_up`, one per execution); the append-only history of lead score
changes; budget alerts, one per subject and threshold; teams gain an automation kill
switch and their notification URL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outreach_core.db.rls import enable_tenant_rls

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The values of this revision, frozen.
_KINDS = ("campaign", "auto_reply", "reply", "service", "follow_up")
_KINDS_BEFORE = ("campaign", "auto_reply", "reply", "service")
_ACTIONS = (
    "send_sms",
    "send_email",
    "create_task",
    "move_to_bucket",
    "update_lead_score",
    "tag_lead",
    "notify_team",
)
_EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "skipped")
_TASK_STATUSES = ("open", "done")
_NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed")
_PRIORITIES = ("hot", "warm", "cold")
_SCOPES = ("team", "campaign")


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


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _kind_refs(kinds: tuple[str, ...]) -> str:
    refs = (
        "(kind = 'campaign' AND campaign_id IS NOT NULL AND lead_id IS NOT NULL) "
        "OR (kind IN ('auto_reply', 'reply', 'service') AND reply_to IS NOT NULL)"
    )
    if "follow_up" in kinds:
        refs += " OR (kind = 'follow_up' AND workflow_execution_id IS NOT NULL)"
    return refs


def upgrade() -> None:
    op.add_column("teams", sa.Column("automation_paused_at", sa.DateTime(timezone=True)))
    op.add_column("teams", sa.Column("automation_paused_by", sa.String(120)))
    op.add_column("teams", sa.Column("automation_paused_reason", sa.Text()))
    op.add_column("teams", sa.Column("notify_webhook_url", sa.Text()))

    op.create_table(
        "workflows",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("trigger", postgresql.JSONB(), nullable=False),
        sa.Column("steps", postgresql.JSONB(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        _team_fk("workflows"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("team_id", "name", name=op.f("uq_workflows_team_id")),
    )
    op.create_table(
        "workflow_executions",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column("inbox_item_id", sa.UUID(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), server_default="pending", nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_phone", sa.String(20, collation="C"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        _check("workflow_executions", "action", _in("action", _ACTIONS)),
        _check("workflow_executions", "status", _in("status", _EXECUTION_STATUSES)),
        _team_fk("workflow_executions"),
        sa.ForeignKeyConstraint(
            ["team_id", "workflow_id"],
            ["workflows.team_id", "workflows.id"],
            name=op.f("fk_workflow_executions_team_id_workflows"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id", "inbox_item_id"],
            ["inbox_items.team_id", "inbox_items.id"],
            name=op.f("fk_workflow_executions_team_id_inbox_items"),
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_workflow_executions")),
        # Overlapping sensor ticks insert the same execution at most once.
        sa.UniqueConstraint(
            "team_id",
            "workflow_id",
            "inbox_item_id",
            "step",
            name=op.f("uq_workflow_executions_team_id"),
        ),
    )
    op.create_index(
        "ix_workflow_executions_due",
        "workflow_executions",
        ["status", "due_at"],
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_index(
        "ix_workflow_executions_contact",
        "workflow_executions",
        ["team_id", "contact_phone", "status"],
    )
    op.create_table(
        "tasks",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), server_default="open", nullable=False),
        sa.Column("inbox_item_id", sa.UUID(), nullable=True),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_phone", sa.String(20, collation="C"), nullable=True),
        sa.Column("workflow_execution_id", sa.UUID(), nullable=True),
        _now("created_at"),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(120), nullable=True),
        _check("tasks", "priority", _in("priority", _PRIORITIES)),
        _check("tasks", "status", _in("status", _TASK_STATUSES)),
        _team_fk("tasks"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("team_id", "workflow_execution_id", name=op.f("uq_tasks_team_id")),
    )
    op.create_index("ix_tasks_open", "tasks", ["team_id", "status", "created_at"])
    op.create_table(
        "team_notifications",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column("status", sa.String(10), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _check("team_notifications", "status", _in("status", _NOTIFICATION_STATUSES)),
        _team_fk("team_notifications"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_team_notifications")),
        sa.UniqueConstraint("team_id", "dedupe_key", name=op.f("uq_team_notifications_team_id")),
    )
    op.create_index(
        "ix_team_notifications_open",
        "team_notifications",
        ["status", "created_at"],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_table(
        "lead_score_events",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        _now("at"),
        sa.ForeignKeyConstraint(
            ["team_id", "lead_id"],
            ["leads.team_id", "leads.id"],
            name=op.f("fk_lead_score_events_team_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_lead_score_events")),
    )
    op.create_index("ix_lead_score_events_lead", "lead_score_events", ["team_id", "lead_id", "id"])
    op.create_table(
        "budget_alerts",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        # What the cap is on: "campaign:<id>", "team:<category or total>:<YYYY-MM>".
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("spent", sa.Numeric(12, 2), nullable=False),
        sa.Column("cap", sa.Numeric(12, 2), nullable=False),
        _now("at"),
        _check("budget_alerts", "scope", _in("scope", _SCOPES)),
        _check("budget_alerts", "threshold_pct", "threshold_pct BETWEEN 1 AND 100"),
        _team_fk("budget_alerts"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_budget_alerts")),
        sa.UniqueConstraint(
            "team_id", "subject", "threshold_pct", name=op.f("uq_budget_alerts_team_id")
        ),
    )

    op.add_column("messages", sa.Column("workflow_execution_id", sa.UUID(), nullable=True))
    op.drop_constraint(op.f("ck_messages_kind_refs"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_kind"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_kind"), "messages", _in("kind", _KINDS))
    op.create_check_constraint(op.f("ck_messages_kind_refs"), "messages", _kind_refs(_KINDS))
    # One follow-up message per execution, however often the executor retries.
    op.create_index(
        "uq_messages_workflow_execution",
        "messages",
        ["team_id", "workflow_execution_id"],
        unique=True,
        postgresql_where=sa.text("workflow_execution_id IS NOT NULL"),
    )

    role = op.get_context().config.attributes["app_role"]
    tables = (
        "workflows",
        "workflow_executions",
        "tasks",
        "team_notifications",
        "lead_score_events",
        "budget_alerts",
    )
    for table in tables:
        enable_tenant_rls(table)
    for table in ("workflows", "workflow_executions", "tasks", "team_notifications"):
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
    # Append-only for the application.
    for table in ("lead_score_events", "budget_alerts"):
        op.execute(f'GRANT SELECT, INSERT ON {table} TO "{role}"')
    op.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')


def downgrade() -> None:
    op.drop_index("uq_messages_workflow_execution", table_name="messages")
    op.execute("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY")
    op.execute("DELETE FROM messages WHERE kind = 'follow_up'")
    op.execute("ALTER TABLE messages FORCE ROW LEVEL SECURITY")
    op.drop_constraint(op.f("ck_messages_kind_refs"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_kind"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_kind"), "messages", _in("kind", _KINDS_BEFORE))
    op.create_check_constraint(op.f("ck_messages_kind_refs"), "messages", _kind_refs(_KINDS_BEFORE))
    op.drop_column("messages", "workflow_execution_id")
    for table in (
        "budget_alerts",
        "lead_score_events",
        "team_notifications",
        "tasks",
        "workflow_executions",
        "workflows",
    ):
        op.drop_table(table)
    for column in (
        "notify_webhook_url",
        "automation_paused_reason",
        "automation_paused_by",
        "automation_paused_at",
    ):
        op.drop_column("teams", column)
