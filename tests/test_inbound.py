"""Inbound replies over real HTTP to the API, signed by the `twilio` package's
RequestValidator for OUTREACH_PUBLIC_BASE_URL + path, as Twilio signs them: routing to the
team that owns the number, opt-outs first, the inbox, auto-replies under the guardrails,
reviews, retries and the processing crash path."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from pydantic import SecretStr
from sqlalchemy import select, text
from twilio.request_validator import RequestValidator

from outreach_assets.campaigns import TwilioResource
from outreach_assets.replies import SmtpResource, replies_job
from outreach_core.db.engine import owner_engine, system_session, tenant_session
from outreach_core.db.states import (
    CampaignStatus,
    CampaignType,
    DeliverableStatus,
    FlagAction,
    InboundStatus,
    MessageKind,
    MessageStatus,
    PhoneFlag,
    Priority,
    ResponseBucket,
)
from outreach_core.db.tables import (
    Conversation,
    DeliverableJob,
    InboundMessage,
    InboxItem,
    Lead,
    Message,
    PhoneFlagEvent,
    PhoneFlagRow,
    Review,
    SendingNumber,
)
from outreach_core.inbox.retry import process_pending
from outreach_core.messaging.campaigns import (
    NewCampaign,
    create_campaign,
    schedule_campaign,
    transition,
)
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.sender import send_campaign, send_replies
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.sandbox.smtp import SandboxSmtp
from outreach_core.settings import get_settings
from tests.test_sending import active_campaign, gateway, ny, twilio  # noqa: F401

TOKEN = "inbound-test-token"
# 15:00 UTC on a winter Thursday: 10:00 in New York. 03:00 UTC: 22:00 the evening before.
MORNING_IN_NY = datetime(2027, 12, 3, 15, 0, tzinfo=UTC)
NIGHT_IN_NY = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
LEAD = "+12125550001"


class Inbox:
    """Posts inbound webhooks for one team's number, signed by the twilio package."""

    def __init__(self, base_url: str, number: str, campaign_id: uuid.UUID | None = None) -> None:
        self.base_url = base_url
        self.number = number
        self.campaign_id = campaign_id

    def post(
        self,
        params: Mapping[str, str],
        *,
        path: str = "/webhooks/twilio/sms",
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        url = get_settings().public_base_url + path
        headers = {}
        if signed:
            # The account's token, whichever fixture set it (the sandbox Twilio's or ours).
            token = get_settings().twilio_auth_token
            assert token is not None
            validator = RequestValidator(token.get_secret_value())
            headers[SIGNATURE_HEADER] = signature or validator.compute_signature(url, params)
        return httpx.post(self.base_url + path, data=dict(params), headers=headers, timeout=30)

    def sms(self, body: str, *, sid: str | None = None, from_: str = LEAD, **extra: str):  # type: ignore[no-untyped-def]
        params = {
            "MessageSid": sid or f"SM{uuid.uuid4().hex}",
            "AccountSid": "AC" + "0" * 32,
            "From": from_,
            "To": self.number,
            "Body": body,
            **extra,
        }
        return self.post(params)


@pytest.fixture
def signing(api_server, monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings = get_settings()
    monkeypatch.setattr(settings, "twilio_auth_token", SecretStr(TOKEN))
    monkeypatch.setattr(settings, "public_base_url", api_server.base_url)
    yield


def team_number(team_id: uuid.UUID) -> str:
    with tenant_session(team_id) as session:
        return session.scalars(select(SendingNumber.phone_number)).first()  # type: ignore[return-value]


@pytest.fixture
def inbox(team, api_server, signing) -> Inbox:  # type: ignore[no-untyped-def]
    """The team's campaign texted three New York leads from its number."""
    campaign_id = active_campaign(team.team_id, ny(3))
    return Inbox(api_server.base_url, team_number(team.team_id), campaign_id)


def now() -> datetime:
    return datetime.now(UTC)


def campaign_to(team_id: uuid.UUID, phone: str) -> uuid.UUID:
    """A new active campaign to the team's lead with `phone`, from the team's number."""
    with tenant_session(team_id) as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.phone == phone))
        number_id = session.scalar(select(SendingNumber.id))
    assert lead_id is not None
    new = NewCampaign(
        "again",
        CampaignType.SMS,
        LeadSelection(lead_ids=[lead_id]),
        "Hi",
        sending_number_id=number_id,
    )
    campaign = create_campaign(team_id, new, "test").campaign
    schedule_campaign(team_id, campaign.id, "test")
    transition(team_id, campaign.id, CampaignStatus.ACTIVE, "test")
    return campaign.id


