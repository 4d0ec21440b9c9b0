"""Every default of the messaging layer, defined once; the API, the CLI and the Dagster
resources read them from here."""

from __future__ import annotations

# Messages a campaign sends per day unless it says otherwise.
CAMPAIGN_DAILY_LIMIT = 500
# The AI SDR persona that answers for a campaign unless another is chosen.
CAMPAIGN_PERSONA = "sabrina_default"
# Who a change was made by when no person is named (the send engine, a sensor).
SYSTEM_ACTOR = "system"
