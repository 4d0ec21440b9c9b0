"""/v1/uploads: land a CSV (processing happens later, in Dagster) and read its status."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from outreach_api.deps import MAX_BIGINT, Lake, TeamId
from outreach_api.errors import V1_ERRORS, ErrorOut, UnknownBucketOut, error
from outreach_api.multipart import parse_upload_form
from outreach_core.catalog import load_catalog
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Upload, UploadRejection
from outreach_core.settings import get_settings
from outreach_core.uploads.landing import land_upload, resolve_bucket

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=V1_ERRORS)

UPLOAD_NOT_FOUND = error(404, "No such upload for the caller's team.")

UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "bucket_id": {"type": "string"},
                        "sic_code": {"type": "string"},
                        "description": {"type": "string"},
                    },
                }
            }
        },
    }
}


class UploadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    upload_id: uuid.UUID = Field(validation_alias="id")
    status: str
    bucket_id: str
    sector: str
    filename: str
    description: str | None
    size_bytes: int
    error: str | None
    total_rows: int | None
    accepted_rows: int | None
    rejected_rows: int | None
    merged_rows: int | None
    inserted_leads: int | None
    top_rejection_reasons: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class RejectionOut(BaseModel):
    row_number: int
    reason: str


class RejectionsPage(BaseModel):
    items: list[RejectionOut]
    next_after: int | None


def _read(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


@router.post(
    "",
    status_code=202,
    response_model=UploadOut,
    openapi_extra=UPLOAD_FORM,
    responses={
        **error(
            400,
            "A malformed multipart body: no boundary, cut short, too many or too long fields, "
            "a field that is not UTF-8.",
        ),
        **error(404, "Unknown `bucket_id`; `suggestions` lists close ones.", UnknownBucketOut),
        **error(413, "The file is over the upload limit."),
        **error(415, "The body is not multipart/form-data."),
        # Only our own checks answer 422 here: no parameter FastAPI validates can fail.
        **error(
            422,
            "No file part; no bucket; `bucket_id` and `sic_code` of different sectors; "
            "a bad description or Idempotency-Key; a key reused for another file.",
            ErrorOut,
        ),
    },
)
async def create_upload(
    request: Request,
    response: Response,
    team_id: TeamId,
    lake: Lake,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> UploadOut:
    """Land a CSV for a bucket (`bucket_id`, or `sic_code` to pick one). Answers 202 with the
    upload id; a retry with the same `Idempotency-Key` returns the first upload."""
    limit = get_settings().max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="outreach-api-") as tmp:
        path = Path(tmp) / "body.csv"
        form = await parse_upload_form(request, path, limit)
        bucket = resolve_bucket(form.fields.get("bucket_id"), form.fields.get("sic_code"))
        landed = await run_in_threadpool(
            lambda: land_upload(
                lake,
                _read(path),
                filename=form.filename,
                bucket=bucket,
                description=form.fields.get("description"),
                idempotency_key=idempotency_key,
            )
        )
    if not landed.created:
        response.headers["Idempotent-Replayed"] = "true"
    return UploadOut.model_validate(landed.upload)


def _get(team_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    with tenant_session(team_id) as session:
        upload = session.scalar(
            select(Upload).where(Upload.team_id == team_id, Upload.id == upload_id)
        )
    if upload is None:
        # 404 whether it does not exist or belongs to another team: nothing leaks.
        raise HTTPException(404, "upload not found")
    return upload


@router.get("/{upload_id}", response_model=UploadOut, responses=UPLOAD_NOT_FOUND)
def get_upload(upload_id: uuid.UUID, team_id: TeamId) -> UploadOut:
    return UploadOut.model_validate(_get(team_id, upload_id))


@router.get("/{upload_id}/rejections", response_model=RejectionsPage, responses=UPLOAD_NOT_FOUND)
def list_rejections(
    upload_id: uuid.UUID,
    team_id: TeamId,
    after: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RejectionsPage:
    """Rejected rows with their reasons, by row number (keyset pagination)."""
    _get(team_id, upload_id)
    query = (
        select(UploadRejection.row_number, UploadRejection.reason)
        .where(UploadRejection.team_id == team_id, UploadRejection.upload_id == upload_id)
        .order_by(UploadRejection.row_number)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(UploadRejection.row_number > after)
    with tenant_session(team_id) as session:
        rows = session.execute(query).all()
    items = [RejectionOut(row_number=r.row_number, reason=r.reason) for r in rows[:limit]]
    next_after = items[-1].row_number if len(rows) > limit else None
    return RejectionsPage(items=items, next_after=next_after)


@router.get(
    "/{upload_id}/rejected.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error(404, "No such upload for the caller's team, or it has no rejected rows."),
    },
)
def download_rejected(upload_id: uuid.UUID, team_id: TeamId, lake: Lake) -> Response:
    """The rejected rows as CSV (cells that could run as spreadsheet formulas neutralised)."""
    upload = _get(team_id, upload_id)
    key = lake.rejected_key(load_catalog().get(upload.bucket_id), upload.id)
    if not lake.exists(key):
        raise HTTPException(404, "this upload has no rejected rows")
    return Response(
        lake.get_bytes(key),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="rejected-{upload.id}.csv"'},
    )
