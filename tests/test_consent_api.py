"""Team settings and consent over HTTP, and from the CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from outreach_cli.cli import app
from outreach_core.db.engine import tenant_session
from outreach_core.db.states import PhoneFlag
from outreach_core.db.tables import PhoneFlagRow


def consented(team_id) -> set[str]:  # type: ignore[no-untyped-def]
    with tenant_session(team_id) as session:
        rows = session.query(PhoneFlagRow).filter(PhoneFlagRow.flag == PhoneFlag.CONSENTED)
        return {r.phone for r in rows}


def test_a_team_turns_on_consent_and_records_it_for_its_own_phones(
    client, team, other_team
) -> None:
    assert client.get("/v1/teams/me").json()["require_consent"] is False
    turned_on = client.patch("/v1/teams/me", json={"require_consent": True})
    assert turned_on.status_code == 200 and turned_on.json()["require_consent"] is True
    assert client.patch("/v1/teams/me", json={"require_consent": "maybe"}).status_code == 422

    body = {"phones": ["+12125550001", "(212) 555-0001", "212-555-0002"], "source": "web form"}
    answer = client.post("/v1/consents", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 2, "already": 0}
    assert client.post("/v1/consents", json=body).json() == {"recorded": 0, "already": 2}
    assert consented(team.team_id) == {"+12125550001", "+12125550002"}
    assert consented(other_team.team_id) == set()

    # One bad phone: nothing is recorded, and the answer names it.
    bad = client.post("/v1/consents", json={"phones": ["+12125550003", "12"], "source": "x"})
    assert bad.status_code == 422 and "'12'" in bad.json()["detail"]
    assert "+12125550003" not in consented(team.team_id)
    assert client.post("/v1/consents", json={"phones": [], "source": "x"}).status_code == 422
    assert client.post("/v1/consents", json={"phones": ["+12125550003"]}).status_code == 422

    assert client.delete("/v1/consents/+12125550002").status_code == 204
    assert client.delete("/v1/consents/+12125550002").status_code == 404
    assert consented(team.team_id) == {"+12125550001"}


def test_the_cli_sets_consent_and_the_setting(team) -> None:
    runner = CliRunner()
    opt = ["--team", str(team.team_id)]
    shown = runner.invoke(app, ["team", "settings", *opt, "--require-consent"])
    assert shown.exit_code == 0 and "require_consent: True" in shown.output
    added = runner.invoke(
        app, ["team", "consent", *opt, "--phone", "+12125550009", "--source", "call"]
    )
    assert added.exit_code == 0 and "recorded for 1" in added.output
    bad = runner.invoke(app, ["team", "consent", *opt, "--phone", "nope", "--source", "call"])
    assert bad.exit_code == 2 and "not a valid phone number" in bad.output
