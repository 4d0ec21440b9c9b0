"""lead scores start from the rules file, not a column default (ingestion writes the base
from outreach_core/enrich/scoring.yaml); a lead score event is applied once per (event,
source), so a retried cause never scores twice; team notifications wait for their next
attempt after a retryable failure; the notifications sensor finds the teams with
notifications due

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("leads", "score", server_default=None)
    op.create_unique_constraint(
        op.f("uq_lead_score_events_team_id"),
        "lead_score_events",
        ["team_id", "lead_id", "event", "source"],
    )
    op.add_column("team_notifications", sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
    # Across teams, for the sensor (which has no tenant): only team ids, nothing else.
    op.execute("""
        CREATE FUNCTION outreach_notifications_due(p_sending_stale interval)
        RETURNS TABLE (team_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT DISTINCT team_id FROM team_notifications
             WHERE (status = 'pending'
                    AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
                OR (status = 'sending' AND claimed_at < now() - p_sending_stale)
        $$
    """)
    role = op.get_context().config.attributes["app_role"]
    op.execute("REVOKE ALL ON FUNCTION outreach_notifications_due(interval) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION outreach_notifications_due(interval) TO "{role}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION outreach_notifications_due(interval)")
    op.drop_column("team_notifications", "next_attempt_at")
    op.drop_constraint(op.f("uq_lead_score_events_team_id"), "lead_score_events", type_="unique")
    op.alter_column("leads", "score", server_default="50")
