"""Reconciliation against the sandbox with the real twilio client, the status callbacks
lost (posted to a closed port): messages stuck without a final status are fetched by SID
and brought to the provider's status through the callbacks' own rules (forward only, the
price booked once, error codes acted on); a SID the provider does not know is left alone
and reported; claims left in doubt by a timed-out call are found at the provider or put
back in the queue, never sent; the Dagster schedule and job run it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text, update

from outreach_assets.campaigns import TwilioResource
from outreach_assets.reconcile import (
    ReconcileConfig,
    reconcile_deliveries_job,
    reconcile_deliveries_schedule,
)
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import CampaignStatus, MessageStatus, PhoneFlag
from outreach_core.db.tables import CostLedger, Message, PhoneFlagRow
from outreach_core.messaging.campaigns import transition
from outreach_core.messaging.delivery import StatusUpdate, record_status
from outreach_core.messaging.reconcile import ReconcileStats, UnknownToProvider, reconcile_stuck
from outreach_core.messaging.sender import send_campaign
from outreach_core.messaging.twilio_client import twilio_client
from outreach_core.messaging.twilio_gateway import TwilioGateway
from outreach_core.sandbox.twilio import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxTwilio
from outreach_core.settings import get_settings
from tests.test_sending import active_campaign, in_ny, messages, ny

STUCK = timedelta(minutes=10)
PRICE = Decimal("-0.00790")  # one segment at the sandbox's price


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def twilio(monkeypatch) -> Iterator[SandboxTwilio]:
    """The sandbox, with our settings pointing at it; its callbacks go nowhere."""
    with SandboxTwilio(status_interval=0.01) as sandbox:
        settings = get_settings()
        monkeypatch.setattr(settings, "twilio_account_sid", SecretStr(SANDBOX_ACCOUNT_SID))
        monkeypatch.setattr(settings, "twilio_auth_token", SecretStr(SANDBOX_AUTH_TOKEN))
        monkeypatch.setattr(settings, "twilio_base_url", sandbox.base_url)
        monkeypatch.setattr(settings, "public_base_url", closed_port_url())
        monkeypatch.setattr(settings, "sms_per_number_per_second", 200.0)
        yield sandbox


def gateway(timeout: float | None = None) -> TwilioGateway:
    if timeout is None:
        return TwilioGateway.from_settings()
    settings = get_settings()
    assert settings.twilio_base_url is not None
    client = twilio_client(
        SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, settings.twilio_base_url, timeout=timeout
    )
    return TwilioGateway(client, settings.public_base_url)


def sent_and_lost(team_id: uuid.UUID, twilio: SandboxTwilio, n: int) -> uuid.UUID:
    """A campaign whose `n` messages went out and reached their final status at the
    provider, every callback lost: our rows still say `queued`."""
    campaign_id = active_campaign(team_id, ny(n))
    assert send_campaign(team_id, campaign_id, gateway(), "run", clock=in_ny).sent == n
    assert twilio.wait_idle(10)
    assert twilio.requests.callbacks_posted > 0
    assert twilio.requests.callbacks_failed == twilio.requests.callbacks_posted
    assert {m.status for m in messages(team_id, campaign_id)} == {MessageStatus.QUEUED}
    return campaign_id


def age(team_id: uuid.UUID, campaign_id: uuid.UUID, by: timedelta = timedelta(hours=1)) -> None:
    """Time passes: the campaign's messages have not changed for `by`."""
    with tenant_session(team_id) as session:
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id)
            .values(updated_at=func.now() - by)
        )


def ledger(team_id: uuid.UUID, campaign_id: uuid.UUID) -> list[tuple[str, Decimal]]:
    with tenant_session(team_id) as session:
        rows = session.execute(
            select(CostLedger.reference, CostLedger.amount)
            .where(CostLedger.campaign_id == campaign_id)
            .order_by(CostLedger.reference)
        )
        return [(reference or "", amount) for reference, amount in rows]


def reconcile(*teams: uuid.UUID, limit: int = 100, **extra: Any) -> ReconcileStats:
    return reconcile_stuck(gateway(), STUCK, limit, teams, **extra)


# ------------------------------------------------------------ awaiting an outcome


