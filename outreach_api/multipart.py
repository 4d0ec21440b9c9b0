"""Streaming multipart parsing for uploads: the file part goes straight to disk and the
body is refused (413) as soon as it passes the limit, instead of after it was read whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_PARTS = 20
MAX_FIELD_BYTES = 4096


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    file_bytes: int = 0


class _Collector:
    def __init__(self, file_path: Path, max_file_bytes: int) -> None:
        self.form = ParsedForm()
        self.file_path = file_path
        self.max_file_bytes = max_file_bytes
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._out: BinaryIO | None = None
        self.error: HTTPException | None = None
        self.ended = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def fail(self, status: int, detail: str) -> None:
        if self.error is None:
            self.error = HTTPException(status, detail)

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            self.fail(400, f"too many form fields (at most {MAX_PARTS})")
        self._headers = {}
        self._name = None
        self._is_file = False
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name == "file":
            if self._out is not None:
                self.fail(400, "only one file per upload")
                return
            self._is_file = True
            self.form.filename = options.get(b"filename", b"upload.csv").decode("utf-8", "replace")
            self._out = self.file_path.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._is_file and self._out is not None:
            self.form.file_bytes += end - start
            if self.form.file_bytes > self.max_file_bytes:
                self.fail(413, f"file exceeds the upload limit of {self.max_file_bytes:,} bytes")
                return
            self._out.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                self.fail(400, f"form field {self._name!r} is too long")

    def on_end(self) -> None:
        self.ended = True

    def on_part_end(self) -> None:
        if self._is_file:
            return
        if self._name and self.error is None:
            try:
                self.form.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(400, f"form field {self._name!r} is not valid UTF-8")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def parse_upload_form(request: Request, file_path: Path, max_file_bytes: int) -> ParsedForm:
    header = request.headers.get("content-type", "")
    content_type, options = parse_options_header(header)
    if content_type != b"multipart/form-data":
        shown = repr(header[:100]) if header else "none"
        raise HTTPException(
            415, f"expected Content-Type multipart/form-data with a 'file' part, got {shown}"
        )
    # Parameter names are case-insensitive (RFC 9110 5.6.6); the parser keeps them as sent.
    options = {name.lower(): value for name, value in options.items()}
    if not options.get(b"boundary"):
        raise HTTPException(400, "the multipart/form-data Content-Type has no boundary")
    declared = request.headers.get("content-length")
    # isascii(): str.isdigit() accepts digits int() cannot parse, such as '²'.
    if (
        declared
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > max_file_bytes + 64 * 1024
    ):
        raise HTTPException(413, f"file exceeds the upload limit of {max_file_bytes:,} bytes")
    collector = _Collector(file_path, max_file_bytes)
    try:
        parser = MultipartParser(options[b"boundary"], collector.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            if collector.error is not None:
                raise collector.error
        parser.finalize()
    except HTTPException:
        raise
    except Exception as exc:  # the parser's own errors are about malformed bodies
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    finally:
        collector.close()
    if collector.error is not None:
        raise collector.error
    if not collector.ended:
        # A body cut short would otherwise land a truncated file.
        raise HTTPException(400, "incomplete multipart body: the closing boundary is missing")
    if collector.form.filename is None:
        raise HTTPException(422, "the form has no 'file' part")
    return collector.form
