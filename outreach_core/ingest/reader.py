"""Streaming CSV reader: a lead file in, chunks of accepted and rejected rows out.

Pipeline per chunk (memory is bounded by the chunk, not the file):

1. :class:`Utf8Stream` yields normalised UTF-8 bytes (BOM skipped, transcoded,
   NULs dropped, bare ``\\r`` line breaks turned into ``\\n``).
2. :class:`QuoteScan` tracks the quote state with numpy, so a chunk (sized from
   the bytes per row seen so far) is cut at a record boundary, never inside a
   quoted field, and finds the few records whose quoting polars would read
   differently from the csv module.
3. polars parses the chunk (multi-threaded, all columns as text); the odd
   records, if any, go through the csv module and are merged back by row number.
   The next chunk is read and parsed in a worker thread meanwhile.
4. :func:`normalise` builds the standard columns and splits accepted/rejected;
   the pandera schema makes the final check.

Row numbers: ``row_number`` is the 1-based index of the data record, the header
record not counted (the first record after the header is row 1). A quoted value
with line breaks is part of one record; blank lines count as records but are
skipped (never accepted nor rejected), so a file opened in a spreadsheet shows
data row N on sheet row N + 1 when no cell spans lines.
"""

from __future__ import annotations

import csv
import io
import queue
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from outreach_core.ingest.columns import ColumnMapping, build_mapping
from outreach_core.ingest.dialect import EXCEL_SEP_LINE, sniff_delimiter
from outreach_core.ingest.encoding import (
    FALLBACK_ERRORS,
    SAMPLE_BYTES,
    SourceEncoding,
    Utf8Stream,
    detect_encoding,
    read_sample,
    repair_utf8,
)
from outreach_core.ingest.errors import IngestError
from outreach_core.ingest.normalise import ROW_NUMBER, normalise, raw_json
from outreach_core.ingest.records import IntArray, QuoteScan, record_spans
from outreach_core.ingest.schema import validate_accepted

# Fields beyond the header width that are kept to tell "trailing empty fields"
# (ignored) from "data in extra fields" (row rejected).
EXTRA_COLUMNS = 4
# One record may not exceed this: beyond it an unmatched quote is swallowing
# the file, and holding on would make memory grow with the file.
MAX_RECORD_BYTES = 4 << 20
DEFAULT_BYTES_PER_ROW = 160.0
# Upper bounds of one read and one chunk, so that a wrong row-size estimate or
# a huge chunk_rows cannot balloon memory.
MAX_READ_BYTES = 64 << 20
MAX_CHUNK_BYTES = 512 << 20

_BLANK_LINES = re.compile(rb"(?:[ \t\r]*\n)*")

# The csv module refuses fields over 128 KiB by default; records are already
# bounded by MAX_RECORD_BYTES, so the module's own limit only gets in the way.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))


@dataclass
class Chunk:
    """One slice of a file, at most ``chunk_rows`` records.

    ``accepted``: ``row_number`` (Int64) + :data:`STANDARD_COLUMNS` (String,
    null for missing values, never ``""``), normalised.
    ``rejected``: ``row_number`` (Int64), ``reason`` (String, no full phone
    numbers), ``raw`` (String: JSON object of header name -> original value,
    ``null`` for empty cells; the first four extra fields of a too-long row
    under ``_extra``).
    """

    accepted: pl.DataFrame
    rejected: pl.DataFrame


@dataclass(frozen=True)
class CsvLayout:
    """What :func:`inspect_csv` found out about a file before reading its rows."""

    path: Path
    encoding: SourceEncoding
    delimiter: str
    header: tuple[str, ...]
    mapping: ColumnMapping
    data_offset: int  # offset of the first data record in the normalised stream
    bytes_per_row: float

    @property
    def width(self) -> int:
        return len(self.header)


