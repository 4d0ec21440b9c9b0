"""Bulk loading through COPY. PostgreSQL refuses COPY into a table under row-level security,
so rows go into a temporary staging table, from which an INSERT ... SELECT (checked by the
policies like any write) moves them."""

from __future__ import annotations

import io

import polars as pl
from sqlalchemy.orm import Session


def copy_frame(session: Session, table: str, frame: pl.DataFrame) -> None:
    """COPY `frame` (its columns, in order) into `table` within the session's transaction."""
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, null_value="")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    columns = ", ".join(frame.columns)
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy,
    ):
        view = buffer.getbuffer()
        step = 1 << 20
        for start in range(0, len(view), step):
            copy.write(view[start : start + step])
