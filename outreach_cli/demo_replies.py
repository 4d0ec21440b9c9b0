"""The demo's replies: a realistic mix of answers to the demo campaign (opt-outs, an email,
questions, interest, a call, a retried webhook), posted to the API's Twilio webhooks signed
the way Twilio signs them; then the replies run (retries, queued replies, the deliverable
emailed to the sandbox SMTP server) and the inbox, printed.

Replies are processed at the real time of day: inside a recipient's window confident ones are
answered at once, outside it they wait for a person as reviews."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from outreach_assets.campaigns import TwilioResource
from outreach_assets.replies import SmtpResource, replies_job
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import DeliverableStatus, MessageKind, MessageStatus, ReviewStatus
from outreach_core.db.tables import (
    Campaign,
    DeliverableJob,
    InboxItem,
    Lead,
    Message,
    Review,
    SendingNumber,
)
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.sandbox.smtp import SandboxSmtp
from outreach_core.sandbox.twilio import SANDBOX_AUTH_TOKEN, SandboxTwilio

# What the recipients answer, in order; {email} becomes an address for the lead.
REPLIES = (
    "STOP",
    "Yes! I'm interested, tell me more",
    "sure, send it to {email} thanks",
    "How much does it cost?",
    "not interested, thanks",
    "Thank you 👍",
    "wrong number, stop texting me",
    "Can you call me tomorrow morning?",
    "who is this?",
    "HELP",
)


def run_replies(
    console: Console,
    team_id: uuid.UUID,
    campaign_id: uuid.UUID,
    api_url: str,
    twilio: SandboxTwilio,
) -> None:
    console.rule("Replies (signed webhooks to the API)")
    console.print(
        f"processed at the real time, {datetime.now(UTC):%H:%M} UTC: confident replies inside "
        "a recipient's window are answered at once, the rest wait for review"
    )
    to_number, leads = _texted(team_id, campaign_id)
    if to_number is None or not leads:
        console.print("no lead was texted; no replies to simulate")
        return
    for n, ((phone, first_name), reply) in enumerate(zip(leads, REPLIES, strict=False)):
        body = reply.format(email=f"{(first_name or 'owner').lower()}@example.com")
        sid = f"SM{uuid.uuid4().hex}"
        answer = _post(api_url, "/webhooks/twilio/sms", _sms(sid, phone, to_number, body))
        if n == 1:  # Twilio retries a webhook it thinks timed out: one item, one reply
            _post(api_url, "/webhooks/twilio/sms", _sms(sid, phone, to_number, body))
        console.print(f"  {phone} -> {body!r}: {'answered' if '<Message>' in answer else '—'}")
    caller = leads[len(REPLIES) % len(leads)][0]
    _post(
        api_url,
        "/webhooks/twilio/voice",
        {"CallSid": f"CA{uuid.uuid4().hex}", "From": caller, "To": to_number},
    )
    console.print(f"  {caller} called the number")
    with SandboxSmtp() as smtp:
        result = replies_job.execute_in_process(
            run_config={"ops": {"replies_op": {"config": {"team_id": str(team_id)}}}},
            resources={
                "twilio": TwilioResource(base_url=twilio.base_url),
                "smtp": SmtpResource(host=smtp.host, port=smtp.port),
            },
        )
        emailed = len(smtp.received)
    if not result.success:
        console.print("[red]the replies run failed; see the log above[/red]")
    _print(console, team_id, emailed)


def _texted(
    team_id: uuid.UUID, campaign_id: uuid.UUID
) -> tuple[str | None, list[tuple[str, str | None]]]:
    """The number the campaign sent from, and the leads it reached."""
    with tenant_session(team_id) as session:
        campaign = session.get(Campaign, (team_id, campaign_id))
        number = (
            session.get(SendingNumber, (team_id, campaign.sending_number_id))
            if campaign and campaign.sending_number_id
            else None
        )
        rows = session.execute(
            select(Message.to_phone, Lead.first_name)
            .join(Lead, (Lead.team_id == Message.team_id) & (Lead.id == Message.lead_id))
            .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.DELIVERED)
            .order_by(Message.lead_id)
            .limit(len(REPLIES))
        ).all()
    return (number.phone_number if number else None), [(r[0], r[1]) for r in rows]


def _sms(sid: str, phone: str, to: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": phone, "To": to, "Body": body}


def _post(api_url: str, path: str, params: dict[str, str]) -> str:
    signature = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(api_url + path, params)
    response = httpx.post(
        api_url + path, data=params, headers={SIGNATURE_HEADER: signature}, timeout=30
    )
    response.raise_for_status()
    return response.text


def _print(console: Console, team_id: uuid.UUID, emailed: int) -> None:
    with tenant_session(team_id) as session:
        items = session.execute(
            select(InboxItem.bucket, InboxItem.priority, func.count()).group_by(
                InboxItem.bucket, InboxItem.priority
            )
        ).all()
        handled = Counter(
            dict(
                session.execute(
                    select(InboxItem.handling, func.count()).group_by(InboxItem.handling)
                ).all()
            )
        )
        answers = Counter(
            dict(
                session.execute(
                    select(Message.kind, func.count())
                    .where(Message.kind != MessageKind.CAMPAIGN)
                    .group_by(Message.kind)
                ).all()
            )
        )
        reviews = session.scalar(
            select(func.count()).select_from(Review).where(Review.status == ReviewStatus.PENDING)
        )
        deliverables = session.scalar(
            select(func.count())
            .select_from(DeliverableJob)
            .where(DeliverableJob.status == DeliverableStatus.SENT)
        )
    table = Table(title="Inbox by bucket and priority")
    for column in ("bucket", "priority", "items"):
        table.add_column(column)
    for bucket, priority, n in sorted(items, key=lambda r: (str(r[0]), str(r[1]))):
        table.add_row(str(bucket), str(priority), str(n))
    console.print(table)
    console.print(
        "handled: " + ", ".join(f"{k or 'none'} {n}" for k, n in sorted(handled.items(), key=str))
    )
    console.print(
        f"auto-replies sent {answers[MessageKind.AUTO_REPLY]}, service answers (opt-out, "
        f"help) {answers[MessageKind.SERVICE]}; reviews queued for a person {reviews}; "
        f"deliverables emailed {deliverables} (the sandbox SMTP server got {emailed})"
    )
