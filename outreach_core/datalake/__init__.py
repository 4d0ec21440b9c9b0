from outreach_core.datalake.store import (
    InvalidKey,
    LocalStore,
    ObjectStore,
    S3Store,
    TeamLake,
    check_key,
    store_from_url,
)

__all__ = [
    "InvalidKey",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "TeamLake",
    "check_key",
    "store_from_url",
]
