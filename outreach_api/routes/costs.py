"""/v1/costs: the caller's spend for a month, by category, provider and operation, with
the team's monthly caps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from outreach_api.deps import TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.costs.budget import get_monthly_caps, month_spend
from outreach_core.db.states import CostCategory

router = APIRouter(prefix="/v1/costs", tags=["costs"], responses=V1_ERRORS)


class CostLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    category: CostCategory
    provider: str
    operation: str
    units: int
    amount: Decimal


class CostsOut(BaseModel):
    period: str
    total: Decimal
    by_category: dict[CostCategory, Decimal]
    # Monthly caps by category, and `total` for the cap on everything; null: no cap.
    caps: dict[str, Decimal | None]
    lines: list[CostLine]


@router.get(
    "",
    response_model=CostsOut,
    # A well-formed but impossible month (2026-13) is refused here, without `errors`.
    responses=error(422, "`period` is not a YYYY-MM month.", ValidationErrorOut | ErrorOut),
)
def get_costs(
    team_id: TeamId,
    period: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (UTC); default: now")
    ] = None,
) -> CostsOut:
    period = period or datetime.now(UTC).strftime("%Y-%m")
    try:
        rows = month_spend(team_id, period)
    except ValueError as exc:
        raise HTTPException(422, f"invalid period {period!r}: {exc}") from None
    by_category = dict.fromkeys(CostCategory, Decimal(0))
    for r in rows:
        by_category[r.category] += r.amount
    return CostsOut(
        period=period,
        total=sum(by_category.values(), Decimal(0)),
        by_category=by_category,
        caps={str(k or "total"): cap for k, cap in get_monthly_caps(team_id).items()},
        lines=[CostLine.model_validate(r) for r in rows],
    )
