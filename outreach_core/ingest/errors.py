"""Errors raised by the CSV ingest core."""

from __future__ import annotations


class IngestError(Exception):
    """The whole file cannot be ingested.

    ``str(error)`` is a complete, user-facing reason (for example ``file is empty``
    or ``unterminated quoted field starting at row 1234``); it never contains a
    full phone number or other cell contents beyond header names.
    """
