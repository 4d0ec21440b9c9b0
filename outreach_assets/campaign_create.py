"""Create a campaign from the Dagster UI: `create_campaign_job`'s launchpad takes the same
fields as `POST /v1/campaigns`, and the run's metadata and log say what was created, how many
leads were added and how many were left out, by reason. The rules are core's."""

# No `from __future__ import annotations`: Dagster reads the op's config annotation at runtime.

import uuid
from datetime import datetime
from decimal import Decimal

import dagster as dg
from pydantic import Field

from outreach_assets.campaigns import TwilioResource
from outreach_core.db.states import CampaignType
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import (
    NewCampaign,
    NotSendable,
    create_campaign,
    get_campaign,
    schedule_campaign,
)
from outreach_core.messaging.enrolment import LeadSelection
from outreach_core.messaging.numbers import provision_for_campaign
from outreach_core.messaging.templates import TemplateError

# Who the audit log names for a campaign made here.
DAGSTER_ACTOR = "dagster"


class CreateCampaignConfig(dg.Config):
    team_id: str = Field(description="The team's id (`outreach team create` prints it)")
    name: str
    template: str = Field(description="The message, e.g. 'Hi {{firstName|there}}'")
    type: CampaignType = CampaignType.SMS
    bucket_id: str | None = None
    sector: str | None = None
    state: str | None = None
    city: str | None = None
    tags: list[str] | None = None
    min_score: int | None = None
    lead_ids: list[int] | None = None
    daily_limit: int = defaults.CAMPAIGN_DAILY_LIMIT
    budget: str | None = Field(default=None, description="Dollars, e.g. '25.00'")
    persona: str = defaults.CAMPAIGN_PERSONA
    schedule_start: str | None = Field(default=None, description="ISO 8601; default: now")
    messaging_service_sid: str | None = None
    provision_number: bool = Field(
        default=True, description="Buy a number near the leads (unless a Messaging Service)"
    )
    area_code: str | None = None
    schedule: bool = Field(default=False, description="Schedule it once created")


@dg.op(
    description="Create a campaign: select and enrol its leads, attach a number.",
    out=dg.Out(str, description="The campaign's id"),
)
def create_campaign_op(
    context: dg.OpExecutionContext, config: CreateCampaignConfig, twilio: TwilioResource
) -> dg.Output[str]:
    team_id = uuid.UUID(config.team_id)
    try:
        new = _new_campaign(config)
        created = create_campaign(team_id, new, DAGSTER_ACTOR)
    except (TemplateError, ValueError) as exc:
        raise dg.Failure(description=f"campaign not created: {exc}") from None
    campaign_id = created.campaign.id
    context.log.info(f"campaign {campaign_id}: {created.added} leads added")
    if config.provision_number and not config.messaging_service_sid:
        number = provision_for_campaign(
            team_id, campaign_id, twilio.gateway().client, DAGSTER_ACTOR, config.area_code
        )
        if number is not None:
            context.log.info(f"sends from {number.phone_number}")
    if config.schedule:
        try:
            schedule_campaign(team_id, campaign_id, DAGSTER_ACTOR)
        except NotSendable as exc:
            context.log.warning(f"created, not scheduled: {exc}")
    campaign = get_campaign(team_id, campaign_id)
    return dg.Output(
        str(campaign_id),
        metadata={
            "status": str(campaign.status),
            "status_reason": campaign.status_reason or "",
            "leads_added": created.added,
            "left_out": dg.MetadataValue.json(created.left_out),
        },
    )


def _new_campaign(config: CreateCampaignConfig) -> NewCampaign:
    start = config.schedule_start
    return NewCampaign(
        name=config.name,
        type=config.type,
        selection=LeadSelection(
            bucket_id=config.bucket_id,
            sector=config.sector,
            state=config.state,
            city=config.city,
            tags=config.tags,
            min_score=config.min_score,
            lead_ids=config.lead_ids,
        ),
        template=config.template,
        schedule_start=datetime.fromisoformat(start) if start else None,
        daily_limit=config.daily_limit,
        budget=Decimal(config.budget) if config.budget else None,
        persona=config.persona,
        messaging_service_sid=config.messaging_service_sid,
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Create a campaign from the launchpad (the fields of POST /v1/campaigns).",
)
def create_campaign_job() -> None:
    create_campaign_op()
