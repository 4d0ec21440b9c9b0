"""Pydantic models for the parts of Apollo's person/organization JSON we rely on.

Unknown fields are kept (``extra="allow"``) so a stored record loses nothing Apollo
sent; only the fields we read are type-checked. A match element failing validation is
quarantined by the client rather than failing its whole batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _none_as_empty(value: Any) -> Any:
    # Apollo sends null for empty arrays on sparse records.
    return [] if value is None else value


StrList = Annotated[list[str], BeforeValidator(_none_as_empty)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ApolloPhoneNumber(_Wire):
    raw_number: str | None = None
    sanitized_number: str | None = None
    type: str | None = None


class ApolloOrganization(_Wire):
    id: str | None = None
    name: str | None = None
    website_url: str | None = None
    primary_domain: str | None = None
    founded_year: int | None = None
    estimated_num_employees: int | None = None
    industry: str | None = None
    keywords: StrList = Field(default_factory=list)
    city: str | None = None
    state: str | None = None
    country: str | None = None
    annual_revenue: float | None = None
    technology_names: StrList = Field(default_factory=list)


class ApolloPerson(_Wire):
    id: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    title: str | None = None
    seniority: str | None = None
    departments: StrList = Field(default_factory=list)
    linkedin_url: str | None = None
    email: str | None = None
    email_status: str | None = None
    phone_numbers: Annotated[list[ApolloPhoneNumber], BeforeValidator(_none_as_empty)] = Field(
        default_factory=list
    )
    organization: ApolloOrganization | None = None

    @property
    def mobile_numbers(self) -> list[str]:
        return [
            p.sanitized_number or p.raw_number or ""
            for p in self.phone_numbers
            if p.type == "mobile" and (p.sanitized_number or p.raw_number)
        ]
