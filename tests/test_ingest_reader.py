"""File-level behaviour of the CSV reader: encodings, dialects, structure, errors."""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
import threading
from pathlib import Path

import polars as pl
import pytest

from outreach_core.ingest import STANDARD_COLUMNS, Chunk, IngestError, inspect_csv, read_chunks

HEADER = "Company Name,Phone,Email,City,State"


def write(tmp_path: Path, data: bytes | str, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_all(path: Path, chunk_rows: int = 200_000) -> tuple[pl.DataFrame, pl.DataFrame]:
    chunks = list(read_chunks(path, chunk_rows=chunk_rows))
    assert all(isinstance(c, Chunk) for c in chunks)
    accepted = pl.concat([c.accepted for c in chunks]) if chunks else _empty_accepted()
    rejected = pl.concat([c.rejected for c in chunks]) if chunks else _empty_rejected()
    return accepted, rejected


def _empty_accepted() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"row_number": pl.Int64, **dict.fromkeys(STANDARD_COLUMNS, pl.String)}
    )


def _empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema={"row_number": pl.Int64, "reason": pl.String, "raw": pl.String})


# --- output contract ---------------------------------------------------------------------


def test_chunk_schema_and_null_convention(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\nAcme,(212) 555-0100, ,  ,NY\nBad,1,,,\n")
    accepted, rejected = read_all(path)
    assert accepted.schema == pl.Schema(
        {"row_number": pl.Int64, **dict.fromkeys(STANDARD_COLUMNS, pl.String)}
    )
    assert rejected.schema == pl.Schema(
        {"row_number": pl.Int64, "reason": pl.String, "raw": pl.String}
    )
    row = accepted.row(0, named=True)
    assert row["phone"] == "+12125550100"
    assert row["email"] is None and row["city"] is None  # blank cells are null, never ""
    assert rejected["row_number"].to_list() == [2]
    for column in STANDARD_COLUMNS:
        assert (accepted[column] == "").sum() == 0


def test_row_numbers_count_data_records_after_the_header(tmp_path: Path) -> None:
    lines = [HEADER]
    lines.append("Acme,2125550101,,,NY")  # row 1
    lines.append('"Multi\nline Co",2125550102,,,NY')  # row 2 spans two lines
    lines.append("")  # row 3: blank line, skipped but counted
    lines.append("Bad,123,,,NY")  # row 4
    lines.append("Zed,2125550104,,,NY")  # row 5
    accepted, rejected = read_all(write(tmp_path, "\n".join(lines) + "\n"))
    assert accepted["row_number"].to_list() == [1, 2, 5]
    assert accepted["company_name"].to_list() == ["Acme", "Multi\nline Co", "Zed"]
    assert rejected["row_number"].to_list() == [4]


def test_row_numbers_are_continuous_across_chunks(tmp_path: Path) -> None:
    rows = [f"Co {i},212555{i:04d},,," for i in range(1, 2_501)]
    rows[99] = "Co 100,not a phone,,,"
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    chunks = list(read_chunks(path, chunk_rows=300))
    assert all(c.accepted.height + c.rejected.height <= 300 for c in chunks)
    accepted = pl.concat([c.accepted for c in chunks])
    rejected = pl.concat([c.rejected for c in chunks])
    numbers = sorted(accepted["row_number"].to_list() + rejected["row_number"].to_list())
    assert numbers == list(range(1, 2_501))
    assert rejected["row_number"].to_list() == [100]
    assert accepted.filter(pl.col("row_number") == 2_500)["company_name"].item() == "Co 2500"


# --- encodings ---------------------------------------------------------------------------


CAFE = "Company Name,Phone\nCafé Müller,2125550100\nCrêperie Ørsted – “Best”,2125550101\n"


@pytest.mark.parametrize(
    ("encoded", "label"),
    [
        (CAFE.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + CAFE.encode("utf-8"), "utf-8 (BOM)"),
        (CAFE.encode("utf-16"), "utf-16-le (BOM)"),
        (codecs.BOM_UTF16_BE + CAFE.encode("utf-16-be"), "utf-16-be (BOM)"),
        (CAFE.encode("utf-16-le"), "utf-16-le (no BOM, detected)"),
        (CAFE.encode("cp1252"), "cp1252 (detected)"),
    ],
)
def test_encodings_are_detected_and_text_preserved(
    tmp_path: Path, encoded: bytes, label: str
) -> None:
    path = write(tmp_path, encoded)
    assert inspect_csv(path).encoding.label == label
    accepted, rejected = read_all(path)
    assert rejected.height == 0
    assert accepted["company_name"].to_list() == ["Café Müller", "Crêperie Ørsted – “Best”"]


def test_latin1_file(tmp_path: Path) -> None:
    text = "Company Name,Phone\nCafé Müller,2125550100\nÑandú Größe,2125550101\n"
    path = write(tmp_path, text.encode("latin-1"))
    assert inspect_csv(path).encoding.codec == "cp1252"  # a superset for printable text
    accepted, _ = read_all(path)
    assert accepted["company_name"].to_list() == ["Café Müller", "Ñandú Größe"]


def test_latin1_bytes_inside_a_utf8_file_are_read_as_cp1252(tmp_path: Path) -> None:
    head = "Company Name,Phone\n" + "".join(f"Co {i},2125550{i:03d}\n" for i in range(100, 999))
    data = head.encode("utf-8") * 100 + "Café Müller,2125550999\n".encode("cp1252")
    accepted, _ = read_all(write(tmp_path, data))
    assert inspect_csv(tmp_path / "leads.csv").encoding.codec == "utf-8"
    assert accepted["company_name"][-1] == "Café Müller"


def test_mixed_utf8_and_cp1252_in_the_sample(tmp_path: Path) -> None:
    data = (
        b"Company Name,Phone\n"
        + "Müller GmbH,2125550100\n".encode("cp1252")
        + "Café Zoë,2125550101\n".encode() * 3
    )
    path = write(tmp_path, data)
    assert inspect_csv(path).encoding.codec == "utf-8"
    accepted, _ = read_all(path)
    assert accepted["company_name"].to_list() == ["Müller GmbH"] + ["Café Zoë"] * 3


def test_nul_bytes_are_dropped(tmp_path: Path) -> None:
    data = b"Company Name,Phone\nAc\x00me,212\x00555\x000100\n\x00\nBob,2125550101\n"
    accepted, rejected = read_all(write(tmp_path, data))
    assert accepted["company_name"].to_list() == ["Acme", "Bob"]
    assert accepted["phone"].to_list() == ["+12125550100", "+12125550101"]
    assert rejected.height == 0


# --- whole-file failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\n\n  \r\n", "file is empty"),
        (codecs.BOM_UTF8, "file is empty"),
        (random.Random(7).randbytes(4096), "binary"),
        (bytes(range(256)) * 64, "binary"),
        (b"\x89PNG\r\n\x1a\n" + bytes(2000), "png"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(500), "xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), ".xls"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "pdf"),
        (b"\x00" * 3000 + b"a,b\n", "binary"),
        (b"foo,bar\n1,2\n", "no usable column"),
    ],
)
def test_unusable_files_raise_before_any_chunk(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(IngestError) as caught:
        read_chunks(path)
    assert message in str(caught.value).lower()


def test_no_usable_column_names_the_columns_found(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as caught:
        read_chunks(write(tmp_path, "foo,Bar Baz,,qux\n1,2,3,4\n"))
    text = str(caught.value)
    assert text.startswith("no usable column: expected one of phone, email, company name")
    assert text.endswith("found: foo, Bar Baz, column_3, qux")


def test_header_only_file_yields_no_chunks(tmp_path: Path) -> None:
    for content in (f"{HEADER}\n", HEADER, f"{HEADER}\r\n\r\n\n"):
        assert list(read_chunks(write(tmp_path, content))) == []


# --- dialects and structure --------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [
        ["Company Name", "Phone", "Address", "Notes"],
        ["Acme, Inc.", "(212) 555-0100", "1 Main St; Suite 2", "a|b\tc"],
        ["Bob's", "212.555.0101", "2 Main St", "x"],
    ]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    path = write(tmp_path, out.getvalue())
    assert inspect_csv(path).delimiter == delimiter
    accepted, rejected = read_all(path)
    assert rejected.height == 0
    assert accepted["company_name"].to_list() == ["Acme, Inc.", "Bob's"]
    assert accepted["address"].to_list() == ["1 Main St; Suite 2", "2 Main St"]


def test_excel_sep_line_sets_the_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path, "sep=;\r\nCompany Name;Phone\r\nAcme, Inc.;2125550100\r\n")
    assert inspect_csv(path).delimiter == ";"
    accepted, _ = read_all(path)
    assert accepted["company_name"].to_list() == ["Acme, Inc."]


