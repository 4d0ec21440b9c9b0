"""`outreach report --campaign ID`: refresh the analytics marts, write the campaign's
self-contained HTML report, print its path and the same figures as tables. The demo ends
with the same step."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from outreach_cli.console import TeamOption, console, fail

if TYPE_CHECKING:  # pandas and matplotlib load only when a report is made
    from outreach_core.reporting.figures import FigureTable
    from outreach_core.reporting.queries import CampaignReport


def figure_table(figures: FigureTable) -> Table:
    table = Table(title=figures.title, title_justify="left")
    for n, name in enumerate(figures.frame.columns):
        table.add_column(str(name), justify="left" if n == 0 else "right")
    for row in figures.frame.itertuples(index=False):
        table.add_row(*(str(cell) for cell in row))
    return table


def print_figures(out: Console, report: CampaignReport) -> None:
    from outreach_core.reporting.figures import report_tables

    for figures in report_tables(report):
        out.print(figure_table(figures))


def write_campaign_report(
    out: Console, team_id: uuid.UUID, campaign_id: uuid.UUID, path: Path
) -> Path:
    """Refreshes the marts, then writes the report to `path` and prints its path and figures."""
    from outreach_assets.analytics import refresh_analytics
    from outreach_core.reporting.html import write_report
    from outreach_core.reporting.queries import load_campaign_report

    refresh_analytics()
    report = load_campaign_report(team_id, campaign_id)
    written = write_report(report, path)
    out.print(f"report: {written}")
    print_figures(out, report)
    return written


def report(
    team: TeamOption,
    campaign: Annotated[uuid.UUID, typer.Option("--campaign", help="Campaign id")],
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the HTML file (default: campaign-report-ID.html in the "
            "current directory)",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Refresh the analytics, write a campaign's self-contained HTML report (charts and
    figures), print its path and the figures."""
    from outreach_assets.analytics import AnalyticsBuildError
    from outreach_core.messaging.campaigns import CampaignNotFound, get_campaign
    from outreach_core.reporting.html import report_filename
    from outreach_core.teams import get_team

    if get_team(team) is None:
        fail(f"no team {team}")
    try:
        get_campaign(team, campaign)
    except CampaignNotFound:
        fail(f"no campaign {campaign} in team {team}")
    try:
        write_campaign_report(console, team, campaign, output or Path(report_filename(campaign)))
    except AnalyticsBuildError as exc:
        fail(f"the analytics could not be refreshed, so no report was written: {exc}")
