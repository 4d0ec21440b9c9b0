"""The vectorised quote scanner agrees with the csv module on random messy input."""

from __future__ import annotations

import csv
import io
import random

import pytest

from outreach_core.ingest.records import QuoteScan, record_spans

ALPHABET = ['"', '"', ",", ";", "\n", "\r\n", "a", "b", " ", "é", '""']


def csv_records(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False))


@pytest.mark.parametrize("seed", range(40))
def test_record_boundaries_match_the_csv_module(seed: int) -> None:
    rnd = random.Random(seed)
    delimiter = rnd.choice([",", ";"])
    text = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 400)))
    data = text.encode("utf-8")
    scan = QuoteScan(data, delimiter)
    if scan.ends_inside_quotes:
        # The csv module agrees that the last field never closes: its quote is
        # the one the scanner points at.
        opened = scan.open_quote_position()
        head = data[:opened].decode("utf-8")
        tail = data[opened:].decode("utf-8")
        records = csv_records(head + tail, delimiter)
        assert records[-1][-1] == tail[1:].replace('""', '"')
        return
    starts, ends = record_spans(scan.boundaries(len(data)), len(data))
    pieces = [data[s:e].decode("utf-8") for s, e in zip(starts, ends, strict=True)]
    assert [row for piece in pieces for row in csv_records(piece, delimiter)] == csv_records(
        text, delimiter
    )
    for piece in pieces:
        assert len(csv_records(piece, delimiter)) <= 1


def test_cut_before_never_splits_a_quoted_field() -> None:
    data = b'a,"x\ny\nz",b\nc,d\n"e\n'
    scan = QuoteScan(data, ",")
    assert scan.cut_before(len(data)) == data.index(b"c,d") + 4
    assert scan.cut_before(data.index(b"z")) == 0
    assert scan.ends_inside_quotes
    assert data[scan.open_quote_position() :] == b'"e\n'


def test_unsafe_runs_are_the_ones_polars_would_misread() -> None:
    data = b'ok,"fine ""quoted""",x\n55" TV,b,c\n"Acme" Inc,b,c\n"",,\n'
    scan = QuoteScan(data, ",")
    unsafe = [data[p : p + 1] for p in scan.unsafe_starts]
    assert len(unsafe) == 2
    assert [int(p) for p in scan.unsafe_starts] == [data.index(b'" TV'), data.index(b'" Inc')]
