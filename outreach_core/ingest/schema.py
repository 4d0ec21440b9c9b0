"""Pandera (polars backend) contract of an accepted chunk, applied as a last check.

Normalisation already produces values of these shapes; the schema is the
independent statement of the contract that downstream code (database COPY,
dedup, enrichment) relies on. Rows that break it are moved to the rejected
frame with the failed check as the reason instead of failing the file.
"""

from __future__ import annotations

from functools import lru_cache

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from outreach_core.ingest.columns import STANDARD_COLUMNS
from outreach_core.ingest.normalise import ROW_NUMBER

E164_PATTERN = r"^\+[1-9]\d{6,14}$"

_COLUMN_CHECKS: dict[str, list[pa.Check]] = {
    "phone": [pa.Check.str_matches(E164_PATTERN, error="e164")],
    "email": [pa.Check.str_matches(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", error="email_shape")],
    "state": [pa.Check.str_matches(r"^[A-Z]{2}$", error="usps_state")],
    "zip": [pa.Check.str_matches(r"^\d{5}$", error="zip5")],
    "sic_code": [pa.Check.str_matches(r"^\d{4}$", error="sic4")],
    "linkedin_url": [pa.Check.str_startswith("https://www.linkedin.com/", error="linkedin_url")],
}


def _has_identifier(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col("phone").is_not_null() | pl.col("email").is_not_null())


@lru_cache(maxsize=1)
def lead_schema() -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {
        ROW_NUMBER: pa.Column(pl.Int64, nullable=False, unique=True),
    }
    for name in STANDARD_COLUMNS:
        columns[name] = pa.Column(pl.String, checks=_COLUMN_CHECKS.get(name, []), nullable=True)
    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(_has_identifier, name="phone_or_email_present")],
        strict=True,
        ordered=True,
        name="accepted_leads",
    )


def validate_accepted(accepted: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``accepted`` into rows that pass the schema and (row_number, reason) failures.

    A failure that is not tied to particular rows (a wrong dtype, a missing
    column) is a bug in this package, not bad input, so it is raised.
    """
    try:
        lead_schema().validate(accepted, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        if cases.get_column("index").null_count():
            raise
        reasons = (
            cases.select(
                pl.col("index").cast(pl.Int64),
                pl.when(pl.col("schema_context") == "Column")
                .then(pl.format("schema check failed: {} {}", pl.col("column"), pl.col("check")))
                .otherwise(pl.format("schema check failed: {}", pl.col("check")))
                .alias("reason"),
            )
            .unique(maintain_order=True)
            .group_by("index", maintain_order=True)
            .agg(pl.col("reason").str.join("; "))
        )
        positions = reasons.get_column("index")
        failed = (
            accepted.with_row_index("_position")
            .join(reasons, left_on=pl.col("_position").cast(pl.Int64), right_on="index")
            .select(ROW_NUMBER, "reason")
        )
        keep = accepted.with_row_index("_position").filter(
            ~pl.col("_position").cast(pl.Int64).is_in(positions.implode())
        )
        return keep.drop("_position"), failed
    return accepted, accepted.select(
        ROW_NUMBER, pl.lit("", dtype=pl.String).alias("reason")
    ).clear()
