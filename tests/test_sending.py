"""The send engine against the sandbox Twilio over loopback, with the real `twilio` client
and the status callbacks posted to our API (signed): guardrails at send time, the outbox
never sending twice (kill -9 at every crash point), pause, budget and provider errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from outreach_core.costs import budget
from outreach_core.costs.budget import LedgerEntry
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import (
    CampaignStatus,
    CampaignType,
    CostCategory,
    MessageStatus,
    PhoneFlag,
)
from outreach_core.db.tables import (
    BudgetReservation,
    CostLedger,
    Message,
    PhoneFlagRow,
    SendingNumber,
)
from outreach_core.messaging.campaigns import (
    NewCampaign,
    campaign_events,
    create_campaign,
    get_campaign,
    schedule_campaign,
    transition,
)
from outreach_core.messaging.consent import record_consent
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.sender import OutboundSms, ProviderAnswer, send_campaign
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.sandbox.twilio import (
    PRICE_PER_SEGMENT,
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SandboxTwilio,
)
from outreach_core.settings import get_settings
from outreach_core.teams import update_team_settings
from tests.helpers import fresh_sending_number
from tests.test_enrolment import add_leads

SENDER = "+12125559100"
# 15:00 UTC on a winter Thursday: 10:00 in New York, 07:00 in Los Angeles.
AFTERNOON_IN_NY = datetime(2027, 12, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def twilio(api_server, monkeypatch) -> Iterator[SandboxTwilio]:
    """The sandbox, with our settings pointing at it and its callbacks at our API."""
    with SandboxTwilio(status_interval=0.01) as sandbox:
        settings = get_settings()
        monkeypatch.setattr(settings, "twilio_account_sid", SecretStr(SANDBOX_ACCOUNT_SID))
        monkeypatch.setattr(settings, "twilio_auth_token", SecretStr(SANDBOX_AUTH_TOKEN))
        monkeypatch.setattr(settings, "twilio_base_url", sandbox.base_url)
        monkeypatch.setattr(settings, "public_base_url", api_server.base_url)
        monkeypatch.setattr(settings, "sms_per_number_per_second", 200.0)
        yield sandbox


def gateway() -> TwilioGateway:
    return TwilioGateway.from_settings()


def active_campaign(team_id: uuid.UUID, leads: list[dict[str, Any]], **extra: Any) -> uuid.UUID:
    add_leads(team_id, leads)
    number_id = uuid.uuid4()
    with tenant_session(team_id) as session:
        phone = fresh_sending_number()
        session.add(SendingNumber(team_id=team_id, id=number_id, phone_number=phone))
    new = NewCampaign(
        name="test",
        type=CampaignType.SMS,
        selection=LeadSelection(),
        template="Hi {{firstName|there}}",
        sending_number_id=number_id,
        **extra,
    )
    campaign = create_campaign(team_id, new, "ann").campaign
    schedule_campaign(team_id, campaign.id, "ann")
    transition(team_id, campaign.id, CampaignStatus.ACTIVE, "ann")
    return campaign.id


def ny(n: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        {"first_name": f"N{i}", "phone": f"+1212555{i:04d}", "zip": "10001", "state": "NY"}
        for i in range(first, first + n)
    ]


def messages(team_id: uuid.UUID, campaign_id: uuid.UUID) -> list[Message]:
    with tenant_session(team_id) as session:
        query = select(Message).where(Message.campaign_id == campaign_id).order_by(Message.lead_id)
        return list(session.scalars(query))


def in_ny(_: None = None) -> datetime:
    return AFTERNOON_IN_NY


def test_only_leads_inside_their_window_are_sent_the_rest_rescheduled(team, twilio) -> None:
    leads = ny(2) + [
        {"first_name": "C", "phone": "+13105550001", "zip": "90001", "state": "CA"},
        {"first_name": "D", "phone": "+14155550002", "zip": "94103", "state": "CA"},
    ]
    campaign_id = active_campaign(team.team_id, leads)

    stats = send_campaign(team.team_id, campaign_id, gateway(), "run-1", clock=in_ny)

    assert stats.sent == 2 and stats.rescheduled == {"quiet_hours": 2}
    by_phone = {m.to_phone: m for m in messages(team.team_id, campaign_id)}
    assert twilio.requests.created_by_to == {"+12125550000": 1, "+12125550001": 1}
    for phone in ("+13105550001", "+14155550002"):
        held = by_phone[phone]
        assert (held.status, held.block_reason) == (MessageStatus.PENDING, "quiet_hours")
        # 09:00 in Los Angeles.
        assert held.not_before == datetime(2027, 12, 3, 17, 0, tzinfo=UTC)
    # Nothing more goes out until their window opens.
    assert send_campaign(team.team_id, campaign_id, gateway(), "run-2", clock=in_ny).sent == 0


class StopArrives:
    """The real gateway; after the first send, the next lead texts STOP (as the replies
    webhook records it: a suppression of the team)."""

    def __init__(self, team_id: uuid.UUID, phone: str) -> None:
        self.inner = gateway()
        self.team_id = team_id
        self.phone = phone

    def send(self, sms: OutboundSms) -> ProviderAnswer:
        answer = self.inner.send(sms)
        with tenant_session(self.team_id) as session:
            session.merge(
                PhoneFlagRow(
                    team_id=self.team_id, phone=self.phone, flag=PhoneFlag.SUPPRESSED, reason="STOP"
                )
            )
        return answer

    def find_sent(self, sms: OutboundSms, since: datetime) -> ProviderAnswer | None:
        return self.inner.find_sent(sms, since)


def test_a_stop_received_mid_campaign_stops_the_next_send_to_that_number(team, twilio) -> None:
    campaign_id = active_campaign(team.team_id, ny(3))
    stats = send_campaign(
        team.team_id, campaign_id, StopArrives(team.team_id, "+12125550001"), "r", clock=in_ny
    )
    assert stats.sent == 2 and stats.blocked == {"suppressed": 1}
    assert twilio.requests.created_for("+12125550001") == 0
    blocked = [m for m in messages(team.team_id, campaign_id) if m.status is MessageStatus.BLOCKED]
    assert [(m.to_phone, m.block_reason) for m in blocked] == [("+12125550001", "suppressed")]


def test_callbacks_late_twice_and_out_of_order_leave_the_final_status(team, twilio) -> None:
    twilio.duplicate_callback_rate = 1.0
    twilio.out_of_order_rate = 1.0
    campaign_id = active_campaign(team.team_id, ny(5))
    assert send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny).sent == 5
    assert twilio.wait_idle(10)
    time.sleep(0.3)  # the last callbacks' requests finish in our API

    sent = messages(team.team_id, campaign_id)
    assert {m.status for m in sent} == {MessageStatus.DELIVERED}
    assert all(m.price is not None and m.provider_sid for m in sent)
    with tenant_session(team.team_id) as session:
        ledger = session.execute(
            select(func.count(), func.sum(CostLedger.amount)).where(
                CostLedger.campaign_id == campaign_id
            )
        ).one()
    # One ledger row per message, however many callbacks carried its price.
    assert ledger[0] == 5 and ledger[1] == sum(abs(m.price) for m in sent)
    assert twilio.requests.callbacks_posted > 5 * 3


def send_until_stopped(team_id: uuid.UUID, campaign_id: uuid.UUID, twilio: Any) -> list[Any]:
    """Send runs one after another, as the sensor launches them, each after the last run's
    prices came back (callbacks), until one sends nothing."""
    runs = []
    while True:
        stats = send_campaign(team_id, campaign_id, gateway(), f"r{len(runs)}", clock=in_ny)
        runs.append(stats)
        if stats.sent == 0:
            return runs
        assert twilio.wait_idle(10)
        time.sleep(0.3)  # the last callbacks' requests finish in our API


# The sandbox's price: $0.0079 a segment. Each claim holds the worst case, $0.02, until the
# price is known; a message goes out only if the budget can pay its worst case.
BUDGET_FITS = 4  # 3 x 0.0079 + 0.02 <= 0.05 < 4 x 0.0079 + 0.02


def test_the_budget_is_never_overspent_and_the_campaign_pauses_itself(team, twilio) -> None:
    campaign_id = active_campaign(team.team_id, ny(6), budget=Decimal("0.05"))
    first = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)
    # Two worst cases fit at first. Their holds never pause the campaign: the run goes on as
    # prices come back (callbacks) or stops to wait for them; it pauses only once spend
    # itself leaves no room for a worst case.
    assert first.sent >= 2
    if first.sent < BUDGET_FITS:
        assert "waiting for the prices" in (first.stopped or "")
        assert get_campaign(team.team_id, campaign_id).status is CampaignStatus.ACTIVE
    assert twilio.wait_idle(10)
    time.sleep(0.3)
    runs = [first, *send_until_stopped(team.team_id, campaign_id, twilio)]
    assert sum(r.sent for r in runs) == BUDGET_FITS
    campaign = get_campaign(team.team_id, campaign_id)
    assert campaign.status is CampaignStatus.PAUSED
    last = campaign_events(team.team_id, campaign_id)[-1]
    assert (last.actor, last.to_status) == ("system", "paused") and "budget" in last.reason
    assert twilio.requests.messages_created == BUDGET_FITS
    with tenant_session(team.team_id) as session:
        spent = session.scalar(select(func.sum(CostLedger.amount)))
    assert spent == BUDGET_FITS * PRICE_PER_SEGMENT <= Decimal("0.05")


def test_the_teams_sms_budget_pauses_a_campaign_and_prices_replace_reservations(
    team, twilio
) -> None:
    budget.set_monthly_cap(team.team_id, CostCategory.SMS, Decimal("0.05"))
    campaign_id = active_campaign(team.team_id, ny(6))  # no budget of its own
    runs = send_until_stopped(team.team_id, campaign_id, twilio)
    assert sum(r.sent for r in runs) == BUDGET_FITS
    campaign = get_campaign(team.team_id, campaign_id)
    assert campaign.status is CampaignStatus.PAUSED
    assert campaign.status_reason == "the team's monthly sms budget of $0.05 reached"
    assert twilio.wait_idle(10)
    time.sleep(0.3)  # the last callbacks' requests finish in our API
    with tenant_session(team.team_id) as session:
        # Each price booked replaced its message's reservation: nothing left held.
        assert session.scalar(select(func.count()).select_from(BudgetReservation)) == 0
        categories = session.scalars(select(CostLedger.category)).all()
    assert categories == [CostCategory.SMS] * BUDGET_FITS
    spent = sum(r.amount for r in budget.month_spend(team.team_id, _month()))
    assert 0 < spent <= Decimal("0.05")


def test_the_teams_total_budget_counts_enrichment_spend_against_sms(team, twilio) -> None:
    with tenant_session(team.team_id) as session:
        entry = LedgerEntry(
            "apollo", "people_match", 10, Decimal("0.10"), category=CostCategory.ENRICHMENT
        )
        budget.commit_by_id(session, team.team_id, None, [entry])
    budget.set_monthly_cap(team.team_id, None, Decimal("1.03"))  # $1 spent on enrichment
    campaign_id = active_campaign(team.team_id, ny(3))
    runs = send_until_stopped(team.team_id, campaign_id, twilio)
    # $1 + 0.0079 + 0.02 fits under $1.03; after two texts a worst case no longer does.
    assert sum(r.sent for r in runs) == 2
    reason = get_campaign(team.team_id, campaign_id).status_reason
    assert reason == "the team's monthly budget of $1.03 reached"


def test_first_contact_needs_consent_where_the_team_requires_it(team, twilio) -> None:
    update_team_settings(team.team_id, {"require_consent": True})
    record_consent(team.team_id, ["(212) 555-0001"], "web form")
    campaign_id = active_campaign(team.team_id, ny(3))
    stats = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)
    assert stats.sent == 1 and stats.blocked == {"no_consent": 2}
    sent = {m.to_phone: (m.status, m.block_reason) for m in messages(team.team_id, campaign_id)}
    assert sent["+12125550001"][0] is not MessageStatus.BLOCKED
    assert sent["+12125550000"] == (MessageStatus.BLOCKED, "no_consent")
    # A phone already texted (before the team began to require consent) is no first contact.
    update_team_settings(team.team_id, {"require_consent": False})
    earlier = active_campaign(team.team_id, ny(1, first=5))
    assert send_campaign(team.team_id, earlier, gateway(), "r2", clock=in_ny).sent == 1
    update_team_settings(team.team_id, {"require_consent": True})
    again = _second_step(team.team_id, earlier)
    assert send_campaign(team.team_id, earlier, gateway(), "r3", clock=in_ny).sent == 1
    assert next(m for m in messages(team.team_id, earlier) if m.id == again).status not in (
        MessageStatus.BLOCKED,
        MessageStatus.PENDING,
    )


def _second_step(team_id: uuid.UUID, campaign_id: uuid.UUID) -> uuid.UUID:
    """A follow-up (step 1) to the campaign's first lead, due now."""
    first = messages(team_id, campaign_id)[0]
    follow_up = uuid.uuid4()
    with tenant_session(team_id) as session:
        session.add(
            Message(
                team_id=team_id,
                id=follow_up,
                campaign_id=campaign_id,
                lead_id=first.lead_id,
                step=1,
                to_phone=first.to_phone,
                sending_number_id=first.sending_number_id,
                body="Following up",
                segments=1,
                not_before=AFTERNOON_IN_NY,
            )
        )
    return follow_up