def test_messages_stuck_without_a_final_status_are_brought_to_the_providers(team, twilio) -> None:
    campaign_id = sent_and_lost(team.team_id, twilio, 3)

    # Not stuck yet: a callback may still come.
    assert reconcile(team.team_id) == ReconcileStats()
    age(team.team_id, campaign_id)
    fetches = twilio.requests.by_endpoint.get("GET Message", 0)

    stats = reconcile(team.team_id)

    assert (stats.checked, stats.updated, stats.unknown) == (3, {"delivered": 3}, [])
    assert twilio.requests.by_endpoint["GET Message"] == fetches + 3
    outbox = messages(team.team_id, campaign_id)
    assert {m.status for m in outbox} == {MessageStatus.DELIVERED}
    assert all(m.price == PRICE and m.price_unit == "USD" for m in outbox)
    assert ledger(team.team_id, campaign_id) == sorted(
        (f"message:{m.id}:{m.provider_sid}", abs(PRICE)) for m in outbox
    )
    # Final now: nothing more to ask, nothing booked twice.
    age(team.team_id, campaign_id)
    assert reconcile(team.team_id).checked == 0
    assert len(ledger(team.team_id, campaign_id)) == 3
    assert twilio.requests.messages_created == 3  # reconciliation never sends


def test_a_message_the_provider_does_not_know_is_left_alone_and_reported(team, twilio) -> None:
    campaign_id = sent_and_lost(team.team_id, twilio, 2)
    stranger = messages(team.team_id, campaign_id)[0]
    unknown_sid = "SM" + uuid.uuid4().hex
    with tenant_session(team.team_id) as session:
        session.execute(
            update(Message)
            .where(Message.id == stranger.id)
            .values(provider_sid=unknown_sid, status=MessageStatus.SENT)
        )
    age(team.team_id, campaign_id)
    before = messages(team.team_id, campaign_id)[0]

    stats = reconcile(team.team_id)

    assert stats.unknown == [UnknownToProvider(team.team_id, stranger.id, unknown_sid)]
    assert stats.updated == {"delivered": 1} and stats.errors == 0
    after = messages(team.team_id, campaign_id)
    untouched = (after[0].status, after[0].provider_sid, after[0].updated_at, after[0].price)
    assert untouched == (MessageStatus.SENT, unknown_sid, before.updated_at, None)
    assert after[1].status is MessageStatus.DELIVERED
    booked = [r for r, _ in ledger(team.team_id, campaign_id)]
    assert booked == [f"message:{after[1].id}:{after[1].provider_sid}"]
    # Reported again next time, still untouched.
    assert reconcile(team.team_id).unknown == stats.unknown


def test_a_provider_error_found_by_reconciliation_acts_as_in_a_callback(team, twilio) -> None:
    twilio.fail_delivery("+12125550001", 30006)  # a landline
    campaign_id = sent_and_lost(team.team_id, twilio, 2)
    age(team.team_id, campaign_id)

    stats = reconcile(team.team_id)

    assert stats.updated == {"delivered": 1, "undelivered": 1}
    by_phone = {m.to_phone: m for m in messages(team.team_id, campaign_id)}
    landline = by_phone["+12125550001"]
    assert (landline.status, landline.error_code) == (MessageStatus.UNDELIVERED, 30006)
    with tenant_session(team.team_id) as session:
        flags = set(session.execute(select(PhoneFlagRow.phone, PhoneFlagRow.flag)))
    assert flags == {("+12125550001", PhoneFlag.LANDLINE)}


def test_a_status_still_in_progress_at_the_provider_changes_nothing(team, twilio) -> None:
    twilio.status_interval = 60  # the provider has not moved on either
    campaign_id = active_campaign(team.team_id, ny(2))
    assert send_campaign(team.team_id, campaign_id, gateway(), "run", clock=in_ny).sent == 2
    age(team.team_id, campaign_id)

    stats = reconcile(team.team_id)

    assert (stats.checked, stats.unchanged, stats.updated) == (2, 2, {})
    assert {m.status for m in messages(team.team_id, campaign_id)} == {MessageStatus.QUEUED}


def test_teams_take_turns_within_the_limit_and_unnamed_teams_are_untouched(
    team, other_team, twilio
) -> None:
    mine = sent_and_lost(team.team_id, twilio, 3)
    theirs = sent_and_lost(other_team.team_id, twilio, 3)
    age(team.team_id, mine)
    age(other_team.team_id, theirs)

    stats = reconcile(team.team_id, other_team.team_id, limit=4)

    assert stats.checked == 4
    done = {
        t: sum(m.status is MessageStatus.DELIVERED for m in messages(t, c))
        for t, c in ((team.team_id, mine), (other_team.team_id, theirs))
    }
    assert done == {team.team_id: 2, other_team.team_id: 2}

    stats = reconcile(other_team.team_id)
    assert stats.checked == 1
    assert [m.status for m in messages(team.team_id, mine)].count(MessageStatus.QUEUED) == 1