def rows(team_id: uuid.UUID, table: Any, *where: Any) -> list[Any]:
    with tenant_session(team_id) as session:
        return list(session.scalars(select(table).where(*where)))


def twiml_message(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    body = response.text
    if "<Message>" not in body:
        return None
    return body.split("<Message>", 1)[1].split("</Message>", 1)[0]


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_a_confident_reply_is_classified_and_answered_at_once(team, inbox) -> None:
    answer = twiml_message(inbox.sms("Yes I'm interested, tell me more"))
    assert answer  # answered in the TwiML
    (item,) = rows(team.team_id, InboxItem)
    assert (item.classification, item.priority, item.bucket) == (
        "interested",
        Priority.WARM,
        ResponseBucket.HOT_RESPONSES,
    )
    assert item.lead_id is not None and item.campaign_id is not None
    assert item.handling == "auto_reply"
    (reply,) = rows(team.team_id, Message, Message.kind == MessageKind.AUTO_REPLY)
    assert reply.body == answer and reply.to_phone == LEAD
    (conversation,) = rows(team.team_id, Conversation)
    assert (conversation.inbound_count, conversation.outbound_count) == (1, 1)
    assert conversation.stage == "hot_response" and conversation.first_name == "N1"
    assert [h["direction"] for h in conversation.history] == ["inbound", "outbound"]


def test_unsigned_or_wrongly_signed_requests_get_403_and_store_nothing(team, inbox) -> None:
    params = {"MessageSid": "SMx", "From": LEAD, "To": inbox.number, "Body": "hi"}
    assert inbox.post(params, signed=False).status_code == 403
    assert inbox.post(params, signature="bm90LWl0").status_code == 403
    other_url = RequestValidator(TOKEN).compute_signature("https://elsewhere/x", params)
    assert inbox.post(params, signature=other_url).status_code == 403
    assert rows(team.team_id, InboundMessage) == []


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_the_same_message_sid_three_times_is_one_item_and_one_reply(team, inbox) -> None:
    answers = [twiml_message(inbox.sms("Sounds good, interested", sid="SMsame")) for _ in range(3)]
    assert answers[0] and answers[1:] == [None, None]
    assert len(rows(team.team_id, InboundMessage)) == 1
    assert len(rows(team.team_id, InboxItem)) == 1
    assert len(rows(team.team_id, Message, Message.kind != MessageKind.CAMPAIGN)) == 1


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_stop_blocks_the_next_send_and_start_allows_it_again(team, inbox, twilio) -> None:  # noqa: F811
    confirmation = twiml_message(inbox.sms("Stop!"))
    assert confirmation and "http" not in confirmation
    assert twiml_message(inbox.sms("STOP")) is None  # one confirmation only
    (flag,) = rows(team.team_id, PhoneFlagRow, PhoneFlagRow.phone == LEAD)
    assert flag.flag is PhoneFlag.SUPPRESSED and "inbound" in (flag.source or "")
    (item, _) = rows(team.team_id, InboxItem)
    assert (item.classification, item.bucket) == ("opt-out", ResponseBucket.DNC)

    assert inbox.campaign_id is not None
    stats = send_campaign(team.team_id, inbox.campaign_id, gateway(), "r1", clock=now)
    assert stats.blocked == {"suppressed": 1} and twilio.requests.created_for(LEAD) == 0
    transition(team.team_id, inbox.campaign_id, CampaignStatus.COMPLETED, "test")

    assert twiml_message(inbox.sms("START"))  # re-subscribed, and told so
    assert rows(team.team_id, PhoneFlagRow, PhoneFlagRow.phone == LEAD) == []
    actions = [e.action for e in rows(team.team_id, PhoneFlagEvent)]
    assert actions == [FlagAction.ADDED, FlagAction.REMOVED]
    again = campaign_to(team.team_id, LEAD)
    assert send_campaign(team.team_id, again, gateway(), "r2", clock=now).sent == 1
    assert twilio.requests.created_for(LEAD) == 1


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_a_message_that_merely_contains_stop_is_not_an_opt_out(team, inbox) -> None:
    inbox.sms("don't stop the music, sounds interesting")
    assert rows(team.team_id, PhoneFlagRow) == []


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_two_teams_with_the_same_contact_phone_stay_apart(
    team, other_team, inbox, api_server
) -> None:  # noqa: E501
    active_campaign(other_team.team_id, ny(3))
    theirs = Inbox(api_server.base_url, team_number(other_team.team_id))
    inbox.sms("interested, tell me more")
    theirs.sms("STOP")
    mine = rows(team.team_id, InboxItem)
    their_items = rows(other_team.team_id, InboxItem)
    assert [i.classification for i in mine] == ["interested"]
    assert [i.classification for i in their_items] == ["opt-out"]
    # The other team's opt-out suppresses the phone for that team only.
    assert rows(team.team_id, PhoneFlagRow) == []
    # Each matched its own team's lead with that phone.
    assert mine[0].lead_id is not None and their_items[0].lead_id is not None


@time_machine.travel(NIGHT_IN_NY, tick=True)
def test_a_reply_at_22_local_is_drafted_and_queued_not_sent(team, inbox) -> None:
    assert twiml_message(inbox.sms("Yes interested, what's next?")) is None
    (review,) = rows(team.team_id, Review)
    assert review.draft and len(review.alternatives) <= 3
    assert "window" in review.reason and review.incoming.startswith("Yes interested")
    assert rows(team.team_id, Message, Message.kind != MessageKind.CAMPAIGN) == []


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_an_email_capture_creates_one_deliverable_job(team, inbox) -> None:
    inbox.sms("sure send it to  Jane.Doe @ Gmail.com thanks")
    (item,) = rows(team.team_id, InboxItem)
    assert item.bucket is ResponseBucket.EMAIL_CAPTURES
    (job,) = rows(team.team_id, DeliverableJob)
    assert (job.email, job.status) == ("jane.doe@gmail.com", DeliverableStatus.PENDING)
    assert job.deliverable == "white-label-pitch" and job.queue == "sales"


def test_an_unknown_number_is_answered_and_stored_nowhere(team, inbox, api_server) -> None:
    stranger = Inbox(api_server.base_url, "+15005550000")
    assert twiml_message(stranger.sms("hello")) is None
    with system_session() as session:
        assert session.scalar(text("SELECT count(*) FROM inbound_messages")) == 0


def test_an_unknown_sender_lands_in_the_teams_inbox_unmatched(team, inbox) -> None:
    inbox.sms("who is this?", from_="+13105550199")
    (item,) = rows(team.team_id, InboxItem)
    assert item.lead_id is None and item.contact_phone == "+13105550199"


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_a_call_is_a_hot_item_and_gets_voicemail(team, inbox) -> None:
    response = inbox.post(
        {"CallSid": "CAx", "From": LEAD, "To": inbox.number}, path="/webhooks/twilio/voice"
    )
    assert response.status_code == 200 and "<Record" in response.text
    (item,) = rows(team.team_id, InboxItem)
    assert (item.classification, item.priority) == ("called-phone-line", Priority.HOT)


def test_malformed_webhooks_get_400_not_500(team, inbox) -> None:
    response = inbox.post({"From": LEAD, "To": inbox.number, "Body": "x"})
    assert response.status_code == 400 and "MessageSid" in response.json()["detail"]


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_a_processing_failure_keeps_the_message_and_the_retry_answers_it(
    team,
    inbox,
    twilio,  # noqa: F811
) -> None:
    # A real failure inside processing: the database refuses the inbox item.
    role = get_settings().app_db_role
    with owner_engine().begin() as conn:
        conn.execute(text(f'REVOKE INSERT ON inbox_items FROM "{role}"'))
    try:
        response = inbox.sms("Yes interested!")
    finally:
        with owner_engine().begin() as conn:
            conn.execute(text(f'GRANT INSERT ON inbox_items TO "{role}"'))
    assert twiml_message(response) is None  # Twilio still got its answer
    (stored,) = rows(team.team_id, InboundMessage)
    assert stored.status is InboundStatus.PROCESSING_FAILED and "permission" in stored.error
    assert rows(team.team_id, InboxItem) == []

    assert process_pending(team.team_id) == 1
    (stored,) = rows(team.team_id, InboundMessage)
    assert stored.status is InboundStatus.PROCESSED
    (reply,) = rows(team.team_id, Message, Message.kind == MessageKind.AUTO_REPLY)
    assert reply.status is MessageStatus.PENDING  # queued: the webhook had returned
    assert send_replies(team.team_id, gateway(), "replies-1", clock=now).sent == 1
    assert twilio.requests.created_for(LEAD) == 1


# ------------------------------------------------------------------------ in a burst


@pytest.fixture
def burst(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every webhook finds its worker in a burst: stored and classified, then queued."""
    monkeypatch.setattr(get_settings(), "webhook_inline_max_in_flight", 0)


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_in_a_burst_a_reply_is_classified_at_once_and_answered_by_the_replies_run(
    team,
    inbox,
    burst,
    twilio,  # noqa: F811
) -> None:
    for _ in range(2):  # the second time the webhook already knows the number's client
        assert twiml_message(inbox.sms("Yes I'm interested, tell me more")) is None
    stored = rows(team.team_id, InboundMessage)
    assert [(m.status, m.classification) for m in stored] == [
        (InboundStatus.QUEUED, "interested")
    ] * 2
    assert all(m.confidence and m.confidence >= 70 for m in stored)
    assert rows(team.team_id, InboxItem) == []  # the rest waits for the replies run

    assert process_pending(team.team_id) == 2
    assert {m.status for m in rows(team.team_id, InboundMessage)} == {InboundStatus.PROCESSED}
    assert [i.classification for i in rows(team.team_id, InboxItem)] == ["interested"] * 2
    replies = rows(team.team_id, Message, Message.kind == MessageKind.AUTO_REPLY)
    assert len(replies) == 2 and {r.status for r in replies} == {MessageStatus.PENDING}
    assert send_replies(team.team_id, gateway(), "replies-1", clock=now).sent == 2
    assert twilio.requests.created_for(LEAD) == 2
    assert process_pending(team.team_id) == 0


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_a_stop_in_a_burst_blocks_sends_at_once_and_is_confirmed_once(
    team,
    inbox,
    burst,
    twilio,  # noqa: F811
) -> None:
    assert twiml_message(inbox.sms("Stop texting me")) is None
    assert twiml_message(inbox.sms("STOP")) is None
    (flag,) = rows(team.team_id, PhoneFlagRow, PhoneFlagRow.phone == LEAD)
    assert flag.flag is PhoneFlag.SUPPRESSED and "Stop texting me" in flag.reason
    # Suppressed before the replies run processed anything: the campaign's text is blocked.
    assert inbox.campaign_id is not None
    stats = send_campaign(team.team_id, inbox.campaign_id, gateway(), "r1", clock=now)
    assert stats.blocked == {"suppressed": 1} and twilio.requests.created_for(LEAD) == 0

    assert process_pending(team.team_id) == 2
    items = rows(team.team_id, InboxItem)
    assert [(i.classification, i.handling) for i in items] == [("opt-out", "opt_out")] * 2
    assert [e.action for e in rows(team.team_id, PhoneFlagEvent)] == [FlagAction.ADDED]
    (confirmation,) = rows(team.team_id, Message, Message.kind == MessageKind.SERVICE)
    assert confirmation.status is MessageStatus.PENDING and "http" not in confirmation.body
    assert send_replies(team.team_id, gateway(), "replies-1", clock=now).sent == 1
    assert twilio.requests.created_for(LEAD) == 1  # the confirmation, and nothing else


def test_a_webhook_after_the_database_dropped_its_connections_is_stored(team, inbox, burst) -> None:
    assert inbox.sms("hello").status_code == 200  # the webhook's pool now holds a connection
    with owner_engine().begin() as conn:
        dropped = conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = :role AND datname = current_database()"
            ),
            {"role": get_settings().app_db_role},
        )
    assert dropped
    assert inbox.sms("Yes interested").status_code == 200
    stored = rows(team.team_id, InboundMessage)
    assert [m.status for m in stored] == [InboundStatus.QUEUED] * 2
    assert [m.classification for m in stored] == ["other", "interested"]


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_webhooks_at_once_are_each_stored_processed_and_answered_once(
    team,
    inbox,
    twilio,  # noqa: F811
    monkeypatch,
) -> None:
    # One in flight at a time is answered whole; any overlap is queued.
    monkeypatch.setattr(get_settings(), "webhook_inline_max_in_flight", 1)
    phones = [f"+1212555{n:04d}" for n in range(1, 4)] + [f"+1646555{n:04d}" for n in range(20)]
    bodies = ["Yes interested", "STOP", "how much does it cost?", "no thanks"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda n: twiml_message(inbox.sms(bodies[n % 4], from_=phones[n])),
                range(len(phones)),
            )
        )
    stored = rows(team.team_id, InboundMessage)
    assert len(stored) == len(phones)
    queued = [m for m in stored if m.status is InboundStatus.QUEUED]
    assert process_pending(team.team_id) == len(queued)
    assert {m.status for m in rows(team.team_id, InboundMessage)} == {InboundStatus.PROCESSED}
    items = rows(team.team_id, InboxItem)
    assert sorted(i.inbound_id for i in items) == sorted(m.id for m in stored)
    outbound = rows(team.team_id, Message, Message.reply_to.is_not(None))
    assert len({m.reply_to for m in outbound}) == len(outbound)  # at most one answer each
    # Every answer given as TwiML is recorded sent; the queued ones wait in the outbox.
    assert sum(a is not None for a in answers) == sum(
        m.status is MessageStatus.SENT for m in outbound
    )
    waiting = sum(m.status is MessageStatus.PENDING for m in outbound)
    assert send_replies(team.team_id, gateway(), "replies-1", clock=now).sent == waiting
    assert sum(twilio.requests.created_for(phone) for phone in phones) == waiting


# ------------------------------------------------------------------ working the inbox


def test_the_inbox_filters_pages_moves_and_marks_items(team, inbox, client) -> None:
    with time_machine.travel(MORNING_IN_NY, tick=True):
        inbox.sms("not interested", from_="+12125550000")
        inbox.sms("who is this?", from_="+12125550002")
        inbox.sms("STOP", from_=LEAD)
    first = client.get("/v1/inbox", params={"limit": 2}).json()
    second = client.get("/v1/inbox", params={"limit": 2, "after": first["next_cursor"]}).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert second["next_cursor"] is None
    seen = [i["body"] for i in first["items"] + second["items"]]
    assert seen == ["STOP", "who is this?", "not interested"]  # newest first
    dnc = client.get("/v1/inbox", params={"bucket": "dnc"}).json()["items"]
    assert [i["classification"] for i in dnc] == ["opt-out"]

    objection = client.get("/v1/inbox", params={"classification": "not-interested"}).json()
    item_id = objection["items"][0]["id"]
    moved = client.post(
        f"/v1/inbox/{item_id}/move", json={"bucket": "hot-responses", "reason": "called back"}
    )
    assert moved.status_code == 200
    assert moved.json()["bucket"] == "hot-responses"
    assert [
        (m["from_bucket"], m["to_bucket"], m["actor"], m["reason"])
        for m in moved.json()["movements"]
    ] == [("objections", "hot-responses", "api", "called back")]
    assert (
        client.post(f"/v1/inbox/{item_id}/status", json={"status": "read"}).json()["status"]
        == "read"
    )
    unread = client.get("/v1/inbox", params={"status": "unread"}).json()["items"]
    assert item_id not in [i["id"] for i in unread]


def test_a_conversation_shows_both_directions_in_order(team, inbox, client) -> None:
    with time_machine.travel(MORNING_IN_NY, tick=True):
        inbox.sms("interested, tell me more")
        inbox.sms("what does it cost?")
    thread = client.get(f"/v1/conversations/{LEAD}").json()
    directions = [m["direction"] for m in thread["messages"]]
    assert directions[:2] == ["outbound", "inbound"]  # the campaign's message came first
    assert directions.count("inbound") == 2 and thread["inbound_count"] == 2
    assert client.get("/v1/conversations/+19995550000").status_code == 404


def test_a_reviewed_draft_is_sent_through_the_guardrails(team, inbox, client, twilio) -> None:  # noqa: F811
    with time_machine.travel(NIGHT_IN_NY, tick=True):
        inbox.sms("yes interested, what's next?")
        (review,) = client.get("/v1/reviews").json()
        # Approved at night: queued, held until the recipient's window opens.
        held = client.post(f"/v1/reviews/{review['id']}/approve", json={"alternative": 0})
        assert held.status_code == 200, held.text
        assert held.json()["message_status"] == "pending"
        assert held.json()["block_reason"] == "quiet_hours"
        assert twilio.requests.created_for(LEAD) == 0
        again = client.post(f"/v1/reviews/{review['id']}/approve", json={})
        assert again.status_code == 409
    with time_machine.travel(MORNING_IN_NY + timedelta(days=1), tick=True):
        assert send_replies(team.team_id, gateway(), "replies", clock=now).sent == 1
    assert twilio.requests.created_for(LEAD) == 1
    (sent,) = rows(team.team_id, Message, Message.kind == MessageKind.REPLY)
    assert sent.body == review["alternatives"][0]
    assert client.get("/v1/reviews").json() == []


def test_a_second_sender_never_resends_a_claimed_message(team, inbox, client, twilio) -> None:  # noqa: F811
    """The review-approve route sends beside a replies run. While the run is sending, its
    other messages are claimed but not yet sent: the route must not take those claims for a
    dead run's and send them too. It stands aside; the run sends them."""
    with time_machine.travel(NIGHT_IN_NY, tick=True):
        inbox.sms("yes interested, what's next?")
        inbox.sms("and how much is it?")
        for review in client.get("/v1/reviews").json():
            assert client.post(f"/v1/reviews/{review['id']}/approve", json={}).status_code == 200
    morning = time_machine.travel(MORNING_IN_NY + timedelta(days=1), tick=True)
    twilio.inject("slow:3")  # the first create is answered 3 s late: the run is mid-send
    with morning, ThreadPoolExecutor(1) as pool:
        run = pool.submit(send_replies, team.team_id, gateway(), "replies-run", clock=now)
        while twilio.requests.created_for(LEAD) == 0:
            time.sleep(0.02)  # Twilio has the run's first message; its answer is on the way
        second = send_replies(team.team_id, gateway(), "api:approve", clock=now)
        assert run.result(timeout=30).sent == 2
    assert second.sent == 0 and second.stopped is not None
    assert "another run" in second.stopped
    assert twilio.requests.created_for(LEAD) == 2


def test_a_rejected_draft_is_never_sent(team, inbox, client) -> None:
    with time_machine.travel(NIGHT_IN_NY, tick=True):
        inbox.sms("yes interested")
    (review,) = client.get("/v1/reviews").json()
    assert client.post(f"/v1/reviews/{review['id']}/reject").json()["status"] == "rejected"
    assert client.post(f"/v1/reviews/{review['id']}/approve", json={}).status_code == 409
    assert rows(team.team_id, Message, Message.kind == MessageKind.REPLY) == []


def test_the_replies_job_emails_a_deliverable_once(team, inbox, twilio) -> None:  # noqa: F811
    with time_machine.travel(MORNING_IN_NY, tick=True):
        inbox.sms("sure, send it to jane.doe@example.com")
    with SandboxSmtp() as smtp:
        for _ in range(2):  # a second run finds nothing left to send
            result = replies_job.execute_in_process(
                run_config={"ops": {"replies_op": {"config": {"team_id": str(team.team_id)}}}},
                resources={
                    "twilio": TwilioResource(base_url=twilio.base_url),
                    "smtp": SmtpResource(host=smtp.host, port=smtp.port),
                },
            )
            assert result.success
        (email,) = smtp.received
        assert list(email.rcpt_tos) == ["jane.doe@example.com"]
    (job,) = rows(team.team_id, DeliverableJob)
    assert job.status is DeliverableStatus.SENT and job.email_message_id
    assert email.header("Message-ID") == job.email_message_id


@time_machine.travel(MORNING_IN_NY, tick=True)
def test_help_gets_the_teams_own_help_text_and_its_client_rules_apply(team, inbox, client) -> None:
    changed = client.patch(
        "/v1/teams/me",
        json={"client": "homeowner-advisor", "help_text": "Acme Homes: call 212-555-0100."},
    )
    assert changed.status_code == 200 and changed.json()["client"] == "homeowner-advisor"
    answer = twiml_message(inbox.sms("HELP"))
    assert answer is not None and answer.startswith("Acme Homes: call 212-555-0100.")
    assert "STOP" in answer
    inbox.sms("sure, send it to jane@example.com", from_="+12125550002")
    (job,) = rows(team.team_id, DeliverableJob)
    assert (job.deliverable, job.queue) == ("property-valuation-report", "valuation")
    bad = client.patch("/v1/teams/me", json={"client": "acme"})
    assert bad.status_code == 422
