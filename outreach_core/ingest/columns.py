"""Header names -> standard lead columns, driven by ``column_aliases.yaml``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from outreach_core.ingest.errors import IngestError

STANDARD_COLUMNS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "contact_name",
    "email",
    "phone",
    "company_name",
    "title",
    "linkedin_url",
    "website",
    "address",
    "city",
    "county",
    "state",
    "zip",
    "sic_code",
)

# Columns of which a file must have at least one; without them no row could ever
# be attributed to a person or business.
USABLE_COLUMNS: tuple[str, ...] = (
    "phone",
    "email",
    "company_name",
    "contact_name",
    "first_name",
    "last_name",
)

# Only these keep their duplicates: a second phone or email column is a genuine
# fall-back contact route, a second "City" column is just noise.
MULTI_CANDIDATE_COLUMNS: frozenset[str] = frozenset({"phone", "email"})

ALIASES_FILE = Path(__file__).with_name("column_aliases.yaml")

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def header_key(name: str) -> str:
    """Matching key of a header: case, spaces, punctuation and underscores ignored."""
    return _NON_ALNUM.sub("", name.replace("\ufeff", "").casefold())


@lru_cache(maxsize=1)
def alias_table() -> Mapping[str, str]:
    """Normalised alias -> standard column, loaded once from the YAML data file."""
    with ALIASES_FILE.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise RuntimeError(f"{ALIASES_FILE} must map column names to alias lists")
    table: dict[str, str] = {}
    for column, aliases in raw.items():
        if column not in STANDARD_COLUMNS:
            raise RuntimeError(f"{ALIASES_FILE}: unknown standard column {column!r}")
        for alias in [column, *(aliases or [])]:
            key = header_key(str(alias))
            owner = table.setdefault(key, column)
            if owner != column:
                raise RuntimeError(
                    f"{ALIASES_FILE}: alias {alias!r} maps to both {owner} and {column}"
                )
    return table


@dataclass(frozen=True)
class ColumnMapping:
    """How the columns of one file map onto :data:`STANDARD_COLUMNS`.

    ``names`` are the file's header names made unique and non-blank (they are the
    keys of the raw JSON of rejected rows); ``sources`` lists, per standard
    column, the indexes of the file columns that feed it, left-most first.
    """

    names: tuple[str, ...]
    sources: Mapping[str, tuple[int, ...]]

    def first(self, column: str) -> int | None:
        indexes = self.sources.get(column, ())
        return indexes[0] if indexes else None

    def has(self, column: str) -> bool:
        return bool(self.sources.get(column))


def unique_names(header: Sequence[str]) -> tuple[str, ...]:
    """Blank names become ``column_<n>``; repeats become ``Name (2)``, ``Name (3)``."""
    used: set[str] = set()
    out: list[str] = []
    for position, raw in enumerate(header, start=1):
        base = raw.replace("\ufeff", "").strip() or f"column_{position}"
        name, count = base, 1
        while name in used:
            count += 1
            name = f"{base} ({count})"
        used.add(name)
        out.append(name)
    return tuple(out)


def _listing(names: Sequence[str], limit: int = 20, width: int = 40) -> str:
    # The message is shown to users: keep it readable even when the "header"
    # is one enormous line of garbage.
    shown = [name if len(name) <= width else name[: width - 1] + "…" for name in names[:limit]]
    if len(names) > limit:
        shown.append(f"… ({len(names) - limit} more)")
    return ", ".join(shown) or "(none)"


def build_mapping(header: Sequence[str]) -> ColumnMapping:
    """Map a header row, or raise :class:`IngestError` when nothing usable is found."""
    names = unique_names(header)
    table = alias_table()
    sources: dict[str, list[int]] = {}
    for index, raw in enumerate(header):
        column = table.get(header_key(raw))
        if column is None:
            continue
        indexes = sources.setdefault(column, [])
        if not indexes or column in MULTI_CANDIDATE_COLUMNS:
            indexes.append(index)
    if not any(column in sources for column in USABLE_COLUMNS):
        found = _listing(names)
        expected = ", ".join(column.replace("_", " ") for column in USABLE_COLUMNS)
        raise IngestError(f"no usable column: expected one of {expected}; found: {found}")
    return ColumnMapping(names=names, sources={column: tuple(ix) for column, ix in sources.items()})
