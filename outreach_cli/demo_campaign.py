"""The demo's campaign: an SMS campaign over the demo team's leads, sent through the real
send engine and the real `twilio` client to the sandbox Twilio on loopback, with its
status callbacks posted (signed) to the API; then what happened, printed.

The demo's clock is 15:00 UTC today, so quiet hours show: New York leads (10:00) are
texted, California leads (07:00) wait for their 09:00."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import uvicorn
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import func, select

from outreach_cli.demo_replies import run_replies
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CampaignStatus, CampaignType
from outreach_core.db.tables import CostLedger, Message
from outreach_core.messaging.campaigns import (
    InvalidTransition,
    NewCampaign,
    campaign_counts,
    create_campaign,
    list_campaigns,
    schedule_campaign,
    transition,
)
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.numbers import provision_for_campaign
from outreach_core.messaging.sender import send_campaign
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.sandbox.twilio import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxTwilio
from outreach_core.settings import get_settings

NAME = "Demo campaign"
ACTOR = "demo"
TEMPLATE = (
    "Hi {{firstName|there}}, this is Sabrina with Outreach. Is {{companyName|your business}} "
    "taking on new customers this month?"
)
BUDGET = Decimal("25.00")
# The sandbox takes far more than a real long code; the demo should not take minutes.
DEMO_RATE_PER_SECOND = 100.0
CALLBACK_WAIT_SECONDS = 30


def demo_clock() -> datetime:
    """15:00 UTC on or after now. It must not run behind the real clock: the database dates
    each message's `not_before` now(), and a clock behind it would find nothing due."""
    now = datetime.now(UTC)
    at = now.replace(hour=15, minute=0, second=0, microsecond=0)
    return at if at >= now else at + timedelta(days=1)


def run_campaign(console: Console, team_id: uuid.UUID) -> None:
    console.rule("Campaign (sandbox Twilio on loopback)")
    _cancel_earlier(team_id)
    with SandboxTwilio(status_interval=0.02) as twilio, _api() as api_url:
        _point_at(twilio, api_url)
        new = NewCampaign(
            name=NAME,
            type=CampaignType.SMS,
            selection=LeadSelection(),
            template=TEMPLATE,
            budget=BUDGET,
        )
        created = create_campaign(team_id, new, ACTOR)
        campaign_id = created.campaign.id
        left_out = ", ".join(f"{r} {n}" for r, n in created.left_out.items()) or "none"
        console.print(f"{created.added} leads in the campaign; left out: {left_out}")
        gateway = TwilioGateway.from_settings()
        number = provision_for_campaign(team_id, campaign_id, gateway.client, ACTOR)
        if number is None:
            console.print("[red]no sending number could be bought; nothing sent[/red]")
            return
        console.print(f"bought {number.phone_number} for the campaign")
        _realistic_failures(twilio, team_id, campaign_id)
        schedule_campaign(team_id, campaign_id, ACTOR)
        transition(team_id, campaign_id, CampaignStatus.ACTIVE, ACTOR, "demo start")
        now = demo_clock()
        console.print(f"demo clock: {now:%Y-%m-%d %H:%M} UTC")
        started = time.perf_counter()
        run_id = f"demo-{uuid.uuid4()}"
        stats = send_campaign(team_id, campaign_id, gateway, run_id, clock=lambda: now)
        seconds = time.perf_counter() - started
        twilio.wait_idle(CALLBACK_WAIT_SECONDS)
        time.sleep(0.5)  # the last callbacks finish in the API
        _print(console, team_id, campaign_id, stats.sent, seconds, stats.rescheduled, now)
        run_replies(console, team_id, campaign_id, api_url, twilio)


def _print(
    console: Console,
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    sent: int,
    seconds: float,
    rescheduled: dict[str, int],
    now: datetime,
) -> None:
    counts = campaign_counts(team_id, campaign_id)
    with tenant_session(team_id) as session:
        cost = session.scalar(
            select(func.coalesce(func.sum(CostLedger.amount), 0)).where(
                CostLedger.campaign_id == campaign_id
            )
        )
        next_up = session.scalar(
            select(func.min(Message.not_before)).where(
                Message.campaign_id == campaign_id, Message.not_before > now
            )
        )
    console.print(
        f"sent {sent} in {seconds:.1f} s; delivered {counts.delivered}, failed {counts.failed}"
    )
    for reason, n in sorted(rescheduled.items()):
        console.print(f"  held back, {reason}: {n}")
    if next_up is not None:
        console.print(f"  the next held-back message may go out at {next_up:%H:%M} UTC")
    for reason, n in counts.blocked.items():
        console.print(f"  blocked, {reason}: {n}")
    console.print(f"SMS cost ${cost:.4f} (ledger), budget ${BUDGET}")


def _cancel_earlier(team_id: uuid.UUID) -> None:
    """A demo run again: the earlier demo campaign would hold every lead."""
    for campaign in list_campaigns(team_id):
        if campaign.name == NAME:
            with contextlib.suppress(InvalidTransition):  # already final
                transition(team_id, campaign.id, CampaignStatus.CANCELLED, ACTOR, "demo again")


def _realistic_failures(twilio: SandboxTwilio, team_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    """One recipient has opted out with the carrier, one is a landline."""
    with tenant_session(team_id) as session:
        phones = session.scalars(
            select(Message.to_phone)
            .where(Message.campaign_id == campaign_id)
            .order_by(Message.lead_id)
            .limit(2)
        ).all()
    if len(phones) == 2:
        twilio.reject(phones[0], 21610)
        twilio.fail_delivery(phones[1], 30006)


def _point_at(twilio: SandboxTwilio, api_url: str) -> None:
    settings = get_settings()
    settings.twilio_account_sid = SecretStr(SANDBOX_ACCOUNT_SID)
    settings.twilio_auth_token = SecretStr(SANDBOX_AUTH_TOKEN)
    settings.twilio_base_url = twilio.base_url
    settings.public_base_url = api_url
    settings.sms_per_number_per_second = DEMO_RATE_PER_SECOND


@contextmanager
def _api() -> Iterator[str]:
    """The API in a thread, for the sandbox's status callbacks."""
    from outreach_api.main import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
