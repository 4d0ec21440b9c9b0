"""Follow-ups at the deployed level, as `make dev` runs them: a team's workflow applied with
the CLI, a signed reply posted to the API, and the real Dagster daemon's workflow sensor
scheduling the execution and launching the run that queues the follow-up, which the
replies sensor's run sends to the sandbox Twilio. Reuses the deployment of
tests/test_deployed_runs.py, with the workflow sensor ticking every second."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from outreach_core.messaging.twilio_client import SIGNATURE_HEADER
from outreach_core.sandbox.apollo import SandboxApollo
from outreach_core.sandbox.smtp import SandboxSmtp
from outreach_core.sandbox.twilio import SANDBOX_AUTH_TOKEN, SandboxTwilio
from tests.test_deployed_runs import BIN, REPO, Deployment, Team, _wait

CONTACT = "+13105550142"
WORKFLOW = """
workflows:
  - name: deployed-follow-up
    trigger:
      classification: interested
      email_provided: false
    steps:
      - action: send_sms
        text: "Following up, {{firstName|there}}: any questions about the offer?"
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with (
        pytest.MonkeyPatch.context() as env,
        SandboxApollo(latency=0.01) as apollo,
        SandboxTwilio(status_interval=0.02) as twilio,
        SandboxSmtp() as smtp,
    ):
        # Read by the daemon's code server when it loads the sensor.
        env.setenv("OUTREACH_WORKFLOW_TICK_SECONDS", "1")
        deployed = Deployment(
            tmp_path_factory.mktemp("deployment"), apollo.base_url, twilio.base_url, smtp
        )
        deployed.twilio = twilio
        deployed.smtp = smtp
        try:
            yield deployed
        finally:
            deployed.stop()


def cli(deployment: Deployment, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "outreach"), *args],
        cwd=REPO,
        env=deployment.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def owner_rows(deployment: Deployment, sql: str, **params: object) -> list[dict[str, object]]:
    owner = create_engine(deployment._url(deployment.app_db))
    try:
        with owner.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]
    finally:
        owner.dispose()


def test_the_daemons_workflow_sensor_sends_a_follow_up_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    team: Team = deployment.create_team(f"followups-{uuid.uuid4().hex[:6]}")
    client = deployment.client(team)
    workflows = tmp_path / "workflows.yaml"
    workflows.write_text(WORKFLOW)
    assert "created deployed-follow-up" in cli(
        deployment, "workflows", "apply", str(workflows), "--team", str(team.team_id)
    )
    cli(
        deployment,
        *("team", "consent", "--team", str(team.team_id), "--phone", CONTACT),
        *("--source", "asked for a callback on the website"),
    )
    created = client.post(
        "/v1/campaigns",
        json={"name": "numbers", "template": "Hi", "provision_number": True, "area_code": "212"},
    ).json()
    number_id = created["campaign"]["sending_number_id"]
    assert number_id, created
    (number,) = owner_rows(
        deployment, "SELECT phone_number FROM sending_numbers WHERE id = :i", i=number_id
    )

    url = deployment.base_url + "/webhooks/twilio/sms"
    params = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": CONTACT,
        "To": str(number["phone_number"]),
        "Body": "yes, I'm interested",
    }
    signature = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(url, params)
    assert httpx.post(url, data=params, headers={SIGNATURE_HEADER: signature}).status_code == 200

    twilio: SandboxTwilio = deployment.twilio

    def detail() -> str:
        executions = owner_rows(
            deployment,
            "SELECT status, reason, due_at FROM workflow_executions WHERE team_id = :t",
            t=team.team_id,
        )
        runs = [(r.job_name, r.status.value) for r in deployment.instance.get_runs(limit=10)]
        return f"executions: {executions}\nruns: {runs}\n{deployment.log_tail()}"

    _wait(lambda: twilio.requests.created_for(CONTACT) >= 1, 120, "the follow-up", detail)
    time.sleep(3)  # a few more ticks of both sensors: nothing more goes out
    assert twilio.requests.created_for(CONTACT) == 1

    (message,) = owner_rows(
        deployment,
        "SELECT body, provider_sid, status, workflow_execution_id FROM messages "
        "WHERE team_id = :t AND kind = 'follow_up'",
        t=team.team_id,
    )
    assert message["body"] == "Following up, there: any questions about the offer?"
    sent = twilio.message(str(message["provider_sid"]))
    assert sent is not None and sent["body"] == message["body"]
    (execution,) = owner_rows(
        deployment,
        "SELECT id, status FROM workflow_executions WHERE team_id = :t",
        t=team.team_id,
    )
    assert (execution["id"], execution["status"]) == (message["workflow_execution_id"], "completed")
    runs = [
        r
        for r in deployment.instance.get_runs(dg.RunsFilter(job_name="workflows_job"))
        if r.tags.get("outreach/workflows_team") == str(team.team_id)
    ]
    assert runs and all(r.status is dg.DagsterRunStatus.SUCCESS for r in runs)