def test_a_rate_limited_provider_stops_the_pass(team, twilio) -> None:
    campaign_id = sent_and_lost(team.team_id, twilio, 3)
    age(team.team_id, campaign_id)
    twilio.inject("pass", "429")

    stats = reconcile(team.team_id)

    assert stats.checked == 1 and stats.stopped and "rate limit" in stats.stopped
    statuses = [m.status for m in messages(team.team_id, campaign_id)]
    assert statuses.count(MessageStatus.DELIVERED) == 1
    assert reconcile(team.team_id).updated == {"delivered": 2}


def test_a_provider_error_leaves_the_message_for_the_next_pass(team, twilio) -> None:
    campaign_id = sent_and_lost(team.team_id, twilio, 2)
    age(team.team_id, campaign_id)
    twilio.inject("503")

    stats = reconcile(team.team_id)

    assert (stats.errors, stats.updated) == (1, {"delivered": 1})
    assert reconcile(team.team_id).updated == {"delivered": 1}


# -------------------------------------------------------------------- in doubt


def in_doubt_campaign(team_id: uuid.UUID, twilio: SandboxTwilio) -> uuid.UUID:
    """Three leads: the first call times out after the provider took the message, the
    second times out before it did, the third goes out. The campaign is then paused (no
    send run will come to recover the two claims left in doubt)."""
    campaign_id = active_campaign(team_id, ny(3))
    twilio.inject("slow:1", "timeout:1")
    stats = send_campaign(team_id, campaign_id, gateway(timeout=0.3), "run", clock=in_ny)
    assert (stats.sent, stats.retried) == (1, 2)
    assert twilio.wait_idle(10)
    transition(team_id, campaign_id, CampaignStatus.PAUSED, "ann", "hold")
    doubt = [m for m in messages(team_id, campaign_id) if m.status is MessageStatus.CLAIMED]
    assert len(doubt) == 2 and all(m.claimed_by is None for m in doubt)
    assert twilio.requests.messages_created == 2
    return campaign_id


def test_claims_in_doubt_are_found_at_the_provider_or_put_back_never_sent(team, twilio) -> None:
    campaign_id = in_doubt_campaign(team.team_id, twilio)
    assert reconcile(team.team_id).in_doubt == 0  # too recent
    age(team.team_id, campaign_id)

    stats = reconcile(team.team_id)

    assert (stats.in_doubt, stats.recovered, stats.requeued, stats.deferred) == (2, 1, 1, [])
    by_phone = {m.to_phone: m for m in messages(team.team_id, campaign_id)}
    found = by_phone["+12125550000"]
    assert found.status is MessageStatus.DELIVERED and found.provider_sid
    assert found.provider_sid == twilio.message(found.provider_sid)["sid"]  # type: ignore[index]
    lost = by_phone["+12125550001"]
    assert (lost.status, lost.claimed_by, lost.provider_sid) == (MessageStatus.PENDING, None, None)
    assert by_phone["+12125550002"].status is MessageStatus.DELIVERED
    # The recovered one's price is booked like any other.
    assert {r for r, _ in ledger(team.team_id, campaign_id)} == {
        f"message:{by_phone[p].id}:{by_phone[p].provider_sid}"
        for p in ("+12125550000", "+12125550002")
    }
    assert twilio.requests.messages_created == 2


