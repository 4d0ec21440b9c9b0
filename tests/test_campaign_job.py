"""A campaign created from the Dagster UI's launchpad: `create_campaign_job` run for real
(in process), buying its number from the sandbox Twilio."""

from __future__ import annotations

from typing import Any

import dagster as dg

from outreach_assets.campaigns import TwilioResource
from outreach_assets.definitions import defs
from outreach_core.db.states import CampaignStatus
from outreach_core.messaging.campaigns import campaign_events, get_campaign
from tests.test_enrolment import add_leads
from tests.test_sending import ny, twilio  # noqa: F401  (the fixture)


def run(team_id: Any, sandbox_url: str, **config: Any) -> dg.ExecuteInProcessResult:
    job = defs.get_job_def("create_campaign_job")
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            run_config={
                "ops": {"create_campaign_op": {"config": {"team_id": str(team_id), **config}}}
            },
            instance=instance,
            resources={"twilio": TwilioResource(base_url=sandbox_url)},
            raise_on_error=False,
        )


def test_the_launchpad_creates_a_campaign_with_a_bought_number(team, twilio) -> None:  # noqa: F811
    add_leads(team.team_id, [*ny(3), {"first_name": "NoPhone", "phone": None}])
    result = run(
        team.team_id,
        twilio.base_url,
        name="from dagster",
        template="Hi {{firstName|there}}",
        budget="5.00",
        schedule=True,
    )
    assert result.success
    campaign_id = result.output_for_node("create_campaign_op")
    events = result.events_for_node("create_campaign_op")
    metadata = next(e for e in events if e.event_type_value == "STEP_OUTPUT").step_output_data
    shown = {k: v.value for k, v in metadata.metadata.items()}
    assert shown["leads_added"] == 3 and shown["left_out"] == {"no_phone": 1}
    assert shown["status"] == "scheduled"
    campaign = get_campaign(team.team_id, campaign_id)
    assert campaign.status is CampaignStatus.SCHEDULED and campaign.sending_number_id
    assert {e.actor for e in campaign_events(team.team_id, campaign.id)} == {"dagster"}


def test_a_bad_template_fails_the_run_with_the_reason(team, twilio) -> None:  # noqa: F811
    result = run(team.team_id, twilio.base_url, name="bad", template="Hi {{nickname}}")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "nickname" in failure.step_failure_data.error.message
