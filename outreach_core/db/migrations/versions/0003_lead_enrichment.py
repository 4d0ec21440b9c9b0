"""lead enrichment: person and organisation columns, derived fields, the enrichment work
state on leads; in-flight and in-doubt claims in the enrichment cache; provider pacing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outreach_core.db.rls import grant_app

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEXT_ARRAY = postgresql.ARRAY(sa.Text())
_LEAD_COLUMNS: list[sa.Column] = [  # type: ignore[type-arg]
    sa.Column("enrichment_key", sa.Text(), nullable=True),
    sa.Column("enrichment_error", sa.Text(), nullable=True),
    sa.Column("seniority", sa.Text(), nullable=True),
    sa.Column("departments", _TEXT_ARRAY, nullable=True),
    sa.Column("apollo_email", sa.Text(), nullable=True),
    sa.Column("email_status", sa.Text(), nullable=True),
    sa.Column("mobile_phones", _TEXT_ARRAY, nullable=True),
    sa.Column("organization_name", sa.Text(), nullable=True),
    sa.Column("organization_website", sa.Text(), nullable=True),
    sa.Column("founded_year", sa.Integer(), nullable=True),
    sa.Column("employee_count", sa.Integer(), nullable=True),
    sa.Column("industry", sa.Text(), nullable=True),
    sa.Column("keywords", _TEXT_ARRAY, nullable=True),
    sa.Column("organization_location", sa.Text(), nullable=True),
    sa.Column("annual_revenue", sa.Numeric(16, 2), nullable=True),
    sa.Column("technologies", _TEXT_ARRAY, nullable=True),
    sa.Column("revenue_tier", sa.String(length=20), nullable=True),
    sa.Column("years_in_business", sa.Integer(), nullable=True),
    sa.Column("has_verified_email", sa.Boolean(), nullable=True),
    sa.Column("has_linkedin", sa.Boolean(), nullable=True),
    sa.Column("is_owner_or_c_level", sa.Boolean(), nullable=True),
    sa.Column("is_main_street", sa.Boolean(), nullable=True),
    sa.Column("is_established", sa.Boolean(), nullable=True),
]
# Leads an enrichment run still has to look at; the rest are settled.
OPEN_STATUSES = "enrichment_status IS NULL OR enrichment_status IN " + (
    "('insufficient_data', 'enrich_failed', 'busy')"
)
_CACHE_STATUSES = "('pending', 'sent', 'matched', 'no_match', 'quarantined', 'in_doubt')"


def upgrade() -> None:
    for column in _LEAD_COLUMNS:
        op.add_column("leads", column)
    op.create_index(
        "ix_leads_team_sector_to_enrich",
        "leads",
        ["team_id", "sector", "id"],
        postgresql_where=sa.text(OPEN_STATUSES),
    )
    op.create_index(
        "ix_leads_team_enrichment_key",
        "leads",
        ["team_id", "enrichment_key"],
        postgresql_where=sa.text("enrichment_key IS NOT NULL"),
    )

    op.add_column("enrichment_cache", sa.Column("reservation_id", sa.UUID(), nullable=True))
    op.drop_constraint(op.f("ck_enrichment_cache_status"), "enrichment_cache", type_="check")
    op.create_check_constraint(
        op.f("ck_enrichment_cache_status"), "enrichment_cache", f"status IN {_CACHE_STATUSES}"
    )
    op.create_index(
        "ix_enrichment_cache_in_flight",
        "enrichment_cache",
        ["team_id", "claimed_at"],
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )

    # Provider-wide like the rate windows: the next free send time when requests are
    # spaced evenly (a shared schedule, so concurrent runs interleave instead of bursting).
    op.create_table(
        "provider_pacing",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_pacing")),
    )
    grant_app(op.get_context().config.attributes["app_role"], ["provider_pacing"])


def downgrade() -> None:
    op.drop_table("provider_pacing")
    op.drop_index("ix_enrichment_cache_in_flight", table_name="enrichment_cache")
    op.drop_constraint(op.f("ck_enrichment_cache_status"), "enrichment_cache", type_="check")
    op.create_check_constraint(
        op.f("ck_enrichment_cache_status"),
        "enrichment_cache",
        "status IN ('pending', 'matched', 'no_match')",
    )
    op.drop_column("enrichment_cache", "reservation_id")
    op.drop_index("ix_leads_team_enrichment_key", table_name="leads")
    op.drop_index("ix_leads_team_sector_to_enrich", table_name="leads")
    for column in reversed(_LEAD_COLUMNS):
        op.drop_column("leads", column.name)
