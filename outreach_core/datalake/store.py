"""The datalake: a local directory by default, S3 when the URL is `s3://bucket/prefix`.

Callers never build keys by hand: `TeamLake` prefixes every key with the team's folder and
refuses any key that could climb out of it, so one team can never name another's files."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlparse

from outreach_core.catalog import Bucket

# Plain ASCII only: unicode look-alikes of '.' or '/' never reach the store.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


class InvalidKey(ValueError):
    pass


class ObjectStore(Protocol):
    def put_file(self, key: str, source: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def download(self, key: str, dest: Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(not _SEGMENT.match(p) for p in parts):
        raise InvalidKey(f"invalid datalake key: {key!r}")
    if any(p in (".", "..") for p in parts):
        raise InvalidKey(f"invalid datalake key: {key!r}")
    return "/".join(parts)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"invalid datalake key: {key!r}")
        return path

    @contextmanager
    def _replacing(self, key: str) -> Iterator[Path]:
        """A temporary path that replaces `key` atomically once written: readers never see
        half a file."""
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> None:
        with self._replacing(key) as tmp:
            shutil.copyfile(source, tmp)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._replacing(key) as tmp:
            tmp.write_bytes(data)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def download(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def download(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, self._key(key), str(dest))

    def exists(self, key: str) -> bool:
        result = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(o["Key"] == self._key(key) for o in result.get("Contents", []))

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/"
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[strip:] for k in keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def store_from_url(url: str, s3_client: Any | None = None) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Store(s3_client, parsed.netloc, parsed.path)
    if parsed.scheme in ("", "file"):
        return LocalStore(Path(parsed.path if parsed.scheme else url))
    raise ValueError(f"unsupported datalake URL scheme: {parsed.scheme!r}")


class TeamLake:
    """One team's view of the datalake; every key it touches starts with `team_{id}/`."""

    def __init__(self, store: ObjectStore, team_id: uuid.UUID) -> None:
        if not isinstance(team_id, uuid.UUID):
            raise TypeError("team_id must be a UUID")
        self.store = store
        self.team_id = team_id
        self.root = f"team_{team_id}/datalake"

    def key(self, relative: str) -> str:
        return check_key(f"{self.root}/{check_key(relative)}")

    def bucket_key(self, bucket: Bucket, *parts: str) -> str:
        return self.key("/".join([bucket.storage_prefix, *parts]))

    def raw_key(self, bucket: Bucket, upload_id: uuid.UUID) -> str:
        return self.bucket_key(bucket, "raw", f"{upload_id}.csv")

    def validated_key(self, bucket: Bucket, upload_id: uuid.UUID) -> str:
        return self.bucket_key(bucket, "validated", f"{upload_id}.parquet")

    def processed_key(self, bucket: Bucket, upload_id: uuid.UUID) -> str:
        return self.bucket_key(bucket, "processed", f"{upload_id}.parquet")

    def rejected_key(self, bucket: Bucket, upload_id: uuid.UUID) -> str:
        return self.bucket_key(bucket, "rejected", f"{upload_id}.csv")

    def index_key(self, bucket: Bucket) -> str:
        return self.bucket_key(bucket, "index.json")

    def owns(self, key: str) -> bool:
        return check_key(key).startswith(self.root + "/")

    def list(self, relative_prefix: str = "") -> list[str]:
        prefix = self.key(relative_prefix) if relative_prefix else self.root
        return [k for k in self.store.list(prefix) if self.owns(k)]

    def put_file(self, key: str, source: Path) -> None:
        self._own(key)
        self.store.put_file(key, source)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._own(key)
        self.store.put_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        self._own(key)
        return self.store.get_bytes(key)

    def exists(self, key: str) -> bool:
        self._own(key)
        return self.store.exists(key)

    @contextmanager
    def local_copy(self, key: str, workdir: Path) -> Iterator[Path]:
        """A local file path for `key`, downloaded when the store is remote."""
        self._own(key)
        if isinstance(self.store, LocalStore):
            yield self.store._path(key)
            return
        dest = workdir / PurePosixPath(key).name
        self.store.download(key, dest)
        try:
            yield dest
        finally:
            dest.unlink(missing_ok=True)

    def _own(self, key: str) -> None:
        if not self.owns(key):
            raise InvalidKey(f"key outside the team's datalake: {key!r}")
