"""Team notifications posted to the team's incoming webhook (the sandbox receiver over
loopback): once, by the sensor's run; again after a 500; never after a 404; nothing lost
when the run is killed after its claim; the team's URL set through the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from outreach_assets.definitions import defs
from outreach_assets.notify import NOTIFY_TEAM_TAG, notify_sensor
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import NotificationStatus
from outreach_core.db.tables import Team, TeamNotification
from outreach_core.notify.deliver import NO_URL, check_webhook_url, deliver_pending
from outreach_core.notify.outbox import enqueue
from outreach_core.sandbox.incoming_webhook import SandboxIncomingWebhook
from outreach_core.settings import get_settings
from outreach_core.teams import get_team, update_team_settings


@pytest.fixture
def receiver() -> Iterator[SandboxIncomingWebhook]:
    with SandboxIncomingWebhook(timeout_fault_seconds=1) as sandbox:
        yield sandbox


def point_at(team_id: uuid.UUID, receiver: SandboxIncomingWebhook, path: str = "/ops") -> None:
    update_team_settings(team_id, {"notify_webhook_url": receiver.base_url + path})


def notify(team_id: uuid.UUID, text: str, key: str | None = None) -> None:
    with tenant_session(team_id) as session:
        enqueue(session, team_id, "test", text, {"n": 1}, dedupe_key=key)


def rows(team_id: uuid.UUID) -> list[TeamNotification]:
    with tenant_session(team_id) as session:
        return list(session.scalars(select(TeamNotification)))


def run_sensor_and_job(instance: dg.DagsterInstance, team_id: uuid.UUID) -> bool:
    """Evaluate the real sensor; execute the run it asks for this team, if any."""
    result = notify_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SensorResult)
    ours = [r for r in result.run_requests or [] if r.tags[NOTIFY_TEAM_TAG] == str(team_id)]
    for request in ours:
        job = defs.resolve_job_def("notify_job")
        run = job.execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert run.success
    return bool(ours)


def test_a_notification_is_posted_once_by_the_sensors_run(team, receiver) -> None:
    point_at(team.team_id, receiver)
    notify(team.team_id, "Hot lead: +1 212 555 0001 called", key="hot:1")
    notify(team.team_id, "Hot lead: +1 212 555 0001 called", key="hot:1")  # deduplicated

    with dg.DagsterInstance.ephemeral() as instance:
        assert run_sensor_and_job(instance, team.team_id)
        # Sent: the next tick has nothing for this team.
        assert not run_sensor_and_job(instance, team.team_id)

    assert [(p.path, p.payload) for p in receiver.received] == [
        ("/ops", {"text": "Hot lead: +1 212 555 0001 called"})
    ]
    (row,) = rows(team.team_id)
    assert (row.status, row.attempts, row.error) == (NotificationStatus.SENT, 1, None)
    assert row.sent_at is not None


def test_a_receiver_answering_500_then_200_gets_it_on_the_retry(team, receiver) -> None:
    point_at(team.team_id, receiver)
    notify(team.team_id, "Budget alert")
    receiver.inject("500")
    now = datetime.now(UTC)

    first = deliver_pending(team.team_id, now=now)
    assert (first.sent, first.retrying) == (0, 1)
    (row,) = rows(team.team_id)
    assert row.status is NotificationStatus.PENDING and row.error == "HTTP 500: sandbox_fault"
    retry_seconds = get_settings().notify_retry_seconds
    assert row.next_attempt_at == now + timedelta(seconds=retry_seconds)
    # Not before its time.
    assert deliver_pending(team.team_id, now=now + timedelta(seconds=1)).retrying == 0
    assert receiver.attempts == 1

    later = deliver_pending(team.team_id, now=now + timedelta(seconds=retry_seconds + 1))
    assert later.sent == 1
    assert receiver.attempts == 2 and [p.text for p in receiver.received] == ["Budget alert"]
    (row,) = rows(team.team_id)
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)


def test_a_receiver_that_keeps_failing_is_given_up_on_after_the_attempts(
    team, receiver, monkeypatch
) -> None:
    monkeypatch.setattr(get_settings(), "notify_max_attempts", 2)
    point_at(team.team_id, receiver)
    notify(team.team_id, "Budget alert")
    receiver.inject("503", "timeout:5")
    now = datetime.now(UTC)
    assert deliver_pending(team.team_id, now=now).retrying == 1
    # The second attempt times out (the client's timeout is below the receiver's hang).
    monkeypatch.setattr(get_settings(), "notify_timeout_s", 0.5)
    assert deliver_pending(team.team_id, now=now + timedelta(hours=1)).failed == 1
    (row,) = rows(team.team_id)
    assert row.status is NotificationStatus.FAILED
    assert row.error is not None and row.error.startswith("gave up after 2 attempts: ReadTimeout")
    assert receiver.received == []


def test_a_4xx_fails_the_notification_with_the_reason_and_it_is_not_retried(team, receiver) -> None:
    point_at(team.team_id, receiver)
    notify(team.team_id, "Budget alert")
    receiver.inject("404")
    now = datetime.now(UTC)
    assert deliver_pending(team.team_id, now=now).failed == 1
    (row,) = rows(team.team_id)
    assert (row.status, row.error) == (NotificationStatus.FAILED, "HTTP 404: sandbox_fault")
    assert deliver_pending(team.team_id, now=now + timedelta(days=1)).sent == 0
    assert receiver.attempts == 1


def test_a_team_without_a_url_has_its_notifications_recorded_only(team, receiver) -> None:
    notify(team.team_id, "Budget alert")
    assert deliver_pending(team.team_id).failed == 1
    (row,) = rows(team.team_id)
    assert (row.status, row.error, row.attempts) == (NotificationStatus.FAILED, NO_URL, 0)
    assert receiver.attempts == 0


DELIVER_SCRIPT = """
import sys, uuid
from outreach_core.notify.deliver import deliver_pending
deliver_pending(uuid.UUID(sys.argv[1]))
"""


def test_nothing_is_lost_when_the_run_is_killed_after_its_claim(team, receiver) -> None:
    point_at(team.team_id, receiver)
    notify(team.team_id, "Hot lead called")
    killed = subprocess.run(
        [sys.executable, "-c", DELIVER_SCRIPT, str(team.team_id)],
        env={**os.environ, "OUTREACH_CRASH_AT": "notify.after_claim"},
        check=False,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    (row,) = rows(team.team_id)
    assert row.status is NotificationStatus.SENDING and receiver.attempts == 0
    assert row.claimed_at is not None

    # The claim is not someone else's to take while its run may still be posting...
    assert deliver_pending(team.team_id).sent == 0
    # ...and once stale it is posted, once.
    stale = row.claimed_at + timedelta(seconds=get_settings().notify_stale_seconds + 1)
    assert deliver_pending(team.team_id, now=stale).sent == 1
    assert [p.text for p in receiver.received] == ["Hot lead called"]
    (row,) = rows(team.team_id)
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)


def test_the_teams_url_is_set_through_the_api_and_must_be_http(team, client) -> None:
    url = "https://hooks.slack.com/services/T0/B0/xyz"
    shown = "https://hooks.slack.com/…"  # the path is the webhook's secret
    response = client.patch("/v1/teams/me", json={"notify_webhook_url": url})
    assert response.status_code == 200 and response.json()["notify_webhook_url"] == shown
    assert client.get("/v1/teams/me").json()["notify_webhook_url"] == shown
    assert get_team(team.team_id).notify_webhook_url == url

    for bad in ("ftp://hooks.example.com/x", "hooks.slack.com/services/x", "https://"):
        refused = client.patch("/v1/teams/me", json={"notify_webhook_url": bad})
        assert refused.status_code == 422, bad
        assert "http:// or https:// URL with a host" in refused.json()["detail"]
    spaced = client.patch("/v1/teams/me", json={"notify_webhook_url": "https://a b.example"})
    assert spaced.status_code == 422 and "without spaces" in spaced.json()["detail"]
    assert client.get("/v1/teams/me").json()["notify_webhook_url"] == shown

    cleared = client.patch("/v1/teams/me", json={"notify_webhook_url": None})
    assert cleared.status_code == 200 and cleared.json()["notify_webhook_url"] is None


@pytest.fixture
def live_mode(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    for name, value in {
        "OUTREACH_PROVIDER_MODE": "live",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "APOLLO_API_KEY": "key",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_in_live_mode_a_team_cannot_point_its_webhook_into_our_network(
    team, receiver: SandboxIncomingWebhook, live_mode: None
) -> None:
    assert check_webhook_url("https://hooks.slack.com/services/T0/B0/x")
    for internal in (
        "https://127.0.0.1:8099/x",
        "https://localhost/x",
        "https://10.0.0.8/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
    ):
        with pytest.raises(ValueError, match="non-public address"):
            check_webhook_url(internal)
    with pytest.raises(ValueError, match="https://"):
        check_webhook_url("http://hooks.slack.com/services/T0/B0/x")
    # A URL stored before (or a name that resolves inward) is not posted either.
    with tenant_session(team.team_id) as session:
        session.execute(
            update(Team)
            .where(Team.id == team.team_id)
            .values(notify_webhook_url=receiver.base_url + "/hooks/t")
        )
        enqueue(session, team.team_id, "test", "Budget alert", dedupe_key="live-1")
    stats = deliver_pending(team.team_id)
    assert (stats.sent, stats.failed) == (0, 1)
    assert receiver.received == []
    (row,) = rows(team.team_id)
    assert row.status is NotificationStatus.FAILED and "non-public" in (row.error or "")
