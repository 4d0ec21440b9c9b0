"""enrichment cost control: shared rate windows, provider pauses, cost ledger, budgets,
reservations and the enrichment dedup cache

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outreach_core.db.rls import enable_tenant_rls, grant_app

revision = "0002"
down_revision = "0001"
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
    # Provider-wide, not tenant data: every team shares the provider's limits.
    op.create_table(
        "provider_rate_windows",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("window", sa.String(length=10), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "\"window\" IN ('minute', 'hour', 'day')",
            name=op.f("ck_provider_rate_windows_window"),
        ),
        sa.PrimaryKeyConstraint(
            "provider", "window", "window_start", name=op.f("pk_provider_rate_windows")
        ),
    )
    op.create_table(
        "provider_pauses",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_pauses")),
    )
    op.create_table(
        "cost_ledger",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("operation", sa.String(length=60), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(12, 4), nullable=False),
        sa.Column("amount", sa.Numeric(12, 4), nullable=False),
        sa.Column("upload_id", sa.UUID(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        _now("created_at"),
        sa.CheckConstraint("units >= 0 AND amount >= 0", name=op.f("ck_cost_ledger_non_negative")),
        sa.ForeignKeyConstraint(
            ["team_id", "upload_id"],
            ["uploads.team_id", "uploads.id"],
            name=op.f("fk_cost_ledger_team_id_uploads"),
        ),
        _team_fk("cost_ledger"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_cost_ledger")),
    )
    op.create_index(
        "ix_cost_ledger_team_time", "cost_ledger", ["team_id", "created_at"], unique=False
    )
    op.create_table(
        "team_budgets",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("enrichment_monthly_cap", sa.Numeric(12, 2), nullable=True),
        _now("updated_at"),
        sa.CheckConstraint(
            "enrichment_monthly_cap >= 0", name=op.f("ck_team_budgets_cap_non_negative")
        ),
        _team_fk("team_budgets"),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_team_budgets")),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.Numeric(12, 4), nullable=False),
        _now("created_at"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_budget_reservations_non_negative")),
        _team_fk("budget_reservations"),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_budget_reservations")),
    )
    op.create_index(
        "ix_budget_reservations_team_expiry",
        "budget_reservations",
        ["team_id", "expires_at"],
        unique=False,
    )
    op.create_table(
        "enrichment_cache",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("identity_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("apollo_person_id", sa.String(length=64), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("credits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'matched', 'no_match')",
            name=op.f("ck_enrichment_cache_status"),
        ),
        _team_fk("enrichment_cache"),
        sa.PrimaryKeyConstraint("team_id", "identity_key", name=op.f("pk_enrichment_cache")),
    )
    op.create_index(
        "ix_enrichment_cache_person",
        "enrichment_cache",
        ["team_id", "apollo_person_id"],
        unique=False,
        postgresql_where=sa.text("apollo_person_id IS NOT NULL"),
    )

    tenant_tables = ["cost_ledger", "team_budgets", "budget_reservations", "enrichment_cache"]
    for table in tenant_tables:
        enable_tenant_rls(table)
    role = op.get_context().config.attributes["app_role"]
    grant_app(role, ["provider_rate_windows", "provider_pauses", *tenant_tables])


def downgrade() -> None:
    op.drop_index("ix_enrichment_cache_person", table_name="enrichment_cache")
    op.drop_table("enrichment_cache")
    op.drop_index("ix_budget_reservations_team_expiry", table_name="budget_reservations")
    op.drop_table("budget_reservations")
    op.drop_table("team_budgets")
    op.drop_index("ix_cost_ledger_team_time", table_name="cost_ledger")
    op.drop_table("cost_ledger")
    op.drop_table("provider_pauses")
    op.drop_table("provider_rate_windows")