def _month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


class PausesMidRun:
    """The real gateway; during the third send a person pauses the campaign (from another
    connection, as the API would)."""

    def __init__(self, team_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
        self.inner = gateway()
        self.team_id, self.campaign_id = team_id, campaign_id
        self.calls = 0
        self.paused_at: float | None = None
        self.pauser: threading.Thread | None = None

    def _pause(self) -> None:
        transition(self.team_id, self.campaign_id, CampaignStatus.PAUSED, "bob", "hold")
        self.paused_at = time.time()

    def send(self, sms: OutboundSms) -> ProviderAnswer:
        self.calls += 1
        if self.calls == 3:
            self.pauser = threading.Thread(target=self._pause)
            self.pauser.start()
            time.sleep(0.2)  # the pause is waiting for this call to finish
        return self.inner.send(sms)

    def find_sent(self, sms: OutboundSms, since: datetime) -> ProviderAnswer | None:
        return self.inner.find_sent(sms, since)


def test_nothing_is_sent_after_a_pause_is_committed(team, twilio) -> None:
    campaign_id = active_campaign(team.team_id, ny(10))
    gw = PausesMidRun(team.team_id, campaign_id)
    stats = send_campaign(team.team_id, campaign_id, gw, "r", clock=in_ny)
    assert gw.pauser is not None
    gw.pauser.join(10)
    assert stats.sent == 3 and "paused" in (stats.stopped or "")
    assert twilio.requests.messages_created == 3
    assert gw.paused_at is not None
    assert max(twilio.requests.accepted_at) <= gw.paused_at
    # The rest wait, unclaimed, for a resume.
    statuses = [m.status for m in messages(team.team_id, campaign_id)]
    assert statuses.count(MessageStatus.PENDING) == 7


def test_provider_errors_act_per_recipient_and_never_halt_the_campaign(team, twilio) -> None:
    twilio.reject("+12125550001", 21610)  # unsubscribed from us
    twilio.reject("+12125550002", 21211)  # not a valid number
    twilio.fail_delivery("+12125550003", 30006)  # a landline, reported in the callback
    campaign_id = active_campaign(team.team_id, ny(5))

    stats = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)
    assert twilio.wait_idle(10)
    time.sleep(0.3)

    assert stats.sent == 3 and stats.failed == 2
    with tenant_session(team.team_id) as session:
        flags = set(session.execute(select(PhoneFlagRow.phone, PhoneFlagRow.flag)).all())
    assert flags == {
        ("+12125550001", PhoneFlag.SUPPRESSED),
        ("+12125550002", PhoneFlag.INVALID),
        ("+12125550003", PhoneFlag.LANDLINE),
    }
    by_phone = {m.to_phone: m for m in messages(team.team_id, campaign_id)}
    assert by_phone["+12125550003"].status is MessageStatus.UNDELIVERED
    assert by_phone["+12125550004"].status is MessageStatus.DELIVERED
    assert get_campaign(team.team_id, campaign_id).status is CampaignStatus.ACTIVE


