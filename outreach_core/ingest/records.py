"""Vectorised quote structure of a CSV buffer: safe cut points and odd quoting.

The buffer always starts at a record boundary and its line breaks are ``\\n``
or ``\\r\\n`` (see :class:`~outreach_core.ingest.encoding.Utf8Stream`). Quoting
follows the csv module (and Excel, pandas, Arrow): a quote opens a quoted field
only at the start of a field; inside it ``""`` is a literal quote and a single
quote closes it; anything after the closing quote is appended to the field; a
quote in the middle of an unquoted field is literal.

That is a two-state machine (outside / inside quotes) driven only by *runs* of
consecutive quote characters, so it can be evaluated with numpy over the quote
runs instead of byte by byte in Python. A run of length ``L`` whose previous
byte is a delimiter, a line break or the buffer start ("at field start") toggles
the state when ``L`` is odd; an odd run elsewhere always leaves the state
outside (a closing quote, or a literal one); even runs change nothing.

polars' CSV reader, which does the field splitting on the fast path, tracks
quotes by plain parity instead. The two agree unless a run is *unsafe*: a
literal odd quote inside an unquoted field (``55" TV``), or text right after a
closing quote (``"Acme" Inc``). Records holding such runs are parsed with the
csv module instead (see ``reader.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

QUOTE = ord('"')
NEWLINE = ord("\n")
RETURN = ord("\r")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class QuoteScan:
    """Quote runs and the quote state they imply, for one buffer."""

    def __init__(self, buf: bytes, delimiter: str) -> None:
        self._buf = buf
        self.size = len(buf)
        data = np.frombuffer(buf, dtype=np.uint8)
        self._data = data
        delim = ord(delimiter)
        quotes = np.flatnonzero(data == QUOTE)
        if quotes.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            self.run_starts: IntArray = empty
            self.inside_after: BoolArray = np.zeros(0, dtype=bool)
            self._last_open: IntArray = empty
            self.unsafe_starts: IntArray = empty
            return

        gaps = np.flatnonzero(np.diff(quotes) != 1)
        starts = quotes[np.concatenate(([0], gaps + 1))]
        ends = quotes[np.concatenate((gaps, [quotes.size - 1]))] + 1  # exclusive
        odd = ((ends - starts) & 1).astype(bool)

        before = data[np.maximum(starts - 1, 0)]
        field_start = (starts == 0) | (before == delim) | (before == NEWLINE)
        toggles = field_start & odd
        resets = ~field_start & odd

        # State after run k = parity of the toggles since the last reset.
        toggle_count = np.cumsum(toggles)
        run_index = np.arange(starts.size)
        last_reset = np.maximum.accumulate(np.where(resets, run_index, -1))
        base = np.where(last_reset >= 0, toggle_count[np.maximum(last_reset, 0)], 0)
        inside_after = ((toggle_count - base) & 1).astype(bool)
        inside_before = np.concatenate(([False], inside_after[:-1]))
        opens = inside_after & ~inside_before

        after = data[np.minimum(ends, self.size - 1)]
        field_end = (ends >= self.size) | (after == delim) | (after == NEWLINE) | (after == RETURN)
        closes = (inside_before & odd) | (~inside_before & field_start & ~odd)
        stray = odd & ~inside_before & ~field_start
        unsafe = stray | (closes & ~field_end)

        self.run_starts = starts
        self.inside_after = inside_after
        # Index of the run that opened the quoted field a run belongs to.
        self._last_open = np.maximum.accumulate(np.where(opens, run_index, -1))
        self.unsafe_starts = starts[unsafe]

    def _last_run_before(self, position: int) -> int:
        # Runs never contain a newline, so the state at a newline is the state
        # after the last run that starts before it.
        return int(np.searchsorted(self.run_starts, position)) - 1

    def inside_at(self, position: int) -> bool:
        """Whether byte ``position`` lies inside a quoted field."""
        run = self._last_run_before(position)
        return run >= 0 and bool(self.inside_after[run])

    @property
    def ends_inside_quotes(self) -> bool:
        return bool(self.inside_after.size and self.inside_after[-1])

    def open_quote_position(self) -> int:
        """Byte offset of the quote that opened the field still open at the end."""
        return int(self.run_starts[self._last_open[-1]])

    def cut_before(self, limit: int) -> int:
        """Offset just after the last record-ending newline before ``limit``; 0 if none."""
        position = self._buf.rfind(b"\n", 0, limit)
        while position >= 0:
            run = self._last_run_before(position)
            if run < 0 or not self.inside_after[run]:
                return position + 1
            # Inside a quoted field: no newline after its opening quote can end
            # a record, so continue the search before that quote.
            opened = int(self.run_starts[self._last_open[run]])
            position = self._buf.rfind(b"\n", 0, opened)
        return 0

    def boundaries(self, end: int) -> IntArray:
        """Offsets of the newlines before ``end`` that end a record."""
        newlines = np.flatnonzero(self._data[:end] == NEWLINE)
        if not self.run_starts.size:
            return newlines
        runs = np.searchsorted(self.run_starts, newlines) - 1
        inside = np.where(runs >= 0, self.inside_after[np.maximum(runs, 0)], False)
        return newlines[~inside]

    def unsafe_before(self, end: int) -> IntArray:
        return self.unsafe_starts[self.unsafe_starts < end]


def record_spans(boundaries: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """(start, end) byte offsets of every record of a chunk; ends are exclusive.

    ``boundaries`` are the newline offsets of the chunk's records; a final record
    without a trailing newline (end of file) gets its own span.
    """
    ends = boundaries + 1
    if ends.size == 0 or ends[-1] < size:
        ends = np.concatenate((ends, [size]))
    starts = np.concatenate(([0], ends[:-1]))
    return starts.astype(np.int64), ends.astype(np.int64)