def test_quoted_fields_with_newlines_delimiters_and_quotes(tmp_path: Path) -> None:
    data = (
        "Company Name,Phone,Address\r\n"
        '"Acme, ""The Best"" Inc.",2125550100,"1 Main St\r\nSuite 2"\r\n'
        '"",2125550101,"a,b\nc"\r\n'
        'Plain,2125550102,""""\r\n'
    )
    accepted, rejected = read_all(write(tmp_path, data))
    assert rejected.height == 0
    assert accepted["company_name"].to_list() == ['Acme, "The Best" Inc.', None, "Plain"]
    assert accepted["address"].to_list() == ["1 Main St\r\nSuite 2", "a,b\nc", '"']
    assert accepted["row_number"].to_list() == [1, 2, 3]


def test_mixed_line_endings(tmp_path: Path) -> None:
    data = b'Company Name,Phone\r\nA,2125550100\nB,2125550101\rC,2125550102\r\n"D\rx",2125550103\r'
    accepted, rejected = read_all(write(tmp_path, data))
    assert rejected.height == 0
    assert accepted["company_name"].to_list() == ["A", "B", "C", "D\nx"]
    assert accepted["row_number"].to_list() == [1, 2, 3, 4]


def test_literal_quotes_inside_unquoted_fields(tmp_path: Path) -> None:
    # Excel and the csv module read these quotes literally; a parity-based parser
    # would swallow the following lines. 200 rows keep the fast path busy too.
    rows = [f"Co {i},212555{i:04d},Note {i}" for i in range(1, 201)]
    rows[9] = 'TV 55" Store,2125550010,12" pizza'
    rows[19] = '"Acme" Inc,2125550020,x'
    path = write(tmp_path, "Company Name,Phone,Notes\n" + "\n".join(rows) + "\n")
    accepted, rejected = read_all(path)
    assert rejected.height == 0 and accepted.height == 200
    assert accepted["row_number"].to_list() == list(range(1, 201))
    by_row = dict(zip(accepted["row_number"], accepted["company_name"], strict=True))
    assert by_row[10] == 'TV 55" Store'
    assert by_row[20] == "Acme Inc"
    assert by_row[21] == "Co 21"


