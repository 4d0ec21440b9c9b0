"""CSV export that cannot inject formulas into Excel / LibreOffice / Google Sheets.

Values are stored raw; escaping happens only when writing a CSV for people to
open in a spreadsheet (the rejected-rows file, exports). A cell whose first
non-blank character is ``= + - @``, or that starts with a tab or carriage
return, is prefixed with a single quote, as OWASP recommends; the spreadsheet
then shows it as text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import polars as pl

_TRIGGER = re.compile(r"^\s*[=+\-@\t\r]")
# Same rule for polars' regex engine.
_TRIGGER_PATTERN = r"^\s*[=+\-@\t\r]"


def neutralise_formula(value: str | None) -> str | None:
    """``"'" + value`` when a spreadsheet would read ``value`` as a formula."""
    if value is None or not _TRIGGER.match(value):
        return value
    return "'" + value


def neutralise_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised :func:`neutralise_formula` for a String expression."""
    return pl.when(expr.str.contains(_TRIGGER_PATTERN)).then(pl.lit("'") + expr).otherwise(expr)


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if dtype == pl.String:
        return neutralise_expr(column)
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return neutralise_expr(column.cast(pl.String))
    # CSV has no nested values: write them as JSON, which starts with "{" or "["
    # and so can never be read as a formula.
    if isinstance(dtype, pl.Struct):
        return column.struct.json_encode()
    if isinstance(dtype, pl.List | pl.Array):
        wrapped = pl.struct(column.alias("v")).struct.json_encode()
        return pl.when(column.is_not_null()).then(
            wrapped.str.strip_prefix('{"v":').str.strip_suffix("}")
        )
    return column


def write_csv_safely(df: pl.DataFrame, dest: BinaryIO | Path | str) -> None:
    """Write ``df`` as UTF-8 CSV with every text cell passed through the formula guard."""
    safe = df.select(_as_text(name, dtype).alias(name) for name, dtype in df.schema.items())
    target = Path(dest) if isinstance(dest, str) else dest
    safe.write_csv(target)
