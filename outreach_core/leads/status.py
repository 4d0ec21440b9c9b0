"""A lead's status after contact, set by a person or their CRM (`PATCH /v1/leads/{id}`);
the analytics funnel counts qualified, meeting and deal from it."""

from __future__ import annotations

import uuid

from sqlalchemy import func, update

from outreach_core.db.engine import tenant_session
from outreach_core.db.states import LeadStatus
from outreach_core.db.tables import Lead
from outreach_core.leads.scoring import LeadNotFound


def set_lead_status(team_id: uuid.UUID, lead_id: int, status: LeadStatus) -> None:
    """LeadNotFound when the team has no such lead."""
    with tenant_session(team_id) as session:
        changed = session.execute(
            update(Lead)
            .where(Lead.team_id == team_id, Lead.id == lead_id)
            .values(status=status, updated_at=func.now())
            .returning(Lead.id)
        ).first()
        if changed is None:
            raise LeadNotFound(f"no lead {lead_id} in this team")
