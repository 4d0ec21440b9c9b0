"""lead status: a CHECK on the values a person (or their CRM) may set, which the analytics
funnel counts (qualified, meeting, deal); any other value already stored becomes `new`

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 14:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The values of this revision, frozen.
_STATUSES = ("new", "qualified", "meeting", "deal", "lost")
_IN = f"status IN ({', '.join(repr(v) for v in _STATUSES)})"


def upgrade() -> None:
    # The seed's free-text status: nothing of ours wrote anything but `new`.
    op.execute("ALTER TABLE leads NO FORCE ROW LEVEL SECURITY")
    op.execute(f"UPDATE leads SET status = 'new' WHERE NOT ({_IN})")
    op.execute("ALTER TABLE leads FORCE ROW LEVEL SECURITY")
    op.create_check_constraint(op.f("ck_leads_status"), "leads", _IN)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_leads_status"), "leads", type_="check")
