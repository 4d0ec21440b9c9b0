"""/v1/costs: the caller's spend for a month, by provider and operation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from outreach_api.deps import TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, ValidationErrorOut, error
from outreach_core.enrich.budget import get_monthly_cap, month_spend

router = APIRouter(prefix="/v1/costs", tags=["costs"], responses=V1_ERRORS)


class CostLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    operation: str
    units: int
    amount: Decimal


class CostsOut(BaseModel):
    period: str
    total: Decimal
    enrichment_monthly_cap: Decimal | None
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
    return CostsOut(
        period=period,
        total=sum((r.amount for r in rows), Decimal(0)),
        enrichment_monthly_cap=get_monthly_cap(team_id),
        lines=[CostLine.model_validate(r) for r in rows],
    )
