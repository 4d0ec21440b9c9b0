"""/v1/buckets (the sector catalogue) and /v1/datalake (the caller's own files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict

from outreach_api.deps import NO_NUL, Lake, TeamId
from outreach_api.errors import V1_ERRORS, UnknownBucketOut, error
from outreach_core.catalog import load_catalog

router = APIRouter(tags=["catalogue"], responses=V1_ERRORS)


class BucketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sector: str
    subsector: str
    state: str
    sic_codes: list[str]
    business_line: str


@router.get("/v1/buckets", response_model=list[BucketOut])
def list_buckets(
    _: TeamId,
    sector: Annotated[str | None, Query(max_length=60, pattern=NO_NUL)] = None,
    state: Annotated[str | None, Query(max_length=2, pattern=NO_NUL)] = None,
) -> list[BucketOut]:
    buckets = load_catalog().buckets.values()
    return [
        BucketOut.model_validate(b)
        for b in buckets
        if (sector is None or b.sector == sector) and (state is None or b.state == state.lower())
    ]


@router.get(
    "/v1/buckets/{bucket_id}",
    response_model=BucketOut,
    responses=error(404, "Unknown bucket; `suggestions` lists close ones.", UnknownBucketOut),
)
def get_bucket(bucket_id: Annotated[str, Path(max_length=120)], _: TeamId) -> BucketOut:
    return BucketOut.model_validate(load_catalog().get(bucket_id))


class FilesOut(BaseModel):
    keys: list[str]


@router.get(
    "/v1/datalake/files",
    response_model=FilesOut,
    responses=error(400, "The prefix would leave the team's folder."),
)
def list_files(lake: Lake, prefix: Annotated[str, Query(max_length=500)] = "") -> FilesOut:
    """The caller's datalake keys, relative to its team folder."""
    # A prefix that could leave the team's folder raises InvalidKey: 400 (errors.py).
    keys = lake.list(prefix.rstrip("/"))
    return FilesOut(keys=[k.removeprefix(lake.root + "/") for k in keys])
