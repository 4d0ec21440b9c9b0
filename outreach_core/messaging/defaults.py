"""Every default of the messaging layer, defined once; the API, the CLI and the Dagster
resources read them from here."""

from __future__ import annotations

from datetime import timedelta

# Messages a campaign sends per day unless it says otherwise.
CAMPAIGN_DAILY_LIMIT = 500
# The AI SDR persona that answers for a campaign unless another is chosen.
CAMPAIGN_PERSONA = "sabrina_default"
# Who a change was made by when no person is named (the send engine, a sensor).
SYSTEM_ACTOR = "system"
# The provider and ledger operation SMS spend is booked under.
SMS_PROVIDER = "twilio"
SMS_OPERATION = "sms"
# An answer Twilio sent from our TwiML: it reports no price, so its worst case is booked.
SMS_TWIML_OPERATION = "sms_twiml"
# How long a message's worst-case price stays reserved when its price never arrives (the
# provider prices a message when it reaches a final status, usually within minutes).
SMS_RESERVATION_TTL = timedelta(hours=24)