def inspect_csv(path: Path | str) -> CsvLayout:
    """Detect encoding, delimiter and header of a file and map its columns.

    Raises :class:`IngestError` for every whole-file problem that can be seen
    from the header: empty, binary or undecodable file, no usable column.
    """
    path = Path(path)
    with path.open("rb") as fh:
        sample, at_eof = read_sample(fh)
        encoding = detect_encoding(sample, at_eof=at_eof)
        stream = Utf8Stream(fh, encoding)
        buf = b""
        while True:
            buf += stream.read(max(SAMPLE_BYTES, len(buf)))
            start = _BLANK_LINES.match(buf).end()  # type: ignore[union-attr]
            delimiter, start = _excel_sep_line(buf, start)
            start = _BLANK_LINES.match(buf, start).end()  # type: ignore[union-attr]
            if delimiter is None:
                text = buf[start : start + SAMPLE_BYTES].decode("utf-8", FALLBACK_ERRORS)
                delimiter = sniff_delimiter(text, complete=stream.eof)
            body = buf[start:]
            scan = QuoteScan(body, delimiter)
            header_cut = scan.cut_before(len(body))
            if header_cut or stream.eof:
                break
            if len(buf) > MAX_RECORD_BYTES:
                raise IngestError(
                    "no line break in the first 4 MB: not a CSV file, or an unmatched "
                    "quote in the header row"
                )
    if start >= len(buf.rstrip()):
        raise IngestError("file is empty")
    if header_cut:
        # The first record-ending newline, not the last one in the buffer.
        header_cut = int(scan.boundaries(len(body))[0]) + 1
    elif scan.ends_inside_quotes:
        raise IngestError("unterminated quoted field in the header row")
    else:
        header_cut = len(body)
    data_offset = start + header_cut
    header_text = body[:header_cut].decode("utf-8", FALLBACK_ERRORS).rstrip("\r\n")
    header = next(csv.reader(io.StringIO(header_text), delimiter=delimiter, strict=False), [])
    mapping = build_mapping(header)

    rest = buf[data_offset:]
    lines = rest.count(b"\n")
    per_row = (rest.rindex(b"\n") + 1) / lines if lines else DEFAULT_BYTES_PER_ROW
    return CsvLayout(
        path=path,
        encoding=encoding,
        delimiter=delimiter,
        header=tuple(header),
        mapping=mapping,
        data_offset=data_offset,
        bytes_per_row=max(per_row, 8.0),
    )


def _excel_sep_line(buf: bytes, start: int) -> tuple[str | None, int]:
    end = buf.find(b"\n", start)
    if end < 0:
        return None, start
    match = EXCEL_SEP_LINE.match(buf[start:end].decode("utf-8", FALLBACK_ERRORS))
    if match is None or match.group(1) not in ",;\t|":
        return None, start
    return match.group(1), end + 1


