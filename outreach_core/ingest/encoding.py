"""Text encoding detection and a streaming "normalised UTF-8" view of a CSV file.

Everything downstream (quote scanning, polars, the csv module) works on UTF-8
bytes with ``\\n`` or ``\\r\\n`` line breaks and no NUL bytes; this module is
the only place that knows about BOMs, UTF-16, cp1252 and the other ways files
arrive.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import BinaryIO

import charset_normalizer
import numpy as np

from outreach_core.ingest.errors import IngestError

SAMPLE_BYTES = 64 * 1024
CR = ord("\r")
LF = ord("\n")

# Name of the codecs error handler registered below.
FALLBACK_ERRORS = "outreach-cp1252-fallback"

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le (BOM)"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32-be (BOM)"),
    (codecs.BOM_UTF8, "utf-8", "utf-8 (BOM)"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le (BOM)"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be (BOM)"),
)

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"PK\x03\x04", "a ZIP archive or an Excel .xlsx workbook; export it as CSV"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Excel .xls document; export it as CSV"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "an executable"),
)

# C0 controls that never appear in real CSV text. Tab, LF, VT (Excel for Mac
# uses it for in-cell breaks), FF, CR and SUB (DOS end-of-file) are tolerated;
# NUL is counted separately because a few stray NULs are common and harmless.
_CONTROL_BYTES = bytes([*range(0x01, 0x09), *range(0x0E, 0x1A), *range(0x1B, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)

# Single-byte fall-back table for bytes that are not valid in the declared
# encoding: cp1252 where it defines the byte, latin-1 for its five holes.
_BYTE_FALLBACK: tuple[str, ...] = tuple(
    bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)
)


def _fallback_handler(error: UnicodeError) -> tuple[str, int]:
    # A UTF-8 file with a few cp1252 bytes (files glued together, one row typed
    # in an old editor) is far more common than real corruption: decode each
    # offending byte as cp1252 instead of failing the file or losing the text.
    if isinstance(error, UnicodeDecodeError):
        bad = error.object[error.start : error.end]
        return "".join(_BYTE_FALLBACK[b] for b in bad), error.end
    raise error


codecs.register_error(FALLBACK_ERRORS, _fallback_handler)


@dataclass(frozen=True)
class SourceEncoding:
    """How to turn the file's bytes into text."""

    codec: str  # Python codec; "utf-8" means bytes pass through untouched
    bom_length: int  # bytes to skip at the start of the file
    label: str  # human-readable, e.g. "utf-8 (BOM)" or "cp1252 (detected)"

    @property
    def passthrough(self) -> bool:
        return self.codec == "utf-8"


