"""Landing: store the raw file in the datalake and record an `uploads` row. Nothing is parsed
here; a sensor turns received uploads into Dagster runs."""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from outreach_core.catalog import Bucket, load_catalog
from outreach_core.datalake import TeamLake
from outreach_core.db.engine import tenant_session
from outreach_core.db.tables import Upload
from outreach_core.settings import get_settings

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the upload limit of {limit:,} bytes")
        self.limit = limit


class InvalidUpload(ValueError):
    pass


@dataclass(frozen=True)
class Landed:
    upload: Upload
    created: bool  # False when an Idempotency-Key matched an earlier upload


def resolve_bucket(bucket_id: str | None, sic_code: str | None) -> Bucket:
    """The bucket named by `bucket_id`, or picked by `sic_code`. Given both, they must agree
    on the sector: the file lands in the bucket's sector partition, so a SIC code of another
    sector means the caller meant one of two different things."""
    catalog = load_catalog()
    bucket_id = (bucket_id or "").strip()
    sic_code = (sic_code or "").strip()
    if not sic_code:
        if not bucket_id:
            raise InvalidUpload("bucket_id or sic_code is required")
        return catalog.get(bucket_id)
    bucket = catalog.get(bucket_id) if bucket_id else None
    # In the bucket's state, so the conflict message names the bucket the caller may want.
    by_sic = catalog.bucket_for_sic(sic_code, bucket.state if bucket else None)
    if by_sic is None:
        hint = "; send bucket_id alone" if bucket else ""
        raise InvalidUpload(f"no bucket for SIC code {sic_code!r}{hint}")
    if bucket is None:
        return by_sic
    sectors = catalog.sectors_for_sic(sic_code)
    if bucket.sector not in sectors:
        raise InvalidUpload(
            f"bucket_id {bucket.id!r} (sector {bucket.sector}) conflicts with sic_code "
            f"{sic_code!r} (sector {' or '.join(sectors)}, bucket {by_sic.id!r}); "
            "send a matching pair, or only one of them"
        )
    return bucket


def clean_filename(name: str | None) -> str:
    # Kept only as a label; storage keys never use it.
    base = Path((name or "upload.csv").replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "upload.csv"


def _same_request(earlier: Upload, sha256: str, bucket: Bucket) -> Upload:
    """A retry must carry the same file for the same bucket; anything else is a client bug
    that would otherwise silently drop the new file."""
    if earlier.sha256 != sha256 or earlier.bucket_id != bucket.id:
        raise InvalidUpload(
            f"Idempotency-Key was already used for a different file or bucket (upload {earlier.id})"
        )
    return earlier


def find_by_idempotency_key(team_id: uuid.UUID, key: str) -> Upload | None:
    with tenant_session(team_id) as session:
        return session.scalar(
            select(Upload).where(Upload.team_id == team_id, Upload.idempotency_key == key)
        )


def spool(chunks: Iterable[bytes], dest: Path, limit: int) -> tuple[int, str]:
    """Write the stream to `dest`, refusing it as soon as it passes `limit` bytes."""
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(limit)
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def land_upload(
    lake: TeamLake,
    chunks: Iterable[bytes],
    *,
    filename: str | None,
    bucket: Bucket,
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Landed:
    team_id = lake.team_id
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidUpload("Idempotency-Key must be 1-200 printable ASCII characters")
    if description is not None:
        if len(description) > 2000:
            raise InvalidUpload("description is longer than 2000 characters")
        if "\x00" in description:
            raise InvalidUpload("description contains a NUL character")

    upload_id = uuid.uuid4()
    key = lake.raw_key(bucket, upload_id)
    with tempfile.TemporaryDirectory(prefix="outreach-upload-") as tmp:
        spooled = Path(tmp) / "raw.csv"
        size, sha256 = spool(chunks, spooled, get_settings().max_upload_bytes)
        if idempotency_key is not None:
            earlier = find_by_idempotency_key(team_id, idempotency_key)
            if earlier is not None:
                return Landed(_same_request(earlier, sha256, bucket), created=False)
        lake.put_file(key, spooled)

    row = {
        "team_id": team_id,
        "id": upload_id,
        "bucket_id": bucket.id,
        "sector": bucket.sector,
        "filename": clean_filename(filename),
        "description": description,
        "storage_key": key,
        "size_bytes": size,
        "sha256": sha256,
        "idempotency_key": idempotency_key,
    }
    with tenant_session(team_id) as session:
        # A concurrent retry with the same key may have won the race: keep its row.
        inserted = session.scalar(
            insert(Upload)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["team_id", "idempotency_key"])
            .returning(Upload)
        )
    if inserted is None:
        assert idempotency_key is not None
        lake.store.delete(key)
        earlier = find_by_idempotency_key(team_id, idempotency_key)
        assert earlier is not None
        return Landed(_same_request(earlier, sha256, bucket), created=False)
    return Landed(inserted, created=True)
