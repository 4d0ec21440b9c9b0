"""The report's figures as tables of display text: the HTML report and the terminal show
these same frames, so they never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from outreach_core.reporting.queries import COUNT_COLUMNS, CampaignReport

NONE = "n/a"

COUNT_LABELS = {
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "responded": "Responded",
    "positive": "Positive",
    "neutral": "Neutral",
    "negative": "Negative",
    "opt_outs": "Opt-outs",
    "emails_captured": "Emails captured",
    "qualified": "Qualified",
    "meetings": "Meetings",
    "deals": "Deals",
}
RATE_LABELS = {
    "delivery_rate": "Delivery rate",
    "response_rate": "Response rate",
    "positive_rate": "Positive rate",
    "opt_out_rate": "Opt-out rate",
}
# Each rate over the whole campaign: (numerator, denominator), as the mart defines it per day.
RATE_PARTS = {
    "delivery_rate": ("delivered", "sent"),
    "response_rate": ("responded", "delivered"),
    "positive_rate": ("positive", "responded"),
    "opt_out_rate": ("opt_outs", "delivered"),
}
COST_LABELS = {
    "enrichment_cost": "Enrichment",
    "sms_cost": "SMS",
    "follow_up_sms_cost": "Follow-up SMS",
    "voice_cost": "Voice",
    "email_cost": "Email",
}
# Cost per outcome: (label, the outcome's count, the cost each).
PER_OUTCOME = (
    ("Lead", "leads", "cost_per_lead"),
    ("Response", "responses", "cost_per_response"),
    ("Email capture", "email_captures", "cost_per_email_capture"),
    ("Deal", "deals", "cost_per_deal"),
)


@dataclass(frozen=True)
class FigureTable:
    title: str
    frame: pd.DataFrame  # display text; the first column names the row


def money(value: Decimal | float | None) -> str:
    return NONE if value is None or pd.isna(value) else f"${value:,.2f}"


def percent(value: Decimal | float | None) -> str:
    if value is None or pd.isna(value):
        return NONE
    # Half up from the decimal digits the mart stored: 0.0055 is 0.6%, as a person rounds
    # it (the float 0.0055 is a hair below and would print 0.5%).
    share = (Decimal(str(value)) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{share}%"


def campaign_totals(daily: pd.DataFrame) -> dict[str, float]:
    """The funnel's counts summed over the days (`CampaignReport.daily_frame`), and its rates
    over those sums (NaN where the denominator is 0)."""
    totals: dict[str, float] = {name: int(daily[name].sum()) for name in COUNT_COLUMNS}
    for rate, (numerator, denominator) in RATE_PARTS.items():
        whole = totals[denominator]
        totals[rate] = totals[numerator] / whole if whole else float("nan")
    return totals


def funnel_tables(report: CampaignReport) -> list[FigureTable]:
    daily = report.daily_frame()
    totals = campaign_totals(daily)
    days = daily["day"].dt.strftime("%Y-%m-%d").tolist()
    counts = pd.DataFrame({"Day": [*days, "Total"]})
    for name, label in COUNT_LABELS.items():
        counts[label] = [f"{n:,}" for n in [*daily[name], totals[name]]]
    rates = pd.DataFrame({"Day": [*days, "Total"]})
    for name, label in RATE_LABELS.items():
        rates[label] = [percent(r) for r in [*daily[name], totals[name]]]
    return [FigureTable("Funnel by day", counts), FigureTable("Rates by day", rates)]


def classification_table(report: CampaignReport) -> FigureTable:
    frame = report.classification_frame()
    whole = int(frame["replies"].sum())
    return FigureTable(
        "Replies by classification",
        pd.DataFrame(
            {
                "Classification": frame["classification"].tolist(),
                "Replies": [f"{n:,}" for n in frame["replies"]],
                "Share": [percent(n / whole) for n in frame["replies"]],
            }
        ),
    )


def cost_tables(report: CampaignReport) -> list[FigureTable]:
    costs = report.costs
    if costs is None:
        empty = pd.DataFrame({"Costs": ["no figures for this campaign yet"]})
        return [FigureTable("Costs", empty)]
    breakdown = pd.DataFrame(
        {
            "Category": [*COST_LABELS.values(), "Total"],
            "Cost": [money(getattr(costs, n)) for n in [*COST_LABELS, "total_cost"]],
        }
    )
    per_outcome = pd.DataFrame(
        {
            "Per": [label for label, _, _ in PER_OUTCOME],
            "Count": [f"{getattr(costs, count):,}" for _, count, _ in PER_OUTCOME],
            "Cost each": [money(getattr(costs, each)) for _, _, each in PER_OUTCOME],
        }
    )
    budget = pd.DataFrame(
        {
            "Budget": [money(costs.budget) if costs.budget is not None else "none"],
            "Spent": [money(costs.budget_spent)],
            "Used": [percent(costs.budget_used)],
        }
    )
    return [
        FigureTable("Cost breakdown", breakdown),
        FigureTable("Cost per outcome", per_outcome),
        FigureTable("Budget", budget),
    ]


def report_tables(report: CampaignReport) -> list[FigureTable]:
    return [*funnel_tables(report), classification_table(report), *cost_tables(report)]
