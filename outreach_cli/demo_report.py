"""The demo's last step: refresh the analytics marts (dbt), write the demo campaign's HTML
report under OUTREACH_HOME/reports, print its path and its figures."""

from __future__ import annotations

import uuid

from rich.console import Console

from outreach_assets.analytics import AnalyticsBuildError
from outreach_cli.demo_campaign import NAME
from outreach_cli.report_cli import write_campaign_report
from outreach_core.messaging.campaigns import list_campaigns
from outreach_core.reporting.html import report_filename
from outreach_core.settings import get_settings

REPORTS_FOLDER = "reports"


def run_report(console: Console, team_id: uuid.UUID) -> None:
    console.rule("Report (dbt analytics)")
    # Newest first: earlier demo runs left cancelled campaigns of the same name.
    campaign = next((c for c in list_campaigns(team_id) if c.name == NAME), None)
    if campaign is None:
        console.print("no demo campaign; no report")
        return
    path = get_settings().home / REPORTS_FOLDER / report_filename(campaign.id)
    try:
        write_campaign_report(console, team_id, campaign.id, path)
    except AnalyticsBuildError as exc:
        console.print(f"[red]analytics refresh FAILED, no report: {exc}[/red]")