def test_claims_are_not_put_back_while_a_send_run_may_hold_the_campaign(team, twilio) -> None:
    campaign_id = in_doubt_campaign(team.team_id, twilio)
    age(team.team_id, campaign_id)

    def in_doubt() -> set[str]:
        return {
            m.to_phone
            for m in messages(team.team_id, campaign_id)
            if m.status is MessageStatus.CLAIMED and m.claimed_by is None
        }

    # The caller knows of a live send run for the campaign.
    stats = reconcile(team.team_id, may_recover=lambda _t, _c: False)
    assert (stats.recovered, stats.requeued, stats.deferred) == (1, 0, [campaign_id])
    assert in_doubt() == {"+12125550001"}

    # A send is in flight: its transaction share-locks the campaign row.
    with tenant_session(team.team_id) as sending:
        sending.execute(text("SELECT 1 FROM campaigns WHERE id = :c FOR SHARE"), {"c": campaign_id})
        stats = reconcile(team.team_id)
    assert (stats.requeued, stats.deferred) == (0, [campaign_id])
    assert in_doubt() == {"+12125550001"}

    # A run's fresh claim in the campaign: it may be between its claim and its call.
    with tenant_session(team.team_id) as session:
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id, Message.to_phone == "+12125550002")
            .values(
                status=MessageStatus.CLAIMED,
                claimed_by="live-run",
                provider_sid=None,
                updated_at=func.now(),
            )
        )
    stats = reconcile(team.team_id)
    assert (stats.requeued, stats.deferred) == (0, [campaign_id])
    assert in_doubt() == {"+12125550001"}
    live = next(m for m in messages(team.team_id, campaign_id) if m.to_phone == "+12125550002")
    assert (live.status, live.claimed_by) == (MessageStatus.CLAIMED, "live-run")

    # Once that claim is old (its run died), the campaign's claims go back to the queue.
    age(team.team_id, campaign_id)
    stats = reconcile(team.team_id)
    assert (stats.requeued, stats.deferred) == (1, [])
    statuses = {m.to_phone: m.status for m in messages(team.team_id, campaign_id)}
    assert statuses["+12125550001"] is MessageStatus.PENDING
    assert twilio.requests.messages_created == 2


def test_a_claim_recovered_by_the_next_send_run_is_booked_and_its_error_acted_on(
    team, twilio
) -> None:
    twilio.fail_delivery("+12125550000", 30006)  # a landline, known once delivered
    campaign_id = active_campaign(team.team_id, ny(1))
    twilio.inject("slow:1")
    stats = send_campaign(team.team_id, campaign_id, gateway(timeout=0.3), "run", clock=in_ny)
    assert stats.retried == 1
    assert twilio.wait_idle(10)
    problems = []

    # The next send run asks the provider before anything else.
    assert send_campaign(team.team_id, campaign_id, gateway(), "run-2", clock=in_ny).recovered == 1
    message = messages(team.team_id, campaign_id)[0]
    assert message.status is MessageStatus.UNDELIVERED
    if (message.price, ledger(team.team_id, campaign_id)) == (None, []):
        problems.append("the price the provider answered is not booked")
    if message.error_code is None:
        problems.append("the error code is not recorded")
    # Then the provider's last callback arrives, as the webhook would apply it.
    last = twilio.requests.callbacks[-1].params
    outcome = record_status(StatusUpdate.from_callback(str(message.id), last))
    with tenant_session(team.team_id) as session:
        flags = set(session.execute(select(PhoneFlagRow.phone, PhoneFlagRow.flag)))
    if flags != {("+12125550000", PhoneFlag.LANDLINE)}:
        problems.append(f"the landline is never flagged (the callback was {outcome!r})")

    assert problems == []


# --------------------------------------------------------------------- Dagster


def test_the_schedule_starts_a_run_and_the_job_reconciles_the_partition_teams(team, twilio) -> None:
    campaign_id = sent_and_lost(team.team_id, twilio, 2)
    age(team.team_id, campaign_id)
    # A persistent (temporary) instance: a schedule's context needs its reference.
    with dg.instance_for_test() as instance:
        request = reconcile_deliveries_schedule(dg.build_schedule_context(instance=instance))
        assert isinstance(request, dg.RunRequest)
        instance.add_dynamic_partitions("teams", [str(team.team_id), "not-a-team"])

        result = reconcile_deliveries_job.execute_in_process(
            instance=instance,
            run_config=request.run_config or None,
            resources={"twilio": TwilioResource(base_url=twilio.base_url)},
        )

        assert result.success
    assert {m.status for m in messages(team.team_id, campaign_id)} == {MessageStatus.DELIVERED}


def test_the_job_reconciles_only_the_teams_its_config_names(team, other_team, twilio) -> None:
    mine = sent_and_lost(team.team_id, twilio, 1)
    theirs = sent_and_lost(other_team.team_id, twilio, 1)
    age(team.team_id, mine)
    age(other_team.team_id, theirs)
    config = ReconcileConfig(team_ids=[str(other_team.team_id)], older_than_minutes=5)
    with dg.DagsterInstance.ephemeral() as instance:
        result = reconcile_deliveries_job.execute_in_process(
            instance=instance,
            run_config=dg.RunConfig(ops={"reconcile_deliveries_op": config}),
            resources={"twilio": TwilioResource(base_url=twilio.base_url)},
        )
        assert result.success
    assert messages(team.team_id, mine)[0].status is MessageStatus.QUEUED
    assert messages(other_team.team_id, theirs)[0].status is MessageStatus.DELIVERED
