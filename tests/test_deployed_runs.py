"""The deployed path, as `make dev` runs it: a real Dagster daemon (sensors, the queued run
coordinator with the limits our instance configuration writes, run retries) on
PostgreSQL storage, launching real run workers through the code server; uploads posted
over HTTP to the API. In-process tests of one run at a time never saw uploads lost when
runs of one partition overlapped; these would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import psutil
import pytest
from sqlalchemy import URL, create_engine, make_url, text
from twilio.request_validator import RequestValidator

from outreach_assets.notify import NOTIFY_SENSOR_INTERVAL_SECONDS
from outreach_assets.replies import REPLIES_SENSOR_INTERVAL_SECONDS
from outreach_cli.instance import storage_environment, write_dagster_yaml
from outreach_core.db.engine import dagster_storage_url
from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.sandbox.apollo import SandboxApollo
from outreach_core.sandbox.incoming_webhook import SandboxIncomingWebhook
from outreach_core.sandbox.smtp import SandboxSmtp
from outreach_core.sandbox.twilio import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxTwilio
from outreach_core.settings import Settings, get_settings
from tests.helpers import csv_bytes

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STALE_AFTER_SECONDS = 10
# Short, so the test sees enrichment follow within its wait.
ENRICH_SETTLE_SECONDS = 5
# Slow enough to pause a campaign halfway, fast enough to finish in seconds.
SMS_PER_SECOND = 5


def _drop_database(url: str) -> None:
    admin = create_engine(
        make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Team:
    team_id: uuid.UUID
    api_key: str


class Deployment:
    """A deployment of its own, as `make dev` starts one: a fresh application database (so
    the uploads other tests left behind are not in its queue), the API in its own process,
    and a Dagster daemon on the Dagster storage named after that database."""

    def __init__(self, home: Path, apollo_url: str, twilio_url: str, smtp: SandboxSmtp) -> None:
        base = get_settings()
        assert base.database_url is not None
        self.app_db = make_url(base.database_url.get_secret_value()).set(
            database=f"{make_url(base.database_url.get_secret_value()).database}_deployed"
        )
        self.settings = Settings(home=home, database_url=self._url(self.app_db))
        rules = home / "quiet_hours.yaml"
        rules.write_text(ALL_DAY_RULES)
        self.dagster_url = dagster_storage_url(self.settings)
        dagster_home = write_dagster_yaml(self.settings)
        self.env = {
            **os.environ,
            "OUTREACH_HOME": str(home),
            "OUTREACH_DATABASE_URL": self._url(self.app_db),
            "OUTREACH_UPLOAD_STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
            "OUTREACH_ENRICH_SETTLE_SECONDS": str(ENRICH_SETTLE_SECONDS),
            "DAGSTER_HOME": str(dagster_home),
            "APOLLO_BASE_URL": apollo_url,
            "APOLLO_API_KEY": "sandbox-key",
            "TWILIO_BASE_URL": twilio_url,
            "TWILIO_ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
            "OUTREACH_SMS_PER_NUMBER_PER_SECOND": str(SMS_PER_SECOND),
            "OUTREACH_QUIET_HOURS_FILE": str(rules),
            "OUTREACH_SMTP_HOST": smtp.host,
            "OUTREACH_SMTP_PORT": str(smtp.port),
            **storage_environment(self.settings),
        }
        self.env.pop("OUTREACH_DAGSTER_DATABASE_URL", None)
        self.log = (home / "deployment.log").open("wb")
        self.processes: list[subprocess.Popen[bytes]] = []
        port = _free_port()
        # Twilio's status callbacks come to this deployment's API.
        self.env["OUTREACH_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        self.team = self.create_team("deployed")
        self._start("uvicorn", "outreach_api.main:app", "--host", "127.0.0.1", "--port", str(port))
        self.base_url = f"http://127.0.0.1:{port}"
        self._start("dagster-daemon", "run", "-w", "workspace.yaml")
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))
        _wait(self._api_up, 60, "the API to start")

    @staticmethod
    def _url(url: URL) -> str:
        return url.render_as_string(hide_password=False)

    def _start(self, program: str, *args: str) -> None:
        self.processes.append(
            subprocess.Popen(
                [str(BIN / program), *args],
                cwd=REPO,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def create_team(self, name: str) -> Team:
        """With the CLI, as a user would (it also migrates the fresh database)."""
        out = subprocess.run(
            [str(BIN / "outreach"), "team", "create", name],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        values = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return Team(uuid.UUID(values["team_id"].strip()), values["api_key"].strip())

    def client(self, team: Team) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {team.api_key}"},
            timeout=30,
        )

    def stop(self) -> None:
        # The daemon, its code server and any run worker (some start sessions of their own).
        processes = [psutil.Process(p.pid) for p in self.processes]
        processes += [c for p in list(processes) for c in p.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=30)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        for started in self.processes:
            started.wait(10)
        self.instance.dispose()
        self.log.close()
        for url in (self.dagster_url, self.app_db):
            _drop_database(self._url(url))

    twilio: SandboxTwilio
    smtp: SandboxSmtp

    def runs(self, job: str) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(dg.RunsFilter(job_name=job)))

    def log_tail(self, lines: int = 60) -> str:
        self.log.flush()
        text_lines = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text_lines[-lines:])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with (
        SandboxApollo(latency=0.01) as apollo,
        SandboxTwilio(status_interval=0.02) as twilio,
        SandboxSmtp() as smtp,
    ):
        deployed = Deployment(
            tmp_path_factory.mktemp("deployment"), apollo.base_url, twilio.base_url, smtp
        )
        deployed.twilio = twilio
        deployed.smtp = smtp
        try:
            yield deployed
        finally:
            deployed.stop()


@pytest.fixture
def deployed_team(deployment: Deployment) -> Team:
    return deployment.create_team(f"team-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def deployed_client(deployment: Deployment, deployed_team: Team) -> Iterator[httpx.Client]:
    with deployment.client(deployed_team) as client:
        yield client


def _wait(
    condition: Callable[[], bool],
    seconds: float,
    what: str,
    detail: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}\n{detail()}")


def _post(client: httpx.Client, data: bytes, name: str) -> str:
    response = client.post(
        "/v1/uploads",
        files={"file": (name, data, "text/csv")},
        data={"bucket_id": "ny-construction-plumbers"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["upload_id"])


def _statuses(client: httpx.Client, ids: list[str]) -> list[dict]:
    return [client.get(f"/v1/uploads/{i}").json() for i in ids]


def test_ten_uploads_of_one_partition_posted_at_once_all_complete_and_balance(
    deployment: Deployment, deployed_client: httpx.Client, deployed_team: Team
) -> None:
    client, team = deployed_client, deployed_team
    files = [
        csv_bytes(
            [{"Phone": f"2125{i:02d}{n:04d}", "Name": f"Lead {i}-{n}"} for n in range(100)]
            + [{"Phone": "not a phone", "Name": "Rejected"}]
        )
        for i in range(10)
    ]
    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(lambda f: _post(client, f[1], f"list-{f[0]}.csv"), enumerate(files)))

    def final() -> bool:
        return all(u["status"] in ("completed", "failed") for u in _statuses(client, ids))

    def detail() -> str:
        states = [(u["status"], u["error"]) for u in _statuses(client, ids)]
        runs = [(r.run_id[:8], r.status.value) for r in deployment.runs("ingest_job")]
        return f"uploads: {states}\nruns: {runs}\n{deployment.log_tail()}"

    _wait(final, 150, "ten uploads to be final", detail)
    done = _statuses(client, ids)
    assert [u["status"] for u in done] == ["completed"] * 10, [u["error"] for u in done]
    assert all(u["accepted_rows"] == 100 and u["rejected_rows"] == 1 for u in done)
    assert sum(u["inserted_leads"] for u in done) == 1000
    assert all(u["inserted_leads"] + u["merged_rows"] == u["accepted_rows"] for u in done)
    leads, after = 0, None
    while True:
        page = client.get("/v1/leads", params={"limit": 500, **({"after": after} if after else {})})
        leads += len(page.json()["items"])
        after = page.json()["next_after"]
        if after is None:
            break
    assert leads == 1000

    partition = f"construction|{team.team_id}"
    ingests = [r for r in deployment.runs("ingest_job") if r.tags["dagster/partition"] == partition]
    assert 1 <= len(ingests) <= 10
    assert all(r.tags["outreach/pool"] == "ingest" for r in ingests)

    # Enrichment is coalesced: one run per partition waits at a time, not one per upload.
    def enrichments() -> list[dg.DagsterRun]:
        runs = deployment.runs("enrich_job")
        return [r for r in runs if r.tags.get("dagster/partition") == partition]

    _wait(
        lambda: bool(enrichments()) and all(r.is_finished for r in enrichments()),
        60,
        "enrichment to run",
    )
    assert len(enrichments()) <= 2
    assert all(r.status is dg.DagsterRunStatus.SUCCESS for r in enrichments())


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's steps execute in, as the run's own event log reports it."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is not None and "Executing steps in process" in (event.message or ""):
            pid = event.engine_event_data.metadata.get("pid")
            return int(pid.value) if pid is not None else None
    return None


def test_a_run_worker_killed_mid_upload_is_noticed_and_the_upload_completes(
    deployment: Deployment, deployed_client: httpx.Client, deployed_team: Team
) -> None:
    client, team = deployed_client, deployed_team
    """SIGKILL of the run's worker while it loads: Dagster still shows the run as started,
    but its lease on the upload goes stale; the watchdog puts the upload back in the
    queue, marks the dead run failed, and a new run completes it with every row."""
    from outreach_core.sandbox.synthetic import generate

    data = generate(60_000, seed=5).write_csv().encode()
    upload_id = _post(client, data, "big.csv")
    _wait(
        lambda: client.get(f"/v1/uploads/{upload_id}").json()["status"] == "processing",
        90,
        "the upload to be processing",
    )
    [run] = [
        r
        for r in deployment.runs("ingest_job")
        if r.tags.get("dagster/partition") == f"construction|{team.team_id}"
    ]
    pid = _run_worker_pid(deployment.instance, run.run_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    _wait(
        lambda: client.get(f"/v1/uploads/{upload_id}").json()["status"] in ("completed", "failed"),
        150,
        "the upload to be final after the kill",
    )
    done = client.get(f"/v1/uploads/{upload_id}").json()
    assert done["status"] == "completed", done["error"]
    assert done["accepted_rows"] == done["inserted_leads"] + done["merged_rows"]
    dead = deployment.instance.get_run_by_id(run.run_id)
    assert dead is not None and dead.status is dg.DagsterRunStatus.FAILURE


@dg.op
def _noop() -> None:
    pass


@dg.job
def _ping() -> None:
    _noop()


def test_two_deployments_on_one_server_share_no_runs_cursors_or_partitions(tmp_path) -> None:
    """Production and staging on one PostgreSQL server: each has its own Dagster storage,
    named after its application database."""
    base = get_settings()
    assert base.database_url is not None
    server = make_url(base.database_url.get_secret_value())
    homes = {}
    for name in ("production", "staging"):
        app_db = server.set(database=f"outreach_{name}_{uuid.uuid4().hex[:6]}")
        settings = Settings(
            home=tmp_path / name, database_url=app_db.render_as_string(hide_password=False)
        )
        homes[name] = (write_dagster_yaml(settings), dagster_storage_url(settings))
    production, staging = (dg.DagsterInstance.from_config(str(h)) for h, _ in homes.values())
    try:
        assert homes["production"][1].database != homes["staging"][1].database
        production.add_dynamic_partitions("teams", ["team-of-production"])
        run = _ping.execute_in_process(instance=production, tags={"dagster/run_key": "upload-1"})
        production.run_storage.set_cursor_values({"upload_sensor": "42"})

        assert production.get_run_by_id(run.run_id) is not None
        assert staging.get_runs() == []
        assert staging.get_dynamic_partitions("teams") == []
        assert staging.run_storage.get_cursor_values({"upload_sensor"}) == {}
        assert production.get_dynamic_partitions("teams") == ["team-of-production"]
    finally:
        for instance in (production, staging):
            instance.dispose()
        for _, url in homes.values():
            _drop_database(url.render_as_string(hide_password=False))


# (ZIP, state, phone prefix) around the world of US time zones: at any hour one of them is
# inside its 09:00-20:00 window.
# The deployment's quiet hours: open all day (its own rules file, as an operator may set
# one), so whether its sensor sends does not depend on the hour the suite runs at; the
# windows themselves are tested with a frozen clock in test_sending.py.
ALL_DAY_RULES = 'default: {start: "00:00", end: "23:59"}\n'


def _campaign(client: httpx.Client, campaign_id: str) -> dict:
    return client.get(f"/v1/campaigns/{campaign_id}").json()


def test_a_campaign_is_sent_by_the_sensor_and_a_pause_stops_it_until_resumed(
    deployment: Deployment, deployed_client: httpx.Client, deployed_team: Team
) -> None:
    """Leads uploaded over HTTP, a campaign created with a bought number and scheduled:
    the daemon's sensor starts it and its send run texts every lead once; a pause stops
    the sending for as long as it lasts; the campaign completes by itself."""
    client = deployment.client(deployed_team)
    zip_code, state, prefix = "10001", "NY", "+1212"
    leads = 20
    rows = [
        {"Phone": f"{prefix}555{n:04d}", "First Name": f"Lead{n}", "Zip": zip_code, "State": state}
        for n in range(leads)
    ]
    upload_id = _post(client, csv_bytes(rows), "leads.csv")
    _wait(
        lambda: client.get(f"/v1/uploads/{upload_id}").json()["status"] == "completed",
        120,
        "the leads to be ingested",
    )
    created = client.post(
        "/v1/campaigns",
        json={
            "name": "deployed",
            "template": "Hi {{firstName}}, quick question about your plumbing",
            "selection": {"bucket_id": "ny-construction-plumbers"},
            "provision_number": True,
            "area_code": "212",
        },
    ).json()
    assert created["added"] == leads, created
    campaign_id = created["campaign"]["id"]
    twilio = deployment.twilio
    before = twilio.requests.messages_created
    assert client.post(f"/v1/campaigns/{campaign_id}/schedule").status_code == 200

    _wait(
        lambda: twilio.requests.messages_created - before >= 3,
        120,
        "the sensor to start sending",
        lambda: f"{_campaign(client, campaign_id)}\n{deployment.log_tail()}",
    )
    assert client.post(f"/v1/campaigns/{campaign_id}/pause").status_code == 200
    held = twilio.requests.messages_created
    time.sleep(3)
    assert twilio.requests.messages_created == held, "a text went out after the pause"
    assert _campaign(client, campaign_id)["status"] == "paused"

    assert client.post(f"/v1/campaigns/{campaign_id}/resume").status_code == 200
    _wait(
        lambda: _campaign(client, campaign_id)["status"] == "completed",
        120,
        "the campaign to complete",
        lambda: f"{_campaign(client, campaign_id)}\n{deployment.log_tail()}",
    )
    _wait(
        lambda: _campaign(client, campaign_id)["counts"]["delivered"] == leads,
        30,
        "every delivery callback",
    )
    ours = {k: v for k, v in twilio.requests.created_by_to.items() if k.startswith(prefix + "555")}
    assert len(ours) == leads and set(ours.values()) == {1}
    sends = [
        r
        for r in deployment.runs("campaign_send_job")
        if r.tags.get("outreach/campaign") == campaign_id
    ]
    assert sends and all(r.status is dg.DagsterRunStatus.SUCCESS for r in sends)


def test_replies_reach_the_inbox_and_the_daemon_emails_the_deliverable_once(
    deployment: Deployment, deployed_team: Team
) -> None:
    """A number bought for a campaign; a reply with an email posted to the deployed API three
    times at once (Twilio retrying): one inbox item, at most one answer; the daemon's
    replies sensor emails the deliverable once."""
    client = deployment.client(deployed_team)
    created = client.post(
        "/v1/campaigns",
        json={"name": "replies", "template": "Hi", "provision_number": True, "area_code": "212"},
    ).json()
    number_id = created["campaign"]["sending_number_id"]
    assert number_id, created
    owner = create_engine(deployment._url(deployment.app_db))
    with owner.connect() as conn:
        to = conn.scalar(
            text("SELECT phone_number FROM sending_numbers WHERE id = :i"), {"i": number_id}
        )
    owner.dispose()
    url = deployment.base_url + "/webhooks/twilio/sms"
    params = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": "+13105550123",
        "To": to,
        "Body": "sure, send it to owner@example.com",
    }
    signature = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(url, params)
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(url, data=params, headers={SIGNATURE_HEADER: signature}),
                range(3),
            )
        )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert sum("<Message>" in a.text for a in answers) <= 1
    items = client.get("/v1/inbox").json()["items"]
    assert [i["classification"] for i in items] == ["email-capture"]
    _wait(
        lambda: len(deployment.smtp.received) >= 1,
        120,
        "the replies sensor to email the deliverable",
        deployment.log_tail,
    )
    time.sleep(2 * REPLIES_SENSOR_INTERVAL_SECONDS)  # another tick finds nothing to send
    (email,) = deployment.smtp.received
    assert list(email.rcpt_tos) == ["owner@example.com"]


def test_the_daemon_posts_a_team_notification_to_the_teams_webhook_once(
    deployment: Deployment, deployed_team: Team
) -> None:
    """A notification recorded (as a budget alert or a workflow step records one) is posted
    to the team's incoming webhook by the daemon's notify sensor and its run, once."""
    with SandboxIncomingWebhook() as receiver, deployment.client(deployed_team) as client:
        url = f"{receiver.base_url}/deployed"
        assert client.patch("/v1/teams/me", json={"notify_webhook_url": url}).status_code == 200
        owner = create_engine(deployment._url(deployment.app_db))
        with owner.begin() as conn:
            team = str(deployed_team.team_id)
            conn.execute(text("SELECT set_config('app.team_id', :t, true)"), {"t": team})
            conn.execute(
                text(
                    "INSERT INTO team_notifications (team_id, id, kind, text, dedupe_key) "
                    "VALUES (:t, :i, 'test', 'Hot lead called', 'deployed:1')"
                ),
                {"t": team, "i": uuid.uuid4()},
            )
        owner.dispose()
        _wait(
            lambda: len(receiver.received) >= 1,
            120,
            "the notify sensor to post the notification",
            deployment.log_tail,
        )
        time.sleep(2 * NOTIFY_SENSOR_INTERVAL_SECONDS)  # later ticks find nothing to post
        assert [(p.path, p.text) for p in receiver.received] == [("/deployed", "Hot lead called")]
