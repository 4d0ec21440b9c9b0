"""/v1/buckets (the sector catalogue) and /v1/datalake (the caller's own files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from outreach_api.deps import NO_NUL, Lake, TeamId
from outreach_core.catalog import Bucket, load_catalog
from outreach_core.datalake import InvalidKey

router = APIRouter(tags=["catalogue"])


class BucketOut(BaseModel):
    id: str
    name: str
    sector: str
    subsector: str
    state: str
    sic_codes: list[str]
    business_line: str

    @classmethod
    def of(cls, b: Bucket) -> BucketOut:
        return cls(
            id=b.id,
            name=b.name,
            sector=b.sector,
            subsector=b.subsector,
            state=b.state,
            sic_codes=list(b.sic_codes),
            business_line=b.business_line,
        )


@router.get("/v1/buckets", response_model=list[BucketOut])
def list_buckets(
    _: TeamId,
    sector: Annotated[str | None, Query(max_length=60, pattern=NO_NUL)] = None,
    state: Annotated[str | None, Query(max_length=2, pattern=NO_NUL)] = None,
) -> list[BucketOut]:
    buckets = load_catalog().buckets.values()
    return [
        BucketOut.of(b)
        for b in buckets
        if (sector is None or b.sector == sector) and (state is None or b.state == state.lower())
    ]


@router.get("/v1/buckets/{bucket_id}", response_model=BucketOut)
def get_bucket(bucket_id: str, _: TeamId) -> BucketOut:
    return BucketOut.of(load_catalog().get(bucket_id))


class FilesOut(BaseModel):
    keys: list[str]


@router.get("/v1/datalake/files", response_model=FilesOut)
def list_files(lake: Lake, prefix: Annotated[str, Query(max_length=500)] = "") -> FilesOut:
    """The caller's datalake keys, relative to its team folder."""
    try:
        keys = lake.list(prefix.rstrip("/"))
    except InvalidKey:
        raise HTTPException(400, "invalid prefix") from None
    return FilesOut(keys=[k.removeprefix(lake.root + "/") for k in keys])
