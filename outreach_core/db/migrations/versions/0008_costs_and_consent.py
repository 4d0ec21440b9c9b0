"""one cost module: every ledger row and reservation has a cost category (enrichment, sms,
voice, email); a team caps each category and the total per month; reservations may count
against a campaign's budget, and a message keeps the reservation of its worst-case price.
Consent: a team may require it for first contact, recorded as the phone flag `consented`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen values of this revision (a later one may add categories or flags).
_CATEGORIES = "category IN ('enrichment', 'sms', 'voice', 'email')"
_FLAGS = "flag IN ('suppressed', 'invalid', 'landline', 'consented')"
_FLAGS_BEFORE = "flag IN ('suppressed', 'invalid', 'landline')"
_NEW_CAPS = ("sms_monthly_cap", "voice_monthly_cap", "email_monthly_cap", "total_monthly_cap")


def upgrade() -> None:
    for table in ("cost_ledger", "budget_reservations"):
        op.add_column(
            table,
            sa.Column("category", sa.String(20), server_default="enrichment", nullable=False),
        )
        op.alter_column(table, "category", server_default=None)
        op.create_check_constraint(op.f(f"ck_{table}_category"), table, _CATEGORIES)
    # Until now the only priced provider besides Apollo was Twilio's SMS. FORCEd RLS
    # would hide every row from an owner that is not a superuser: unforced for the update.
    op.execute("ALTER TABLE cost_ledger NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE cost_ledger SET category = 'sms' WHERE provider = 'twilio'")
    op.execute("ALTER TABLE cost_ledger FORCE ROW LEVEL SECURITY")
    op.create_foreign_key(
        op.f("fk_cost_ledger_team_id_campaigns"),
        "cost_ledger",
        "campaigns",
        ["team_id", "campaign_id"],
        ["team_id", "id"],
    )
    op.create_index(
        "ix_cost_ledger_campaign",
        "cost_ledger",
        ["team_id", "campaign_id"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )
    op.add_column("budget_reservations", sa.Column("campaign_id", sa.UUID(), nullable=True))
    for cap in _NEW_CAPS:
        op.add_column("team_budgets", sa.Column(cap, sa.Numeric(12, 2), nullable=True))
    op.create_check_constraint(
        op.f("ck_team_budgets_caps_non_negative"),
        "team_budgets",
        " AND ".join(f"{cap} >= 0" for cap in _NEW_CAPS),
    )
    op.add_column("messages", sa.Column("reservation_id", sa.UUID(), nullable=True))
    op.add_column(
        "teams",
        sa.Column("require_consent", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.drop_constraint(op.f("ck_phone_flags_flag"), "phone_flags", type_="check")
    op.create_check_constraint(op.f("ck_phone_flags_flag"), "phone_flags", _FLAGS)


def downgrade() -> None:
    op.execute("ALTER TABLE phone_flags NO FORCE ROW LEVEL SECURITY")
    op.execute("DELETE FROM phone_flags WHERE flag = 'consented'")
    op.execute("ALTER TABLE phone_flags FORCE ROW LEVEL SECURITY")
    op.drop_constraint(op.f("ck_phone_flags_flag"), "phone_flags", type_="check")
    op.create_check_constraint(op.f("ck_phone_flags_flag"), "phone_flags", _FLAGS_BEFORE)
    op.drop_column("teams", "require_consent")
    op.drop_column("messages", "reservation_id")
    op.drop_constraint(op.f("ck_team_budgets_caps_non_negative"), "team_budgets", type_="check")
    for cap in _NEW_CAPS:
        op.drop_column("team_budgets", cap)
    op.drop_column("budget_reservations", "campaign_id")
    op.drop_index("ix_cost_ledger_campaign", table_name="cost_ledger")
    op.drop_constraint(op.f("fk_cost_ledger_team_id_campaigns"), "cost_ledger", type_="foreignkey")
    for table in ("cost_ledger", "budget_reservations"):
        op.drop_column(table, "category")