def test_a_retryable_error_is_retried_later_not_lost(team, twilio) -> None:
    twilio.inject("503")
    campaign_id = active_campaign(team.team_id, ny(2))
    stats = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)
    assert (stats.sent, stats.retried) == (1, 1)
    retried = [m for m in messages(team.team_id, campaign_id) if m.status is MessageStatus.PENDING]
    assert len(retried) == 1 and retried[0].attempts == 1
    assert retried[0].not_before > AFTERNOON_IN_NY


SEND_SCRIPT = """
import sys, uuid
from datetime import UTC, datetime
from pydantic import SecretStr
from outreach_core.settings import get_settings
from outreach_core.messaging.sender import send_campaign
from outreach_core.messaging.twilio_gateway import TwilioGateway
s = get_settings()
s.twilio_account_sid = SecretStr(sys.argv[3]); s.twilio_auth_token = SecretStr(sys.argv[4])
s.twilio_base_url = sys.argv[5]; s.public_base_url = sys.argv[6]
s.sms_per_number_per_second = 200.0
now = datetime(2027, 12, 3, 15, 0, tzinfo=UTC)
send_campaign(uuid.UUID(sys.argv[1]), uuid.UUID(sys.argv[2]), TwilioGateway.from_settings(),
              "doomed-run", clock=lambda: now)
"""