def test_ragged_rows(tmp_path: Path) -> None:
    data = (
        "Company Name,Phone,Email,City\n"
        "Short,2125550100\n"  # too few: missing cells are null
        "Long,2125550101,a@b.com,Troy,extra,more\n"  # too many: rejected
        "Trailing,2125550102,,Troy,,,\n"  # empty extras: ignored
        "Way too long,2125550103,,,1,2,3,4,5,6,7\n"
    )
    accepted, rejected = read_all(write(tmp_path, data))
    assert accepted["company_name"].to_list() == ["Short", "Trailing"]
    assert accepted["city"].to_list() == [None, "Troy"]
    assert rejected["row_number"].to_list() == [2, 4]
    assert rejected["reason"].to_list() == [
        "row has 6 fields, header has 4",
        "row has more than 7 fields, header has 4",
    ]
    raw = json.loads(rejected["raw"][0])
    assert raw == {
        "Company Name": "Long",
        "Phone": "2125550101",
        "Email": "a@b.com",
        "City": "Troy",
        "_extra": ["extra", "more"],
    }


def test_duplicate_and_missing_headers(tmp_path: Path) -> None:
    data = (
        "Phone,Company,,Phone,Email,Company Name\n"
        "not a phone,Acme,x,(212) 555-0100,,Ignored Co\n"
        ",Bob,,2125550101,,\n"
    )
    path = write(tmp_path, data)
    layout = inspect_csv(path)
    assert layout.mapping.names == (
        "Phone",
        "Company",
        "column_3",
        "Phone (2)",
        "Email",
        "Company Name",
    )
    assert layout.mapping.sources["phone"] == (0, 3)  # second Phone: fall-back candidate
    assert layout.mapping.sources["company_name"] == (1,)  # left-most wins
    accepted, rejected = read_all(path)
    assert rejected.height == 0
    assert accepted["phone"].to_list() == ["+12125550100", "+12125550101"]
    assert accepted["company_name"].to_list() == ["Acme", "Bob"]


