"""The report's charts: matplotlib figures saved as SVG text, to be inlined in the HTML (a
chart is about 20 KB and needs nothing at open time; glyphs are drawn as paths, so no font
is fetched or assumed).

Figures are made with `matplotlib.figure.Figure`, not pyplot: no global figure state and no
GUI backend, as matplotlib recommends for servers. Every element id in a chart's SVG is
prefixed with the chart's id, so several charts in one page never share an id (their glyph
and clip-path definitions would otherwise collide). Each drawn data mark (a bar) carries
the id `<chart>-mark-...`, which is how a test finds what a chart drew."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from outreach_core.reporting.figures import (
    COST_LABELS,
    PER_OUTCOME,
    money,
    percent,
)
from outreach_core.reporting.queries import CampaignReport

# What the funnel chart shows each day, and its colours (Okabe-Ito, readable when colour-blind).
FUNNEL = {"sent": "Sent", "delivered": "Delivered", "responded": "Responded"}
COLOURS = ("#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
SPENT, UNSPENT, OVER = "#0072B2", "#D9D9D9", "#D55E00"
MARK = "mark"
MIN_DAY_SLOTS = 5
STYLE = {
    "svg.fonttype": "path",
    "text.parse_math": False,  # a `$` in a label is text, not mathtext
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_IDS = re.compile(r'(\bid="|href="#|url\(#)')


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    svg: str


@contextmanager
def _figure(chart_id: str, width: float, height: float) -> Iterator[tuple[Figure, Axes]]:
    # The salt makes matplotlib's generated ids differ by chart and stay the same between runs.
    with mpl.rc_context({**STYLE, "svg.hashsalt": chart_id}):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, fig.add_subplot()


def _svg(fig: Figure, chart_id: str) -> str:
    with mpl.rc_context({**STYLE, "svg.hashsalt": chart_id}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # the XML prolog and DOCTYPE do not belong inside HTML
    return _IDS.sub(lambda m: f"{m.group(1)}{chart_id}-", svg)


def _mark(bars: BarContainer, name: str) -> None:
    for i, bar in enumerate(bars):
        bar.set_gid(f"{MARK}-{name}-{i}")


def _nothing_yet(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def funnel_chart(report: CampaignReport) -> Chart:
    chart_id, title = "chart-funnel", "Sent, delivered and responded by day"
    daily = report.daily_frame()
    with _figure(chart_id, 7.5, 3.2) as (fig, ax):
        if daily.empty:
            _nothing_yet(ax, "nothing sent yet")
        else:
            days = daily["day"].dt.strftime("%b %d").tolist()
            width = 0.8 / len(FUNNEL)
            for n, (column, label) in enumerate(FUNNEL.items()):
                positions = [i + (n - (len(FUNNEL) - 1) / 2) * width for i in range(len(days))]
                bars = ax.bar(positions, daily[column], width, label=label, color=COLOURS[n])
                _mark(bars, column)
            ax.set_xticks(range(len(days)), days, rotation=45 if len(days) > 10 else 0)
            # A day or two would otherwise stretch into bars as wide as the chart.
            room = max(MIN_DAY_SLOTS - len(days), 0) / 2
            ax.set_xlim(-0.6 - room, len(days) - 0.4 + room)
            ax.set_ylabel("messages")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False, ncols=len(FUNNEL), loc="upper left", bbox_to_anchor=(0, 1.12))
        return Chart(chart_id, title, _svg(fig, chart_id))


def classification_chart(report: CampaignReport) -> Chart:
    chart_id, title = "chart-classifications", "Replies by classification"
    frame = report.classification_frame().iloc[::-1]  # largest at the top
    with _figure(chart_id, 5, 0.6 + 0.32 * max(len(frame), 3)) as (fig, ax):
        if frame.empty:
            _nothing_yet(ax, "no replies yet")
        else:
            bars = ax.barh(frame["classification"], frame["replies"], color=COLOURS[0])
            _mark(bars, "replies")
            ax.bar_label(bars, padding=3)
            ax.set_xlabel("replies")
            ax.xaxis.get_major_locator().set_params(integer=True)
        return Chart(chart_id, title, _svg(fig, chart_id))


def _money_bars(
    chart_id: str, title: str, labels: list[str], values: list[Decimal | None], what: str
) -> Chart:
    """Horizontal bars in dollars; a None value is labelled n/a and drawn as nothing."""
    amounts = [float(v) if v is not None else 0.0 for v in values]
    with _figure(chart_id, 5, 0.6 + 0.32 * len(labels)) as (fig, ax):
        bars = ax.barh(labels[::-1], amounts[::-1], color=COLOURS[2])
        _mark(bars, what)
        ax.bar_label(bars, [money(v) for v in values[::-1]], padding=3)
        ax.set_xlabel("dollars")
        ax.set_xlim(0, max(amounts, default=0) * 1.25 or 1)
        return Chart(chart_id, title, _svg(fig, chart_id))


def cost_breakdown_chart(report: CampaignReport) -> Chart:
    costs = report.costs
    title = f"Cost breakdown (total {money(costs.total_cost if costs else None)})"
    values = [getattr(costs, name) if costs else None for name in COST_LABELS]
    return _money_bars("chart-costs", title, list(COST_LABELS.values()), values, "cost")


def cost_per_outcome_chart(report: CampaignReport) -> Chart:
    costs = report.costs
    values = [getattr(costs, each) if costs else None for _, _, each in PER_OUTCOME]
    labels = [f"per {label.lower()}" for label, _, _ in PER_OUTCOME]
    return _money_bars("chart-cost-per", "Cost per outcome", labels, values, "cost-per")


def budget_chart(report: CampaignReport) -> Chart:
    chart_id = "chart-budget"
    costs = report.costs
    spent = float(costs.budget_spent) if costs else 0.0
    budget = float(costs.budget) if costs and costs.budget is not None else None
    used = costs.budget_used if costs else None
    title = (
        f"Budget used: {percent(used)} of {money(budget)}"
        if budget is not None
        else "Budget used: no budget set"
    )
    with _figure(chart_id, 5, 1.4) as (fig, ax):
        if budget is not None:
            ax.barh(["budget"], [budget], color=UNSPENT)
            ax.axvline(budget, color="#333", linewidth=1)
        over = budget is not None and spent > budget
        bars = ax.barh(["budget"], [spent], height=0.5, color=OVER if over else SPENT)
        _mark(bars, "spent")
        ax.bar_label(bars, [f"spent {money(spent)}"], padding=3)
        ax.set_yticks([])
        ax.set_xlabel("dollars")
        ax.set_xlim(0, max(spent, budget or 0) * 1.3 or 1)
        return Chart(chart_id, title, _svg(fig, chart_id))


CHARTS: tuple[Callable[[CampaignReport], Chart], ...] = (
    funnel_chart,
    classification_chart,
    cost_breakdown_chart,
    cost_per_outcome_chart,
    budget_chart,
)


def report_charts(report: CampaignReport) -> list[Chart]:
    return [make(report) for make in CHARTS]
