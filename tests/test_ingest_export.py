"""Formula-injection guard on CSV export; values themselves are stored raw."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest

from outreach_core.ingest import neutralise_formula, read_chunks, write_csv_safely


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\tplain", "'\tplain"),
        ('   =HYPERLINK("x")', '\'   =HYPERLINK("x")'),
        ("\u00a0=1", "'\u00a0=1"),
        ("Acme", "Acme"),
        ("a=b", "a=b"),
        ("john@example.com", "john@example.com"),
        ("", ""),
        (None, None),
    ],
)
def test_neutralise_formula(value: str | None, expected: str | None) -> None:
    assert neutralise_formula(value) == expected


def test_write_csv_safely_neutralises_every_string_cell(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "row_number": [1, 2, 3],
            "reason": ["=bad", "ok", None],
            "raw": ['{"a":"=1"}', " @x", "-"],
            "score": [-1.5, 2.0, 3.0],
            "tags": [["=a"], [], None],
        }
    )
    target = tmp_path / "out.csv"
    write_csv_safely(frame, target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows == [
        ["row_number", "reason", "raw", "score", "tags"],
        ["1", "'=bad", '{"a":"=1"}', "-1.5", '["=a"]'],
        ["2", "ok", "' @x", "2.0", "[]"],
        ["3", "", "'-", "3.0", ""],
    ]
    buffer = io.BytesIO()
    write_csv_safely(frame, buffer)
    assert buffer.getvalue() == target.read_bytes()


def test_formula_cells_are_stored_raw_and_escaped_on_export(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "Company Name,Phone,Notes\n"
        '"=HYPERLINK(""http://evil"",""x"")",2125550100,a\n'
        "  +cmd,123,@notes\n",
        encoding="utf-8",
    )
    [chunk] = list(read_chunks(path))
    assert chunk.accepted["company_name"].to_list() == ['=HYPERLINK("http://evil","x")']
    assert json.loads(chunk.rejected["raw"][0]) == {
        "Company Name": "  +cmd",
        "Phone": "123",
        "Notes": "@notes",
    }
    out = io.BytesIO()
    write_csv_safely(chunk.accepted, out)
    [header, row] = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8"))))
    assert row[header.index("company_name")] == '\'=HYPERLINK("http://evil","x")'
    assert row[header.index("phone")] == "'+12125550100"
    out = io.BytesIO()
    write_csv_safely(chunk.rejected, out)
    [header, row] = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8"))))
    assert row[header.index("reason")] == "invalid phone: ***123"
    assert json.loads(row[header.index("raw")])["Company Name"] == "  +cmd"
