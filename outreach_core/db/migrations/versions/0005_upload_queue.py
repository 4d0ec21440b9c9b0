"""upload queue: when an upload was last queued and when its run last renewed its lease;
the pending list takes turns across teams; the watchdog's list of uploads left non-final

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 21:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outreach_core.db.states import UPLOAD_ACTIVE, UploadStatus, sql_in

RECEIVED = f"'{UploadStatus.RECEIVED}'"
PROCESSING = f"'{UploadStatus.PROCESSING}'"

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "uploads",
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
    )
    op.add_column("uploads", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE uploads SET queued_at = created_at")
    # Each team's oldest upload first, then each team's second, and so on: a team that
    # lands a thousand files delays another team's one file by one turn, not a thousand.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION outreach_pending_uploads(p_limit integer)
        RETURNS TABLE (team_id uuid, upload_id uuid, sector text, attempt integer)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT team_id, id, sector, attempt FROM (
                SELECT team_id, id, sector, attempt, queued_at,
                       row_number() OVER (PARTITION BY team_id ORDER BY queued_at, id) AS turn
                FROM uploads WHERE status = {RECEIVED}
            ) q
            ORDER BY turn, queued_at, id LIMIT p_limit
        $$
    """)
    # Ids and timestamps only, like the pending list: the watchdog decides from Dagster's
    # runs whether anything still owns these.
    op.execute(f"""
        CREATE FUNCTION outreach_unfinished_uploads(p_older_than interval, p_limit integer)
        RETURNS TABLE (team_id uuid, upload_id uuid, sector text, status text,
                       run_id text, attempt integer, since timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT team_id, id, sector, status, run_id, attempt, since FROM (
                SELECT team_id, id, sector, status, run_id, attempt,
                       CASE WHEN status = {PROCESSING}
                            THEN coalesce(heartbeat_at, started_at, queued_at)
                            ELSE queued_at END AS since
                FROM uploads WHERE {sql_in("status", UPLOAD_ACTIVE)}
            ) q
            WHERE since < now() - p_older_than
            ORDER BY since LIMIT p_limit
        $$
    """)
    role = op.get_context().config.attributes["app_role"]
    fn = "outreach_unfinished_uploads(interval, integer)"
    op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {fn} TO "{role}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS outreach_unfinished_uploads(interval, integer)")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION outreach_pending_uploads(p_limit integer)
        RETURNS TABLE (team_id uuid, upload_id uuid, sector text, attempt integer)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT team_id, id, sector, attempt FROM uploads
            WHERE status = {RECEIVED} ORDER BY created_at, id LIMIT p_limit
        $$
    """)
    op.drop_column("uploads", "heartbeat_at")
    op.drop_column("uploads", "queued_at")
