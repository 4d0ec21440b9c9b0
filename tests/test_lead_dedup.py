"""Duplicate contacts inside one file: grouped by phone, then email, merged in file order."""

from __future__ import annotations

import polars as pl

from outreach_core.leads.dedup import group_leaders, merge_groups


def frame(rows: list[tuple[int, str | None, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["row_number", "phone", "email", "title"], orient="row")


def test_chain_of_phone_and_email_merges_into_the_first_row() -> None:
    rows = frame(
        [
            (1, "+12125550001", None, None),
            (2, "+12125550001", "e@x.com", "Owner"),  # same phone as 1
            (3, "+12125550003", "e@x.com", "CEO"),  # same email as 2
            (4, "+12125550003", None, None),  # same phone as 3
            (5, "+12125550005", "other@x.com", None),  # alone
            (6, None, None, "orphan"),  # no keys: alone
        ]
    )
    leaders = group_leaders(rows)
    assert leaders.sort("row_number")["leader"].to_list() == [1, 1, 1, 1, 5, 6]
    with_leader = rows.join(leaders.select("row_number", "leader"), on="row_number")
    merged = merge_groups(with_leader.filter(pl.col("row_number") <= 4))
    # First non-empty value of each column, in file order; later values never replace it.
    assert merged.to_dicts() == [
        {"row_number": 1, "phone": "+12125550001", "email": "e@x.com", "title": "Owner"}
    ]


def test_sizes_mark_rows_that_need_merging() -> None:
    rows = frame(
        [
            (1, "+1", None, None),
            (2, None, "a@x", None),  # joins 1 through row 3, which has both keys
            (3, "+1", "a@x", None),
            (4, "+4", "b@x", None),
        ]
    )
    sizes = dict(group_leaders(rows).select("row_number", "size").iter_rows())
    assert sizes == {1: 3, 2: 3, 3: 3, 4: 1}
