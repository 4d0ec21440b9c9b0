"""the follow-up engine: approval of follow-ups to contacts who never consented; the
workflow sensor's cross-tenant read (teams with inbox items, whether their automation is
paused, whether they have workflows yet); follow-up messages are sent by the replies run; a
team whose automation is paused gets no campaign send runs; inbox items by contact

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The values of this revision, frozen.
_APPROVALS = ("awaiting", "approved", "rejected")

# The replies sensor's work as 0009 defined it.
_REPLIES_WORK_0009 = """
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
"""
# Follow-up messages go out through the replies run too, unless the team paused automation.
_FOLLOW_UP_WORK = """
    UNION
    SELECT DISTINCT m.team_id, 'follow_up' FROM messages m JOIN teams t ON t.id = m.team_id
     WHERE m.kind = 'follow_up' AND t.automation_paused_at IS NULL
       AND (m.status = 'claimed' OR (m.status = 'pending' AND m.not_before <= now()))
"""

_UNSENT = """
    SELECT 1 FROM messages m WHERE m.team_id = c.team_id AND m.campaign_id = c.id
      AND m.status IN ('pending', 'claimed')"""
_DUE = """
    SELECT 1 FROM messages m WHERE m.team_id = c.team_id AND m.campaign_id = c.id
      AND (m.status = 'claimed' OR (m.status = 'pending' AND m.not_before <= now()))"""


def _campaigns_with_work(paused_team_holds: bool) -> str:
    sends = f"EXISTS ({_DUE})"
    if paused_team_holds:
        # A paused team's campaigns wait: no send run is started only to stop at once.
        sends = f"""({sends} AND NOT EXISTS (
            SELECT 1 FROM teams t WHERE t.id = c.team_id AND t.automation_paused_at IS NOT NULL))"""
    return f"""
        CREATE OR REPLACE FUNCTION outreach_campaigns_with_work()
        RETURNS TABLE (team_id uuid, campaign_id uuid, work text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT c.team_id, c.id, CASE
                WHEN c.status = 'scheduled' THEN 'start'
                WHEN NOT EXISTS ({_UNSENT}) THEN 'complete'
                ELSE 'send' END
            FROM campaigns c
            WHERE (c.status = 'scheduled'
                   AND coalesce(c.schedule_start, c.updated_at) <= now())
               OR (c.status = 'active' AND ({sends} OR NOT EXISTS ({_UNSENT})))
        $$
    """


def _replies_with_work(body: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION outreach_replies_with_work(
            p_inbound_stale interval, p_sending_stale interval
        )
        RETURNS TABLE (team_id uuid, work text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            {body}
        $$
    """


def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("approval", sa.String(10), nullable=True))
    op.add_column("workflow_executions", sa.Column("approval_by", sa.String(120), nullable=True))
    op.add_column(
        "workflow_executions",
        sa.Column("approval_at", sa.DateTime(timezone=True), nullable=True),
    )
    approvals = ", ".join(repr(v) for v in _APPROVALS)
    op.create_check_constraint(
        op.f("ck_workflow_executions_approval"),
        "workflow_executions",
        f"approval IN ({approvals})",
    )

    # A contact's items, newest last: the workflows follow up only the latest one.
    op.create_index(
        "ix_inbox_items_contact", "inbox_items", ["team_id", "contact_phone", "created_at"]
    )

    # A team's next pending execution, soonest first (the executor walks it in order).
    op.create_index(
        "ix_workflow_executions_team_due",
        "workflow_executions",
        ["team_id", "due_at", "step"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    role = op.get_context().config.attributes["app_role"]
    # The workflow sensor's only cross-tenant read (see 0001 for why the owner needs read
    # policies of its own).
    for table in ("teams", "inbox_items", "workflows"):
        op.execute(f"CREATE POLICY owner_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    # Teams the workflow sensor looks at (those with inbox items), whether their automation
    # is paused and whether they have workflows yet (none: the defaults are installed).
    op.execute("""
        CREATE FUNCTION outreach_workflow_teams()
        RETURNS TABLE (team_id uuid, paused boolean, has_workflows boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT t.id, t.automation_paused_at IS NOT NULL,
                   EXISTS (SELECT 1 FROM workflows w WHERE w.team_id = t.id)
              FROM teams t
             WHERE EXISTS (SELECT 1 FROM inbox_items i WHERE i.team_id = t.id)
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION outreach_workflow_teams() FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION outreach_workflow_teams() TO "{role}"')
    op.execute(_replies_with_work(_REPLIES_WORK_0009 + _FOLLOW_UP_WORK))
    op.execute(_campaigns_with_work(paused_team_holds=True))


def downgrade() -> None:
    op.execute(_campaigns_with_work(paused_team_holds=False))
    op.execute(_replies_with_work(_REPLIES_WORK_0009))
    op.execute("DROP FUNCTION outreach_workflow_teams()")
    for table in ("teams", "inbox_items", "workflows"):
        op.execute(f"DROP POLICY owner_lookup ON {table}")
    op.drop_index("ix_workflow_executions_team_due", table_name="workflow_executions")
    op.drop_index("ix_inbox_items_contact", table_name="inbox_items")
    op.drop_constraint(
        op.f("ck_workflow_executions_approval"), "workflow_executions", type_="check"
    )
    for column in ("approval_at", "approval_by", "approval"):
        op.drop_column("workflow_executions", column)
