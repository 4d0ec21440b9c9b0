"""The campaign report opens in a real browser (Debian's headless Chromium) with the network
blocked: every chart is there and drawn, the figures' tables are there, the campaign's name
shows as text, and the page asks the network for nothing.

Chromium must be installed (`.ci/run` installs it): without it these tests fail, they never
skip."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach_cli.cli import app
from outreach_core.reporting.charts import FUNNEL
from outreach_core.reporting.figures import COST_LABELS, PER_OUTCOME, report_tables
from outreach_core.reporting.html import write_report
from outreach_core.reporting.queries import (
    CampaignCosts,
    CampaignReport,
    ClassificationCount,
    DailyFunnel,
    load_campaign_report,
)
from tests.browser import CHROMIUM, HeadlessChromium, Page
from tests.report_seed import seeded_teams

HOSTILE_NAME = 'Spring <b>push</b> & "deals" <script>document.title="owned"</script> $5'

# What the page reports about itself once loaded: each chart's SVG box and how many of its
# data marks (the ids charts.py gives bars) have a non-empty box on screen.
MEASURE = """(() => {
  const charts = {};
  for (const figure of document.querySelectorAll('figure.chart')) {
    const svg = figure.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = svg ? [...svg.querySelectorAll(`[id^="${figure.id}-mark-"]`)] : [];
    charts[figure.id] = {
      width: box.width,
      height: box.height,
      paths: svg ? svg.querySelectorAll('path').length : 0,
      drawn: marks.filter(m => {
        const r = m.getBoundingClientRect();
        return r.width > 0 && r.height > 0;
      }).length,
    };
  }
  const h1 = document.querySelector('h1');
  return {
    title: document.title,
    h1: h1.textContent,
    h1_elements: h1.children.length,
    scripts: document.scripts.length,
    tables: document.querySelectorAll('table').length,
    charts,
  };
})()"""


def sample_report(name: str = HOSTILE_NAME) -> CampaignReport:
    """Three days of a campaign, with zeros where a chart must draw nothing."""
    days = [
        DailyFunnel(date(2026, 3, d), 100 + d, 90, 10, 20 + d, 8, 6, 6, 2, 3, 2, 1, d % 2,
                    Decimal("0.9"), Decimal("0.2"), Decimal("0.4"), Decimal("0.02"))
        for d in (2, 3, 4)
    ]  # fmt: skip
    days.append(
        DailyFunnel(date(2026, 3, 5), 40, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, Decimal(0), *[None] * 3)
    )
    classes = [("interested", 12), ("opt-out", 3), ("question", 7), ("email-capture", 4)]
    costs = CampaignCosts(
        budget=Decimal("25.00"),
        enrichment_cost=Decimal("4.10"),
        sms_cost=Decimal("6.32"),
        follow_up_sms_cost=Decimal("0.79"),
        voice_cost=Decimal(0),
        email_cost=Decimal("0.02"),
        total_cost=Decimal("11.23"),
        budget_spent=Decimal("7.13"),
        leads=40,
        responses=30,
        email_captures=4,
        deals=0,
        cost_per_lead=Decimal("0.28"),
        cost_per_response=Decimal("0.37"),
        cost_per_email_capture=Decimal("2.81"),
        cost_per_deal=None,
        budget_used=Decimal("0.2852"),
    )
    return CampaignReport(
        uuid.uuid4(), name, days, [ClassificationCount(c, n) for c, n in classes], costs
    )


def expected_marks(report: CampaignReport) -> dict[str, int]:
    """Per chart, the bars that must be drawn: one per value above zero."""
    costs = report.costs
    assert costs is not None
    return {
        "chart-funnel": sum(getattr(d, c) > 0 for d in report.daily for c in FUNNEL),
        "chart-classifications": sum(c.replies > 0 for c in report.classifications),
        "chart-costs": sum(getattr(costs, n) > 0 for n in COST_LABELS),
        "chart-cost-per": sum((getattr(costs, n) or 0) > 0 for _, _, n in PER_OUTCOME),
        "chart-budget": int(costs.budget_spent > 0),
    }


def problems(page: Page, expected: dict[str, int]) -> list[str]:
    """What is wrong with a loaded report: a chart missing, not drawn, or drawing other
    than its data; a request that left the page."""
    found: list[str] = []
    charts = page.value["charts"]
    for chart, marks in expected.items():
        if chart not in charts:
            found.append(f"{chart}: missing")
        elif charts[chart]["width"] <= 0 or charts[chart]["height"] <= 0:
            found.append(f"{chart}: no SVG drawn")
        elif charts[chart]["drawn"] != marks:
            found.append(f"{chart}: {charts[chart]['drawn']} bars drawn, expected {marks}")
    external = [url for url in page.requests if not url.startswith("file://")]
    if external:
        found.append(f"requests left the page: {external} ({page.failed})")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessChromium]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found ({CHROMIUM}): install Debian's package (apt-get install "
            "chromium; .ci/run does). The report tests need a real browser and do not skip."
        )
    chromium = HeadlessChromium(tmp_path_factory.mktemp("chromium") / "profile")
    yield chromium
    chromium.close()


def test_the_report_renders_offline_with_every_chart_drawn(
    browser: HeadlessChromium, tmp_path: Path
) -> None:
    report = sample_report()
    path = write_report(report, tmp_path / "report.html")
    page = browser.open(path.as_uri(), MEASURE)
    assert problems(page, expected_marks(report)) == []
    assert page.requests == [path.as_uri()]  # the file itself, nothing else
    # The name is text: no markup from it was parsed, no script from it ran.
    assert page.value["h1"] == f"Campaign report: {HOSTILE_NAME}"
    assert page.value["h1_elements"] == 0 and page.value["scripts"] == 0
    assert page.value["title"] == f"Campaign report: {HOSTILE_NAME}"
    assert page.value["tables"] == len(report_tables(report))
    size = path.stat().st_size
    assert size < 40_000 * len(expected_marks(report)), f"{size} bytes"


def test_the_check_fails_for_a_missing_or_empty_chart_or_one_needing_the_network(
    browser: HeadlessChromium, tmp_path: Path
) -> None:
    """The check above can fail: doctored copies of a report are caught."""
    report = sample_report("Doctored")
    html = write_report(report, tmp_path / "report.html").read_text()
    expected = expected_marks(report)
    missing = re.sub(r'<figure class="chart" id="chart-budget">.*?</figure>', "", html, flags=re.S)
    empty = re.sub(r'<g id="chart-classifications-mark-.*?</g>', "", html, flags=re.S)
    # A chart drawn by a script from a CDN (the page's own policy lifted, so it is tried).
    from_cdn = re.sub(
        r'(<figure class="chart" id="chart-funnel">.*?</figcaption>).*?</figure>',
        r'\1<div></div></figure><script src="https://cdn.jsdelivr.net/npm/chart.js"></script>',
        html.replace("Content-Security-Policy", "x-no-policy"),
        flags=re.S,
    )
    cases = {
        "missing": (missing, "chart-budget: missing"),
        "empty": (empty, "chart-classifications: 0 bars drawn, expected 4"),
        "from_cdn": (from_cdn, "chart-funnel: no SVG drawn"),
    }
    for name, (doctored, problem) in cases.items():
        copy = tmp_path / f"{name}.html"
        copy.write_text(doctored)
        page = browser.open(copy.as_uri(), MEASURE)
        assert problem in problems(page, expected), name
    cdn = "https://cdn.jsdelivr.net/npm/chart.js"
    assert cdn in page.requests and page.failed[cdn].startswith("net::ERR_"), page.failed


def test_a_seeded_campaigns_report_from_the_marts_renders_offline(
    browser: HeadlessChromium, tmp_path: Path
) -> None:
    seeded = seeded_teams().a
    report = load_campaign_report(seeded.team.team_id, seeded.campaign_id)
    assert report.daily and report.classifications and report.costs is not None
    path = write_report(report, tmp_path / "seeded.html")
    page = browser.open(path.as_uri(), MEASURE)
    assert problems(page, expected_marks(report)) == []
    assert page.value["h1"] == f"Campaign report: {seeded.name}"
    assert page.value["h1_elements"] == 0 and page.value["scripts"] == 0


def test_outreach_report_writes_the_file_and_prints_the_figures(tmp_path: Path) -> None:
    seeded = seeded_teams().a
    output = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app,
        ["report", "--team", str(seeded.team.team_id), "--campaign", str(seeded.campaign_id)]
        + ["--output", str(output)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert f"report: {output.resolve()}" in result.output
    assert output.read_text().count("<svg") == len(expected_marks(sample_report()))
    # The same figures as the page: the funnel's total row and the cost per lead.
    report = load_campaign_report(seeded.team.team_id, seeded.campaign_id)
    sent = sum(d.sent for d in report.daily)
    assert re.search(rf"│ Total\s+│\s+{sent} │", result.output), result.output
    assert report.costs is not None
    assert f"${report.costs.cost_per_lead:,.2f}" in result.output


@pytest.mark.parametrize("whose", ["unknown", "another team's"])
def test_outreach_report_refuses_a_campaign_not_of_the_team(whose: str) -> None:
    seeded = seeded_teams()
    campaign = uuid.uuid4() if whose == "unknown" else seeded.b.campaign_id
    result = CliRunner().invoke(
        app,
        ["report", "--team", str(seeded.a.team.team_id), "--campaign", str(campaign)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert f"no campaign {campaign} in team {seeded.a.team.team_id}" in result.output