def test_unmatched_quote_raises_with_the_row_where_it_opened(tmp_path: Path) -> None:
    rows = [f"Co {i},212555{i:04d}" for i in range(1, 3_000)]
    rows[1233] = '"Broken Co,2125551234'  # row 1234
    path = write(tmp_path, "Company Name,Phone\n" + "\n".join(rows) + "\n")
    seen: list[int] = []
    with pytest.raises(IngestError, match=r"^unterminated quoted field starting at row 1234$"):
        for chunk in read_chunks(path, chunk_rows=500):
            seen += chunk.accepted["row_number"].to_list()
    assert seen == list(range(1, 1234))  # everything before it was delivered


def test_unmatched_quote_in_a_small_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'Company Name,Phone\nA,2125550100\nB,"2125550101\nC,2125550102\n')
    with pytest.raises(IngestError, match="row 2"):
        list(read_chunks(path))


def test_unmatched_quote_in_header(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="header"):
        read_chunks(write(tmp_path, 'Company Name,"Phone\nA,1\n'))


def test_closing_early_stops_the_reader(tmp_path: Path) -> None:
    rows = "".join(f"Co {i},212555{i:04d}\n" for i in range(5_000))
    path = write(tmp_path, "Company Name,Phone\n" + rows)
    before = threading.active_count()
    chunks = read_chunks(path, chunk_rows=500)
    first = next(chunks)
    assert first.accepted.height == 500
    chunks.close()  # type: ignore[attr-defined]
    assert threading.active_count() == before


# --- volume ------------------------------------------------------------------------------


def test_one_valid_row_among_ten_thousand_invalid(tmp_path: Path) -> None:
    rows = ["Bad Co,555,nope,,"] * 10_000
    rows.insert(5_000, "Good Co,2125550123,,,")
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    accepted, rejected = read_all(path, chunk_rows=4_000)
    assert accepted.height == 1 and rejected.height == 10_000
    assert accepted.row(0, named=True)["phone"] == "+12125550123"
    assert accepted["row_number"].to_list() == [5_001]
    assert set(rejected["reason"]) == {"invalid phone: ***555; invalid email"}
    assert rejected["row_number"].n_unique() == 10_000


def _messy_file(tmp_path: Path, rows: int, seed: int) -> tuple[Path, int]:
    """A file mixing every defect the reader handles; returns (path, data rows)."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=rnd.choice(["\n", "\r\n"]))
    writer.writerow(["First Name", "Last Name", "Phone", "E-mail", "Company", "Zip", "Notes"])
    values = [
        "", " ", "John", "Müller", "=SUM(A1)", "+1 (212) 555-0100", "212.555.0101 x12",
        "bad", "A@B.COM", "a@b", 'Say "hi"', "line\nbreak", "a,b", "02134", "N/A", '55" TV',
        "+44 20 7946 0958", "2125550102.0", "12345-6789", "\t@cmd",
    ]  # fmt: skip
    count = 0
    for _ in range(rows):
        width = rnd.choice([7] * 20 + [3, 5, 8, 9])
        row = [rnd.choice(values) for _ in range(width)]
        if not any(cell.strip() for cell in row):
            row[0] = "x"  # keep every row non-blank so the count stays exact
        writer.writerow(row)
        count += 1
    text = out.getvalue()
    # Literal quotes in unquoted fields, as hand-edited files have them.
    text = text.replace('"55"" TV"', '55" TV')
    return write(tmp_path, text.encode(rnd.choice(["utf-8", "utf-8-sig", "cp1252"]))), count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rows_in_equal_accepted_plus_rejected(tmp_path: Path, seed: int) -> None:
    path, count = _messy_file(tmp_path, 3_000, seed)
    accepted, rejected = read_all(path, chunk_rows=700)
    numbers = accepted["row_number"].to_list() + rejected["row_number"].to_list()
    assert sorted(numbers) == list(range(1, count + 1))
    assert accepted.height and rejected.height
    assert rejected["reason"].null_count() == 0
    assert all(isinstance(json.loads(raw), dict) for raw in rejected["raw"])
    assert (accepted["phone"].is_not_null() | accepted["email"].is_not_null()).all()