@pytest.mark.parametrize("point", ["send.before_call", "send.after_call", "send.after_commit"])
def test_kill_9_mid_batch_then_rerun_every_lead_gets_exactly_one_message(
    team, twilio, api_server, point: str
) -> None:
    campaign_id = active_campaign(team.team_id, ny(8))
    # No status callback before the rerun: the message a crash after the call left
    # `claimed` can only be found by asking the provider (its message list).
    twilio.status_interval = 60
    env = {**os.environ, "OUTREACH_CRASH_AT": f"{point}:4"}
    settings = get_settings()
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            SEND_SCRIPT,
            str(team.team_id),
            str(campaign_id),
            SANDBOX_ACCOUNT_SID,
            SANDBOX_AUTH_TOKEN,
            twilio.base_url,
            settings.public_base_url,
        ],
        env=env,
        check=False,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    before = twilio.requests.messages_created
    assert before == (3 if point == "send.before_call" else 4)

    stats = send_campaign(team.team_id, campaign_id, gateway(), "second-run", clock=in_ny)

    assert twilio.requests.created_by_to == {f"+1212555{i:04d}": 1 for i in range(8)}
    assert twilio.requests.duplicates == 0
    sent = messages(team.team_id, campaign_id)
    assert all(m.provider_sid for m in sent) and len({m.provider_sid for m in sent}) == 8
    # The message the crash left in doubt was found at the provider, not sent again.
    assert stats.recovered == (1 if point == "send.after_call" else 0)


def test_a_number_past_its_daily_limit_holds_its_messages_until_its_next_day(
    team, twilio, monkeypatch
) -> None:
    monkeypatch.setattr(get_settings(), "sms_number_daily_limit", 2)
    campaign_id = active_campaign(team.team_id, ny(4))
    stats = send_campaign(team.team_id, campaign_id, gateway(), "r", clock=in_ny)
    assert stats.sent == 2 and "rate limit" in (stats.stopped or "")
    held = [m for m in messages(team.team_id, campaign_id) if m.status is MessageStatus.PENDING]
    assert len(held) == 2 and {m.block_reason for m in held} == {"daily_limit"}
    assert all(m.not_before > AFTERNOON_IN_NY for m in held)
    # The next run finds nothing due: no run sleeps or spins until the quota comes back.
    assert send_campaign(team.team_id, campaign_id, gateway(), "r2", clock=in_ny).sent == 0
    assert twilio.requests.messages_created == 2
