"""The campaign report as one self-contained HTML file: inline SVG charts, the same figures
as tables, inline CSS, and a Content-Security-Policy that lets the page load nothing at all.
Text from data (the campaign's name, classification labels) is escaped."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from string import Template

from outreach_core.reporting.charts import Chart, report_charts
from outreach_core.reporting.figures import FigureTable, report_tables
from outreach_core.reporting.queries import CampaignReport

PACKAGE = "outreach_core.reporting"
TEMPLATE = "report.html"


def _chart(chart: Chart) -> str:
    caption = html.escape(chart.title)
    return (
        f'<figure class="chart" id="{chart.id}">\n<figcaption>{caption}</figcaption>\n'
        f"{chart.svg}</figure>"
    )


def _table(table: FigureTable) -> str:
    # to_html escapes every cell and header (escape=True is its default, spelled out here).
    body = table.frame.to_html(index=False, border=0, escape=True)
    return f'<h3>{html.escape(table.title)}</h3>\n<div class="table">\n{body}\n</div>'


def render_html(report: CampaignReport, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(UTC)
    page = Template(files(PACKAGE).joinpath(TEMPLATE).read_text(encoding="utf-8"))
    return page.substitute(
        title=html.escape(f"Campaign report: {report.campaign_name}"),
        campaign_id=html.escape(str(report.campaign_id)),
        generated=html.escape(f"{generated:%Y-%m-%d %H:%M} UTC"),
        charts="\n".join(_chart(c) for c in report_charts(report)),
        tables="\n".join(_table(t) for t in report_tables(report)),
    )


def report_filename(campaign_id: uuid.UUID) -> str:
    return f"campaign-report-{campaign_id}.html"


def write_report(report: CampaignReport, path: Path) -> Path:
    """Writes the report to `path` (its folder made if missing) and returns it absolute."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
