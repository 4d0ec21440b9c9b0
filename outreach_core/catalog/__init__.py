"""Sector buckets and the SIC map (data in buckets.yaml, loaded once)."""

from outreach_core.catalog.catalog import (
    BUSINESS_LINES,
    NATIONAL,
    SECTORS,
    US_STATES,
    Bucket,
    Catalog,
    CatalogError,
    UnknownBucket,
    load_catalog,
    normalize_sic,
    parse_catalog,
)

__all__ = [
    "BUSINESS_LINES",
    "NATIONAL",
    "SECTORS",
    "US_STATES",
    "Bucket",
    "Catalog",
    "CatalogError",
    "UnknownBucket",
    "load_catalog",
    "normalize_sic",
    "parse_catalog",
]
