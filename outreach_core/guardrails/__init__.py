"""Guardrails: may this message go out now? The one place those rules live (see DESIGN.md).

Modules: `reasons` (BlockReason), `quiet_hours` (the recipient decision), `rules` (quiet-hours
data, quiet_hours.yaml), `windows` (local-time window arithmetic), `timezones` (where a recipient
is, state_time_zones.yaml). The database-backed checks (suppression, caps, budget, consent,
daily limit) build on these."""

from outreach_core.guardrails.quiet_hours import QuietHoursDecision, check_quiet_hours
from outreach_core.guardrails.reasons import BlockReason

__all__ = ["BlockReason", "QuietHoursDecision", "check_quiet_hours"]