def read_chunks(path: Path | str, *, chunk_rows: int = 200_000) -> Iterator[Chunk]:
    """Read, normalise and validate a lead CSV in chunks of at most ``chunk_rows`` records.

    Whole-file problems (empty, binary, undecodable, no usable column) raise
    :class:`IngestError` from this call, before any chunk. A header-only file
    yields no chunks. The only error raised mid-way is an unterminated quoted
    field: the records before it are yielded first, then IngestError names the
    row where the quote opened. Every other bad row lands in ``rejected``.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    layout = inspect_csv(path)
    return _iter_chunks(layout, chunk_rows)


def _iter_chunks(layout: CsvLayout, chunk_rows: int) -> Iterator[Chunk]:
    # Reading and parsing the next chunk overlaps with normalising this one:
    # both mostly run outside the GIL (file reads, numpy, polars).
    for frame in _prefetch(_iter_parsed(layout, chunk_rows)):
        chunk = _to_chunk(frame, layout)
        if chunk.accepted.height or chunk.rejected.height:
            yield chunk


_T = TypeVar("_T")


def _prefetch(source: Generator[_T, None, None]) -> Iterator[_T]:
    """Run ``source`` one item ahead in a worker thread, preserving order and errors.

    Closing the returned generator stops the worker after its current item and
    waits for it, so the file is closed by the time ``close()`` returns.
    """
    slot: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(message: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                slot.put(message, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in source:
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as error:  # re-raised in the consumer, in order
            offer(("error", error))
        finally:
            source.close()

    worker = threading.Thread(target=work, name="ingest-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == "item":
                yield value  # type: ignore[misc]
            elif kind == "done":
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def _iter_parsed(layout: CsvLayout, chunk_rows: int) -> Generator[pl.DataFrame, None, None]:
    """Parsed records (``row_number``, ``c*``, ``x*``), at most ``chunk_rows`` per frame.

    Chunks are cut by size, from the bytes-per-row seen so far, at the last
    record boundary before the target; the rare frame that still comes out too
    long is sliced.
    """
    parser = _ChunkParser(layout)
    per_row = layout.bytes_per_row
    first_row = 1
    buf = b""
    with layout.path.open("rb") as fh:
        stream = Utf8Stream(fh, layout.encoding)
        stream.skip(layout.data_offset)
        eof = False
        target = _target_bytes(chunk_rows, per_row)
        while True:
            while not eof and len(buf) < target:
                wanted = min(max(target - len(buf), SAMPLE_BYTES), MAX_READ_BYTES)
                data = stream.read(wanted)
                buf = buf + data if buf else data
                eof = stream.eof
            if not buf:
                return
            scan = QuoteScan(buf, layout.delimiter)
            if eof and len(buf) <= target:
                cut = len(buf)
            else:
                cut = scan.cut_before(target) or scan.cut_before(len(buf))
                if not cut and eof:
                    cut = len(buf)
            if cut == len(buf) and scan.ends_inside_quotes:
                prefix = scan.cut_before(scan.open_quote_position())
                before = parser.parse(buf[:prefix], scan, prefix, first_row)
                for offset in range(0, before.height, chunk_rows):
                    yield before.slice(offset, chunk_rows)
                raise IngestError(
                    f"unterminated quoted field starting at row {first_row + before.height}"
                )
            if not cut:
                if len(buf) > MAX_RECORD_BYTES:
                    what = (
                        f"unterminated quoted field starting at row {first_row}"
                        if scan.ends_inside_quotes
                        else f"row {first_row} has no line break"
                    )
                    raise IngestError(f"{what} (still open after 4 MB)")
                # One record longer than the target: read on until it ends.
                target = len(buf) + max(SAMPLE_BYTES, len(buf))
                continue
            chunk, buf = buf[:cut], buf[cut:]
            frame = parser.parse(chunk, scan, cut, first_row)
            first_row += frame.height
            if frame.height:
                per_row = max(cut / frame.height, 8.0)
            target = _target_bytes(chunk_rows, per_row)
            for offset in range(0, frame.height, chunk_rows):
                yield frame.slice(offset, chunk_rows)
            if eof and not buf:
                return


def _target_bytes(chunk_rows: int, per_row: float) -> int:
    # Aim a little low: row sizes vary, and a chunk slightly over chunk_rows
    # would be sliced into a full chunk plus a tiny one.
    return min(max(int(chunk_rows * per_row * 0.97), SAMPLE_BYTES), MAX_CHUNK_BYTES)


class _ChunkParser:
    """Bytes of complete records -> ``row_number``, ``c0..`` (header width), ``x0..``.

    The ``x`` columns catch fields beyond the header width; polars pads short
    rows with nulls and drops anything past the last ``x`` column.
    """

    def __init__(self, layout: CsvLayout) -> None:
        self.delimiter = layout.delimiter
        names = [f"c{i}" for i in range(layout.width)] + [f"x{j}" for j in range(EXTRA_COLUMNS)]
        self.schema = dict.fromkeys(names, pl.String)

    def parse(self, chunk: bytes, scan: QuoteScan, cut: int, first_row: int) -> pl.DataFrame:
        """Parse ``chunk``, the first ``cut`` bytes of the buffer ``scan`` describes."""
        unsafe = scan.unsafe_before(cut)
        if not unsafe.size:
            frame = self._polars(chunk)
            if frame is None:
                return self._python_all(chunk, first_row)
            return self._numbered(frame, np.arange(first_row, first_row + frame.height))

        starts, ends = record_spans(scan.boundaries(cut), len(chunk))
        count = int(starts.size)
        numbers = np.arange(first_row, first_row + count, dtype=np.int64)
        odd = np.unique(np.searchsorted(ends, unsafe, side="right"))
        odd = odd[odd < count]
        keep = np.ones(count, dtype=bool)
        keep[odd] = False
        good = np.flatnonzero(keep)
        parts: list[pl.DataFrame] = []
        if good.size:
            # Consecutive well-quoted records go to polars as one buffer.
            gaps = np.flatnonzero(np.diff(good) != 1)
            firsts = good[np.concatenate(([0], gaps + 1))]
            lasts = good[np.concatenate((gaps, [good.size - 1]))]
            view = memoryview(chunk)
            safe = b"".join(view[starts[a] : ends[b]] for a, b in zip(firsts, lasts, strict=True))
            frame = self._polars(safe)
            if frame is None or frame.height != good.size:
                return self._python_all(chunk, first_row)
            parts.append(self._numbered(frame, numbers[good]))
        texts = [chunk[starts[k] : ends[k]].decode("utf-8", FALLBACK_ERRORS) for k in odd]
        rows = self._csv_rows("".join(texts))
        if len(rows) != len(texts):
            rows = [next(iter(self._csv_rows(text)), []) for text in texts]
        parts.append(self._numbered(self._frame(rows), numbers[odd]))
        return pl.concat(parts).sort(ROW_NUMBER)

    def _numbered(self, frame: pl.DataFrame, numbers: IntArray) -> pl.DataFrame:
        return frame.select(pl.Series(ROW_NUMBER, numbers, dtype=pl.Int64), *self.schema)

    def _polars(self, data: bytes) -> pl.DataFrame | None:
        """polars' parse of ``data``, or None when the caller must fall back to csv."""
        if not data:
            return pl.DataFrame(schema=self.schema)
        try:
            return self._read(data)
        except pl.exceptions.PolarsError as error:
            if "utf-8" not in str(error).lower():
                return None
        try:
            # Mostly UTF-8 with a few stray cp1252 bytes: repair and parse again.
            return self._read(repair_utf8(data))
        except pl.exceptions.PolarsError:
            return None

    def _read(self, data: bytes) -> pl.DataFrame:
        return pl.read_csv(
            data,
            has_header=False,
            separator=self.delimiter,
            quote_char='"',
            schema=self.schema,
            truncate_ragged_lines=True,
            missing_columns="insert",
            raise_if_empty=False,
        )

    def _csv_rows(self, text: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO(text), delimiter=self.delimiter, strict=False))

    def _frame(self, rows: list[list[str]]) -> pl.DataFrame:
        width = len(self.schema)
        padded = [
            [value if value != "" else None for value in row[:width]] + [None] * (width - len(row))
            for row in rows
        ]
        return pl.DataFrame(padded, schema=self.schema, orient="row")

    def _python_all(self, chunk: bytes, first_row: int) -> pl.DataFrame:
        # Slow but exact; only used when polars fails on a chunk.
        rows = self._csv_rows(chunk.decode("utf-8", FALLBACK_ERRORS))
        return self._numbered(self._frame(rows), np.arange(first_row, first_row + len(rows)))


def _to_chunk(frame: pl.DataFrame, layout: CsvLayout) -> Chunk:
    columns = [c for c in frame.columns if c != ROW_NUMBER]
    # Blank lines (and rows of bare delimiters) are not data: skipped, not rejected.
    blank = frame.select(pl.all_horizontal([pl.col(c).is_null() for c in columns])).to_series()
    if blank.any():
        frame = frame.filter(~blank)
    result = normalise(frame, layout.mapping, EXTRA_COLUMNS)
    accepted, failed = validate_accepted(result.accepted)
    rejected = result.rejected
    if failed.height:
        raws = frame.join(failed, on=ROW_NUMBER, how="inner").select(
            ROW_NUMBER,
            "reason",
            raw_json(layout.mapping, []).alias("raw"),
        )
        rejected = pl.concat([rejected, raws]).sort(ROW_NUMBER)
    return Chunk(accepted=accepted, rejected=rejected)
