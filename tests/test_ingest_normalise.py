"""Column mapping and value normalisation, table-driven through the public reader."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest

from outreach_core.ingest import STANDARD_COLUMNS, inspect_csv, read_chunks
from outreach_core.ingest.columns import alias_table, header_key

VALID_EMAIL = "someone@example.com"


def read_rows(tmp_path: Path, header: list[str], rows: list[list[str]]) -> pl.DataFrame:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "leads.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    chunks = list(read_chunks(path))
    accepted = pl.concat([c.accepted for c in chunks])
    rejected = pl.concat([c.rejected for c in chunks])
    assert rejected.height == 0, rejected.to_dicts()
    return accepted.sort("row_number")


def normalised(tmp_path: Path, column: str, values: list[str]) -> list[str | None]:
    """Values of one standard column after normalisation (rows kept alive by an email)."""
    header = ["Email", column] if column != "Email" else ["Phone", "Email"]
    anchor = VALID_EMAIL if column != "Email" else "2125550100"
    accepted = read_rows(tmp_path, header, [[anchor, value] for value in values])
    target = inspect_csv(tmp_path / "leads.csv").mapping
    name = next(std for std, idx in target.sources.items() if 1 in idx)
    return accepted[name].to_list()


# --- column mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Company Name", "company_name"),
        ("COMPANY NAME", "company_name"),
        ("company_name", "company_name"),
        (" Business Name ", "company_name"),
        ("Company", "company_name"),
        ("Phone", "phone"),
        ("Phone Number", "phone"),
        ("Mobile", "phone"),
        ("Cell", "phone"),
        ("Telephone", "phone"),
        ("Direct Phone", "phone"),
        ("Email", "email"),
        ("E-mail", "email"),
        ("Email Address", "email"),
        ("EMAIL_ADDRESS", "email"),
        ("First Name", "first_name"),
        ("FirstName", "first_name"),
        ("fname", "first_name"),
        ("Last Name", "last_name"),
        ("Contact Name", "contact_name"),
        ("Full Name", "contact_name"),
        ("Owner Name", "contact_name"),
        ("Job Title", "title"),
        ("Title", "title"),
        ("Position", "title"),
        ("LinkedIn", "linkedin_url"),
        ("LinkedIn URL", "linkedin_url"),
        ("Linkedin Profile", "linkedin_url"),
        ("Website", "website"),
        ("Web Site", "website"),
        ("URL", "website"),
        ("Domain", "website"),
        ("Address", "address"),
        ("Street", "address"),
        ("Address 1", "address"),
        ("Street Address", "address"),
        ("City", "city"),
        ("County", "county"),
        ("State", "state"),
        ("ST", "state"),
        ("Province", "state"),
        ("Zip", "zip"),
        ("Zip Code", "zip"),
        ("Postal Code", "zip"),
        ("ZIP5", "zip"),
        ("SIC", "sic_code"),
        ("SIC Code", "sic_code"),
        ("Primary SIC", "sic_code"),
    ],
)
def test_header_variants_map_to_standard_columns(header: str, column: str) -> None:
    assert alias_table()[header_key(header)] == column


def test_alias_table_only_targets_standard_columns() -> None:
    assert set(alias_table().values()) <= set(STANDARD_COLUMNS)
    assert header_key("  E-Mail_Address ") == "emailaddress"


def test_unknown_columns_are_ignored(tmp_path: Path) -> None:
    accepted = read_rows(
        tmp_path, ["Favourite Colour", "Phone", "Notes"], [["blue", "2125550100", "hi"]]
    )
    assert accepted.columns == ["row_number", *STANDARD_COLUMNS]
    assert accepted.row(0, named=True)["phone"] == "+12125550100"


# --- phones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(212) 555-0100", "+12125550100"),
        ("212.555.0100", "+12125550100"),
        ("212-555-0100", "+12125550100"),
        ("2125550100", "+12125550100"),
        ("+1 212 555 0100", "+12125550100"),
        ("+1 (212) 555-0100", "+12125550100"),
        ("1-212-555-0100", "+12125550100"),
        ("1 212 555 0100", "+12125550100"),
        ("+12125550100", "+12125550100"),
        (" 212 555 0100 ", "+12125550100"),
        ("212/555-0100", "+12125550100"),
        ("212\u00a0555\u00a00100", "+12125550100"),
        ("212–555–0100", "+12125550100"),  # en dashes: phonenumbers fall-back
        ("2125550100.0", "+12125550100"),  # spreadsheet float
        ("(212) 555-0100 x123", "+12125550100"),
        ("212-555-0100 ext. 45", "+12125550100"),
        ("212.555.0100 EXT 7", "+12125550100"),
        ("212-555-0100 extension 7", "+12125550100"),
        ("212-555-0100 #12", "+12125550100"),
        ("212-555-0100, ext 9", "+12125550100"),
        ("+44 20 7946 0958", "+442079460958"),
        ("011 44 20 7946 0958", "+442079460958"),
        ("1-800-FLOWERS", "+18003569377"),
        # invalid
        ("555-0100", None),
        ("123", None),
        ("(012) 555-0100", None),  # area code starts with 0
        ("(112) 555-0100", None),  # area code starts with 1
        ("(212) 055-0100", None),  # exchange starts with 0
        ("(212) 155-0100", None),  # exchange starts with 1
        ("2-212-555-0100", None),
        ("212555010", None),
        ("21255501000", None),
        ("+1 212 555 01000", None),
        ("+44 12", None),
        ("2.12555E+09", None),
        ("N/A", None),
        ("call me", None),
    ],
)
def test_phone_normalisation(tmp_path: Path, raw: str, e164: str | None) -> None:
    assert normalised(tmp_path, "Phone", [raw]) == [e164]


def test_phone_column_in_bulk_matches_one_by_one(tmp_path: Path) -> None:
    values = ["(212) 555-0100", "bad", "+44 20 7946 0958", "212.555.0101 x1", ""] * 300
    result = normalised(tmp_path, "Phone", values)
    assert result[:5] == ["+12125550100", None, "+442079460958", "+12125550101", None]
    assert result == result[:5] * 300


def test_alternate_phone_columns_are_fallbacks(tmp_path: Path) -> None:
    accepted = read_rows(
        tmp_path,
        ["Phone", "Mobile", "Email"],
        [
            ["(212) 555-0100", "(917) 555-0100", ""],
            ["not valid", "(917) 555-0101", ""],
            ["", "917 555 0102", ""],
            ["bad", "worse", VALID_EMAIL],
        ],
    )
    assert accepted["phone"].to_list() == ["+12125550100", "+19175550101", "+19175550102", None]


# --- acceptance rule and reasons ---------------------------------------------------------


def test_reject_rules_and_masked_reasons(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "Company Name,Phone,Email\n"
        "A,(212) 555-0100,not-an-email\n"  # valid phone, bad email: accepted, email null
        "B,555-0199,b@example.com\n"  # bad phone, valid email: accepted, phone null
        "C,(212) 555-01,\n"  # bad phone, no email: rejected, masked
        "D,,\n"  # nothing: rejected
        "E,,bad@\n"  # bad email only
        "F,99 12 3456 7890,bad@\n"  # both bad
        "G,N/A,\n",  # placeholder phone is no phone
        encoding="utf-8",
    )
    chunks = list(read_chunks(path))
    accepted = pl.concat([c.accepted for c in chunks])
    rejected = pl.concat([c.rejected for c in chunks])
    assert accepted.select("company_name", "phone", "email").rows() == [
        ("A", "+12125550100", None),
        ("B", None, "b@example.com"),
    ]
    assert rejected.select("row_number", "reason").rows() == [
        (3, "invalid phone: ***5501"),
        (4, "no phone or email"),
        (5, "invalid email, no phone"),
        (6, "invalid phone: ***7890; invalid email"),
        (7, "no phone or email"),
    ]
    for reason in rejected["reason"]:
        assert "2125550" not in reason and "1234567890" not in reason
    assert json.loads(rejected["raw"][0]) == {
        "Company Name": "C",
        "Phone": "(212) 555-01",
        "Email": None,
    }


# --- e-mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John.Smith@Example.COM", "john.smith@example.com"),
        ("  a@b.co  ", "a@b.co"),
        ("mailto:Sales@Acme.com", "sales@acme.com"),
        ("Jane Doe <jane@acme.com>", "jane@acme.com"),
        ("a@x.com; b@y.com", "a@x.com"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
        ("josé@exämple.de", "josé@exämple.de"),
        ("user@xn--80ak6aa92e.com", "user@xn--80ak6aa92e.com"),
        ("not-an-email", None),
        ("a@b", None),
        ("a@b.c", None),
        ("a..b@example.com", None),
        ("@example.com", None),
        ("a@-example.com", None),
        ("Call jane@acme.com today", "jane@acme.com"),
        ("x" * 250 + "@example.com", None),
    ],
)
def test_email_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "Email", [raw]) == [expected]


# --- address parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NY", "NY"),
        ("ny", "NY"),
        (" New York ", "NY"),
        ("new york", "NY"),
        ("Calif.", "CA"),
        ("Mass", "MA"),
        ("N.Y.", "NY"),
        ("District of Columbia", "DC"),
        ("Washington DC", "DC"),
        ("Puerto Rico", "PR"),
        ("Texas", "TX"),
        ("ZZ", None),
        ("Ontario", None),
        ("N/A", None),
    ],
)
def test_state_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "State", [raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("02134", "02134"),
        ("2134", "02134"),
        ("501", "00501"),
        ("12345-6789", "12345"),
        ("123456789", "12345"),
        ("2134-5678", "02134"),
        ("12345.0", "12345"),
        (" 12345 ", "12345"),
        ("1234567890", None),
        ("12", None),
        ("abcde", None),
        ("K1A 0B1", None),
    ],
)
def test_zip_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "Zip", [raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7311", "7311"),
        ("7311.0", "7311"),
        ("731", "0731"),
        ("731101", "7311"),
        ("73110101", "7311"),
        ("12", None),
        ("12345", None),
        ("abcd", None),
    ],
)
def test_sic_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "SIC Code", [raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.linkedin.com/in/john-doe", "https://www.linkedin.com/in/john-doe"),
        ("linkedin.com/in/John-Doe/", "https://www.linkedin.com/in/john-doe"),
        ("http://uk.linkedin.com/in/jane?trk=abc", "https://www.linkedin.com/in/jane"),
        ("www.linkedin.com/company/acme-inc/about", "https://www.linkedin.com/company/acme-inc"),
        ("HTTPS://WWW.LINKEDIN.COM/IN/X", "https://www.linkedin.com/in/x"),
        ("https://example.com/in/john", None),
        ("john-doe", None),
        ("https://www.linkedin.com/feed/", None),
    ],
)
def test_linkedin_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "LinkedIn URL", [raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Example.com/about", "example.com"),
        ("HTTP://Acme.CO.uk", "acme.co.uk"),
        ("www.acme.com", "acme.com"),
        ("acme.com:8080/x?y=1", "acme.com"),
        ("shop.acme.com", "shop.acme.com"),
        ("info@acme.com", None),
        ("n/a", None),
        ("localhost", None),
    ],
)
def test_website_normalisation(tmp_path: Path, raw: str, expected: str | None) -> None:
    assert normalised(tmp_path, "Website", [raw]) == [expected]


# --- names and plain text ----------------------------------------------------------------


def test_contact_name_from_first_and_last(tmp_path: Path) -> None:
    accepted = read_rows(
        tmp_path,
        ["First Name", "Last Name", "Phone"],
        [[" John ", "Smith", "2125550100"], ["", "Jones", "2125550101"], ["", "", "2125550102"]],
    )
    assert accepted["contact_name"].to_list() == ["John Smith", "Jones", None]
    assert accepted["first_name"].to_list() == ["John", None, None]


def test_first_and_last_from_contact_name(tmp_path: Path) -> None:
    accepted = read_rows(
        tmp_path,
        ["Contact Name", "Phone"],
        [
            ["Mary Ann Smith", "2125550100"],
            ["Smith, John", "2125550101"],
            ["Dr. Jane Doe Jr.", "2125550102"],
            ["Madonna", "2125550103"],
            ["", "2125550104"],
        ],
    )
    assert accepted.select("first_name", "last_name", "contact_name").rows() == [
        ("Mary", "Smith", "Mary Ann Smith"),
        ("John", "Smith", "Smith, John"),
        ("Jane", "Doe", "Dr. Jane Doe Jr."),
        (None, None, "Madonna"),
        (None, None, None),
    ]


def test_text_is_stripped_not_rewritten(tmp_path: Path) -> None:
    accepted = read_rows(
        tmp_path,
        ["Company", "Title", "City", "County", "Address", "Phone"],
        [["  ACME plumbing  ", "ceo", "new york", "Kings", " 1 Main St ", "2125550100"]],
    )
    assert accepted.select("company_name", "title", "city", "county", "address").row(0) == (
        "ACME plumbing",
        "ceo",
        "new york",
        "Kings",
        "1 Main St",
    )


@pytest.mark.parametrize("placeholder", ["NULL", "null", "N/A", "n/a", "#N/A", "NaN", "-", ""])
def test_placeholders_become_null(tmp_path: Path, placeholder: str) -> None:
    assert normalised(tmp_path, "Company", [placeholder]) == [None]


def test_names_that_look_like_placeholders_survive(tmp_path: Path) -> None:
    assert normalised(tmp_path, "Last Name", ["Na", "Nan", "Null-Smith"]) == [
        "Na",
        "Nan",
        "Null-Smith",
    ]


# --- pandera safety net ------------------------------------------------------------------


def test_schema_failures_move_rows_to_rejected() -> None:
    from outreach_core.ingest.schema import validate_accepted

    good = {name: None for name in STANDARD_COLUMNS} | {"phone": "+12125550100"}
    rows = [
        {"row_number": 1, **good},
        {"row_number": 2, **good, "phone": "2125550100", "zip": "123"},
        {"row_number": 3, **good, "phone": None},
        {"row_number": 4, **good, "state": "NY"},
    ]
    frame = pl.DataFrame(
        rows, schema={"row_number": pl.Int64, **dict.fromkeys(STANDARD_COLUMNS, pl.String)}
    )
    kept, failed = validate_accepted(frame)
    assert kept["row_number"].to_list() == [1, 4]
    assert failed.sort("row_number").rows() == [
        (2, "schema check failed: phone e164; schema check failed: zip zip5"),
        (3, "schema check failed: phone_or_email_present"),
    ]


def test_schema_failure_inside_read_chunks_keeps_the_raw_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach_core.ingest import normalise as module

    # Simulate a normalisation bug: the schema must catch it, row by row.
    monkeypatch.setattr(module, "state_lookup", lambda: {"NY": "NEW YORK", "TX": "TX"})
    path = tmp_path / "leads.csv"
    path.write_text("Phone,State\n2125550100,NY\n2125550101,TX\n", encoding="utf-8")
    [chunk] = list(read_chunks(path))
    assert chunk.accepted["row_number"].to_list() == [2]
    assert chunk.rejected.rows() == [
        (1, "schema check failed: state usps_state", '{"Phone":"2125550100","State":"NY"}')
    ]
