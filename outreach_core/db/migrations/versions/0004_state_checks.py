"""state checks: uploads.status and leads.enrichment_status accept only their enum's values

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 21:40:00.000000
"""

from __future__ import annotations

from alembic import op

from outreach_core.db.states import EnrichmentStatus, UploadStatus, sql_in

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint(op.f("ck_uploads_status"), "uploads", sql_in("status", UploadStatus))
    op.create_check_constraint(
        op.f("ck_leads_enrichment_status"),
        "leads",
        sql_in("enrichment_status", EnrichmentStatus),
    )


def downgrade() -> None:
    op.drop_constraint("ck_leads_enrichment_status", "leads", type_="check")
    op.drop_constraint("ck_uploads_status", "uploads", type_="check")
