"""Duplicate contacts inside one file, merged before anything reaches the database.

Rows are grouped by E.164 phone, then those groups by email (the first email each group
has); every row of a group merges into the group's first row, whose empty fields are filled
from the later rows in file order. Only the keys of the whole file are held in memory (three
narrow columns), plus the rows that have a duplicate: everything else streams through."""

from __future__ import annotations

import polars as pl


def group_leaders(keys: pl.DataFrame) -> pl.DataFrame:
    """row_number, phone, email -> row_number, leader (first row of its group), size; in
    the order of `keys`."""
    rows = keys.select("row_number", "phone", "email").with_columns(
        pl.when(pl.col("phone").is_not_null())
        .then(pl.col("row_number").min().over("phone"))
        .otherwise(pl.col("row_number"))
        .alias("phone_group")
    )
    group_email = (
        rows.filter(pl.col("email").is_not_null())
        .sort("row_number")
        .group_by("phone_group")
        .agg(pl.col("email").first().alias("group_email"))
    )
    rows = rows.join(group_email, on="phone_group", how="left", maintain_order="left")
    leader = (
        pl.when(pl.col("group_email").is_not_null())
        .then(pl.col("phone_group").min().over("group_email"))
        .otherwise(pl.col("phone_group"))
    )
    return (
        rows.with_columns(leader.alias("leader"))
        .with_columns(pl.len().over("leader").alias("size"))
        .select("row_number", "leader", "size")
    )


def merge_groups(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with their `leader` column -> one row per group: the first non-empty value of
    every column, in file order, numbered as the group's first row."""
    columns = [c for c in rows.columns if c not in ("row_number", "leader")]
    return (
        rows.sort("row_number")
        .group_by("leader", maintain_order=True)
        .agg(*(pl.col(c).drop_nulls().first() for c in columns))
        .rename({"leader": "row_number"})
        .select("row_number", *columns)
    )