def _bare_cr_to_lf(data: bytes) -> bytes:
    """Turn every CR not followed by LF into LF, position by position.

    Deciding per byte (not per block) keeps the output independent of block
    sizes; CRLF files, the common case, are only scanned, never copied.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    returns = np.flatnonzero(view == CR)
    following = np.minimum(returns + 1, len(data) - 1)
    bare = returns[(returns + 1 >= len(data)) | (view[following] != LF)]
    if not bare.size:
        return data
    fixed = np.frombuffer(bytearray(data), dtype=np.uint8)
    fixed[bare] = LF
    return fixed.tobytes()


def repair_utf8(data: bytes) -> bytes:
    """Re-encode bytes that are mostly UTF-8, decoding invalid bytes as cp1252."""
    return data.decode("utf-8", errors=FALLBACK_ERRORS).encode("utf-8")


def _binary_hint(sample: bytes) -> str | None:
    for signature, what in _SIGNATURES:
        if sample.startswith(signature):
            return what
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    # Mostly-ASCII UTF-16 text without a BOM has a NUL in every other byte.
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul = even.count(0) / len(even)
    odd_nul = odd.count(0) / len(odd)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
    return None


def _is_utf8(sample: bytes, at_eof: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        # final=False tolerates a multi-byte character cut by the sample's end.
        decoder.decode(sample, final=at_eof)
    except UnicodeDecodeError:
        return False
    return True


_NON_ASCII = re.compile(r"[^\x00-\x7f\ufffd]")


def _mostly_utf8(sample: bytes) -> bool:
    decoded = sample.decode("utf-8", errors="replace")
    invalid = decoded.count("\ufffd")
    valid = len(_NON_ASCII.findall(decoded))
    return valid > 0 and invalid <= valid


def _single_byte(codec: str, sample: bytes) -> bool:
    try:
        return len(sample.decode(codec, errors="replace")) == len(sample)
    except LookupError:
        return False


def detect_encoding(sample: bytes, *, at_eof: bool) -> SourceEncoding:
    """Decide how to decode a file from its first bytes.

    Raises :class:`IngestError` for empty, binary and undecodable input.
    """
    if not sample:
        raise IngestError("file is empty")
    for bom, codec, label in _BOMS:
        if sample.startswith(bom):
            if at_eof and len(sample) == len(bom):
                raise IngestError("file is empty")
            return SourceEncoding(codec, len(bom), label)

    hint = _binary_hint(sample)
    if hint is not None:
        raise IngestError(f"not a text CSV file (binary content: looks like {hint})")
    utf16 = _utf16_without_bom(sample)
    if utf16 is not None:
        return SourceEncoding(utf16, 0, f"{utf16} (no BOM, detected)")

    size = len(sample)
    if sample.count(0) > 0.3 * size:
        raise IngestError("not a text CSV file (binary content: mostly NUL bytes)")
    controls = len(sample.translate(None, _NOT_CONTROL))
    if controls > 0.05 * size or (controls > 64 and controls > 0.01 * size):
        raise IngestError("not a text CSV file (binary content)")

    text = sample.replace(b"\x00", b"")
    if _is_utf8(text, at_eof):
        return SourceEncoding("utf-8", 0, "utf-8")
    if _mostly_utf8(text):
        # Glued-together exports: keep UTF-8 and let repair_utf8() read the few
        # stray bytes as cp1252, rather than turning every "é" into "Ã©".
        return SourceEncoding("utf-8", 0, "utf-8 (with some cp1252 bytes)")

    cp1252_clean = True
    try:
        text.decode("cp1252")
    except UnicodeDecodeError:
        cp1252_clean = False
    best = charset_normalizer.from_bytes(text).best()
    if best is None:
        if cp1252_clean:
            return SourceEncoding("cp1252", 0, "cp1252 (fallback)")
        raise IngestError(
            "could not detect the text encoding of the file; save it as UTF-8 and retry"
        )
    codec = codecs.lookup(best.encoding).name
    # On short samples charset-normalizer cannot tell the Latin code pages apart
    # (it often says cp1250 for "Café Müller"); for US lead lists cp1252 is by
    # far the likeliest, so prefer it whenever it decodes the sample cleanly.
    if cp1252_clean and _single_byte(codec, text):
        return SourceEncoding("cp1252", 0, "cp1252 (detected)")
    return SourceEncoding(codec, 0, f"{codec} (detected)")


def read_sample(fh: BinaryIO, size: int = SAMPLE_BYTES) -> tuple[bytes, bool]:
    """First ``size`` bytes of the file and whether that is the whole file."""
    sample = fh.read(size)
    at_eof = len(sample) < size or not fh.read(1)
    return sample, at_eof


class Utf8Stream:
    """A file read as normalised UTF-8 bytes.

    The BOM is skipped, non-UTF-8 sources are transcoded block by block, NUL
    bytes are dropped and bare ``\\r`` line breaks (old Mac files, or mixed in)
    become ``\\n``; ``\\r\\n`` is left alone, the parsers handle it. UTF-8
    sources are passed through without validation; invalid sequences are
    repaired later, chunk by chunk, with :func:`repair_utf8`. The output is the
    same whatever block sizes are asked for, so byte offsets into it are stable
    between two passes over the same file.
    """

    def __init__(self, fh: BinaryIO, encoding: SourceEncoding) -> None:
        self._fh = fh
        self._encoding = encoding
        self._decoder: codecs.IncrementalDecoder | None = None
        if not encoding.passthrough:
            errors = FALLBACK_ERRORS if encoding.codec == "cp1252" else "replace"
            self._decoder = codecs.getincrementaldecoder(encoding.codec)(errors)
        self._held_cr = False
        self._eof = False
        self._pushback = b""
        fh.seek(encoding.bom_length)

    @property
    def eof(self) -> bool:
        return self._eof

    def read(self, size: int) -> bytes:
        """About ``size`` bytes of output (more or less); ``b""`` only at the end."""
        if self._pushback:
            data, self._pushback = self._pushback, b""
            return data
        while not self._eof:
            raw = self._fh.read(max(size, 1))
            final = not raw
            if self._decoder is not None:
                text = self._decoder.decode(raw, final=final)
                if "\x00" in text:
                    text = text.replace("\x00", "")
                data = text.encode("utf-8")
            else:
                data = raw.replace(b"\x00", b"") if b"\x00" in raw else raw
            if self._held_cr:
                data = b"\r" + data
                self._held_cr = False
            if final:
                self._eof = True
            elif data.endswith(b"\r"):
                # Keep a trailing CR until we know whether an LF follows, so a
                # CRLF cut by the block boundary does not become two line breaks.
                self._held_cr = True
                data = data[:-1]
            if b"\r" in data:
                data = _bare_cr_to_lf(data)
            if data or self._eof:
                return data
        return b""

    def skip(self, count: int) -> None:
        """Discard the first ``count`` output bytes (the part already inspected)."""
        remaining = count
        while remaining > 0:
            data = self.read(min(remaining, 4 << 20))
            if not data:
                return
            if len(data) > remaining:
                self._pushback = data[remaining:]
                return
            remaining -= len(data)
