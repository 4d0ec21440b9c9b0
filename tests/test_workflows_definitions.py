"""Workflow definitions as YAML: `outreach workflows apply FILE` (the real CLI) creates or
updates a team's workflows, or refuses the whole file with a message naming the file, the
workflow and the field; the defaults a team gets when it has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach_cli.cli import app
from outreach_core.workflows.definitions import (
    WorkflowFileError,
    default_workflows,
    list_workflows,
    load_workflow_file,
)

GOOD = """
workflows:
  - name: nudge
    description: A second nudge to interested contacts.
    trigger:
      classification: [interested, question]
      hours_since_last_message: 5
    steps:
      - action: send_sms
        text: "Hi {{firstName|there}}, still interested?"
      - action: tag_lead
        tag: nudged
        delay_hours: 1
  - name: email-them
    trigger: {classification: email-capture, email_provided: true}
    steps:
      - {action: send_email, subject: "Your report", text: "Here it is, {{firstName|friend}}."}
      - {action: move_to_bucket, bucket: email-captures}
      - {action: update_lead_score, event: email-capture}
      - {action: notify_team, text: "{contact} asked for the report"}
"""

runner = CliRunner()


def apply(team, path: Path):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app, ["workflows", "apply", str(path), "--team", str(team.team_id)], terminal_width=200
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workflows.yaml"
    path.write_text(text)
    return path


def names(team) -> list[str]:  # type: ignore[no-untyped-def]
    return [w.name for w in list_workflows(team.team_id)]


def test_a_file_is_applied_and_applied_again_updates_it(team, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    first = apply(team, path)
    assert first.exit_code == 0, first.output
    assert "created nudge" in first.output and "created email-them" in first.output
    assert names(team) == ["email-them", "nudge"]

    runner.invoke(app, ["workflows", "disable", "nudge", "--team", str(team.team_id)])
    again = apply(team, write(tmp_path, GOOD.replace("still interested?", "any questions?")))
    assert "updated nudge" in again.output
    (nudge,) = [w for w in list_workflows(team.team_id) if w.name == "nudge"]
    assert nudge.steps[0]["text"] == "Hi {{firstName|there}}, any questions?"
    # The file says nothing of `enabled`: the switch someone turned off stays off.
    assert nudge.enabled is False and nudge.source == str(path)

    listed = runner.invoke(app, ["workflows", "list", "--team", str(team.team_id)])
    assert listed.exit_code == 0 and "nudge" in listed.output and "email-them" in listed.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("classification: [interested, question]", "classification: intrested"),
            "workflow 'nudge': trigger.classification.0: Input should be 'email-capture'",
        ),
        (
            ("hours_since_last_message: 5", "hours_since_last_mesage: 5"),
            "workflow 'nudge': trigger.hours_since_last_mesage: Extra inputs are not permitted",
        ),
        (
            ("hours_since_last_message: 5", "hours_since_last_message: -5"),
            "workflow 'nudge': trigger.hours_since_last_message: Input should be greater than",
        ),
        (
            ("{{firstName|there}}, still", "{{firstname}}, still"),
            "workflow 'nudge': steps.0.text: template: unknown template variable 'firstname'",
        ),
        (
            ("action: tag_lead", "action: tag_leads"),
            "workflow 'nudge': steps.1: Input tag 'tag_leads' found using 'action' does not",
        ),
        (
            ('"{contact} asked', '"{phone} asked'),
            "workflow 'email-them': steps.3.text: unknown field {phone}: use {classification},",
        ),
        (
            ("event: email-capture", "event: spammed"),
            "workflow 'email-them': steps.2: event 'spammed' has no scoring rule",
        ),
        (
            ("name: email-them", "name: nudge"),
            "workflows: workflow name 'nudge' appears twice",
        ),
        (
            ("hours_since_last_message: 5", "hours_since_last_message: 80"),
            "workflow 'nudge': trigger: max_item_age_hours (72) must be longer than the hours",
        ),
        (("name: nudge", "name: nudge me"), "workflow 'nudge me': name: String should match"),
    ],
)
def test_a_bad_workflow_refuses_the_whole_file_naming_file_workflow_and_field(
    team, tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    result = apply(team, path)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert f"error: {path}: {expected}" in output, output
    assert "nothing was applied" in output
    # Not even the good workflow of the file: the team still has only the defaults.
    assert names(team) == sorted(w.name for w in default_workflows().workflows)


def test_files_that_are_no_workflow_files_are_refused_clearly(tmp_path: Path) -> None:
    for text, expected in (
        ("workflows: [", "not valid YAML"),
        ("- just a list", "(top level): Input should be a valid dictionary"),
        ("workflows: []", "workflows: List should have at least 1 item"),
        ("workflows:\n  - name: x\n    trigger: {classification: other}\n", "workflow 'x': steps"),
    ):
        with pytest.raises(WorkflowFileError) as error:
            load_workflow_file(write(tmp_path, text))
        assert str(error.value).startswith(str(tmp_path)) and expected in str(error.value)
    with pytest.raises(WorkflowFileError, match="cannot be read"):
        load_workflow_file(tmp_path / "missing.yaml")


def test_the_defaults_are_installed_once_for_a_team_with_none(team) -> None:
    defaults = sorted(w.name for w in default_workflows().workflows)
    assert defaults == ["ask-for-email", "hot-lead-callback", "report-check", "unanswered-question"]
    assert names(team) == defaults
    assert names(team) == defaults
    assert {w.source for w in list_workflows(team.team_id)} == {"defaults"}


def test_unknown_workflows_and_teams_are_refused(team) -> None:
    result = runner.invoke(app, ["workflows", "disable", "nope", "--team", str(team.team_id)])
    assert result.exit_code == 2 and "no workflow 'nope' in your team" in result.output
