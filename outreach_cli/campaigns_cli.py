"""`outreach campaign ...`: create, list, show and control campaigns from the shell. The
rules are `outreach_core.messaging`'s; these commands translate and print."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table

from outreach_cli.console import TeamOption, console, fail
from outreach_core.db.states import CampaignStatus, CampaignType
from outreach_core.messaging import defaults

campaign_app = typer.Typer(help="SMS campaigns.", no_args_is_help=True)
CLI_ACTOR = "cli"


@campaign_app.command("create")
def create(
    team: TeamOption,
    name: Annotated[str, typer.Option(help="Campaign name")],
    template: Annotated[str, typer.Option(help="Message, e.g. 'Hi {{firstName|there}}'")],
    campaign_type: Annotated[CampaignType, typer.Option("--type")] = CampaignType.SMS,
    bucket: Annotated[str | None, typer.Option(help="Leads of this bucket")] = None,
    sector: str | None = None,
    state: str | None = None,
    city: str | None = None,
    tag: Annotated[list[str] | None, typer.Option(help="Leads with this tag (repeat)")] = None,
    min_score: int | None = None,
    daily_limit: int = defaults.CAMPAIGN_DAILY_LIMIT,
    budget: Decimal | None = None,
    start: Annotated[datetime | None, typer.Option(help="Schedule start (ISO 8601)")] = None,
    provision_number: Annotated[bool, typer.Option(help="Buy a number through Twilio")] = False,
    area_code: Annotated[str | None, typer.Option(help="For --provision-number")] = None,
    schedule: Annotated[bool, typer.Option(help="Schedule it right away")] = False,
) -> None:
    """Create a campaign: its leads are selected and their first messages queued now."""
    from outreach_core.messaging.campaigns import (
        NewCampaign,
        NotSendable,
        create_campaign,
        schedule_campaign,
    )
    from outreach_core.messaging.enrolment import LeadSelection
    from outreach_core.messaging.numbers import provision_for_campaign
    from outreach_core.messaging.templates import TemplateError
    from outreach_core.messaging.twilio_gateway import TwilioGateway

    selection = LeadSelection(
        bucket_id=bucket, sector=sector, state=state, city=city, tags=tag, min_score=min_score
    )
    new = NewCampaign(
        name=name,
        type=campaign_type,
        selection=selection,
        template=template,
        schedule_start=start,
        daily_limit=daily_limit,
        budget=budget,
    )
    try:
        created = create_campaign(team, new, CLI_ACTOR)
    except TemplateError as exc:
        fail(f"template: {exc}")
    campaign_id = created.campaign.id
    console.print(f"campaign {campaign_id}: {created.added} leads added")
    for reason, count in created.left_out.items():
        console.print(f"  left out, {reason}: {count}")
    if provision_number:
        number = provision_for_campaign(
            team, campaign_id, TwilioGateway.from_settings().client, CLI_ACTOR, area_code
        )
        if number is None:
            _show_reason(team, campaign_id)
        else:
            console.print(f"sends from {number.phone_number}")
    if schedule:
        try:
            scheduled = schedule_campaign(team, campaign_id, CLI_ACTOR)
        except NotSendable as exc:
            fail(str(exc))
        console.print(f"status: {scheduled.status}")


def _show_reason(team: uuid.UUID, campaign_id: uuid.UUID) -> None:
    from outreach_core.messaging.campaigns import get_campaign

    console.print(f"[yellow]{get_campaign(team, campaign_id).status_reason}[/yellow]")


@campaign_app.command("list")
def list_all(team: TeamOption) -> None:
    """The team's campaigns, newest first."""
    from outreach_core.messaging.campaigns import list_campaigns

    table = Table(title="Campaigns")
    for col in ("id", "name", "type", "status", "created"):
        table.add_column(col)
    for c in list_campaigns(team):
        table.add_row(str(c.id), c.name, c.type, c.status, f"{c.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@campaign_app.command("show")
def show(campaign_id: uuid.UUID, team: TeamOption) -> None:
    """Status, live counts and the audit log of one campaign."""
    from outreach_core.messaging.campaigns import (
        CampaignNotFound,
        campaign_counts,
        campaign_events,
        get_campaign,
    )

    try:
        campaign = get_campaign(team, campaign_id)
    except CampaignNotFound as exc:
        fail(str(exc))
    counts = campaign_counts(team, campaign_id)
    console.print(f"[bold]{campaign.name}[/bold] ({campaign.type}): {campaign.status}")
    if campaign.status_reason:
        console.print(f"  because: {campaign.status_reason}")
    console.print(
        f"  queued {counts.queued}, sent {counts.sent}, delivered {counts.delivered}, "
        f"failed {counts.failed}, cancelled {counts.cancelled}, spend ${counts.spend:.2f}"
    )
    for reason, n in counts.blocked.items():
        console.print(f"  blocked, {reason}: {n}")
    table = Table(title="Audit log")
    for col in ("at", "actor", "action", "change", "reason"):
        table.add_column(col)
    for e in campaign_events(team, campaign_id):
        change = f"{e.from_status or ''} -> {e.to_status}" if e.to_status else ""
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, change, e.reason or "")
    console.print(table)


def _move(
    campaign_id: uuid.UUID,
    team: uuid.UUID,
    to: CampaignStatus,
    reason: str | None,
    only_from: tuple[CampaignStatus, ...] | None = None,
) -> None:
    from outreach_core.messaging.campaigns import CampaignNotFound, InvalidTransition, transition

    try:
        moved = transition(team, campaign_id, to, CLI_ACTOR, reason, only_from)
    except (CampaignNotFound, InvalidTransition) as exc:
        fail(str(exc))
    console.print(f"campaign {campaign_id}: {moved.status}")


ReasonOption = Annotated[str | None, typer.Option(help="Why, for the audit log")]


@campaign_app.command("pause")
def pause(campaign_id: uuid.UUID, team: TeamOption, reason: ReasonOption = None) -> None:
    """Stop sending; nothing more goes out once this returns."""
    _move(campaign_id, team, CampaignStatus.PAUSED, reason)


@campaign_app.command("resume")
def resume(campaign_id: uuid.UUID, team: TeamOption, reason: ReasonOption = None) -> None:
    """Sending again from where it stopped (a paused campaign only)."""
    _move(campaign_id, team, CampaignStatus.ACTIVE, reason, (CampaignStatus.PAUSED,))


@campaign_app.command("cancel")
def cancel(campaign_id: uuid.UUID, team: TeamOption, reason: ReasonOption = None) -> None:
    """For good: its unsent messages are never sent."""
    _move(campaign_id, team, CampaignStatus.CANCELLED, reason)


@campaign_app.command("schedule")
def schedule_cmd(campaign_id: uuid.UUID, team: TeamOption) -> None:
    """Draft -> scheduled: sending starts at its schedule start."""
    from outreach_core.messaging.campaigns import CampaignNotFound, NotSendable, schedule_campaign

    try:
        scheduled = schedule_campaign(team, campaign_id, CLI_ACTOR)
    except (CampaignNotFound, NotSendable) as exc:
        fail(str(exc))
    console.print(f"campaign {campaign_id}: {scheduled.status}")
