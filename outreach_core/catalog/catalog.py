"""The sector catalogue: predefined lead buckets and the SIC code -> bucket lookup.

The data lives in `buckets.yaml` next to this module (see its header for the format). It is
parsed and validated once per process by `load_catalog()`; a bad file fails loudly at load time
rather than producing a bucket whose storage path or SIC routing is wrong."""

from __future__ import annotations

import difflib
import os.path
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

# Dagster partitions by sector, so this list is static and must not depend on the YAML file.
SECTORS: tuple[str, ...] = (
    "construction",
    "transportation",
    "automotive",
    "manufacturing",
    "professional-services",
    "healthcare",
    "restaurants",
    "retail",
    "hotels",
    "real-estate",
    "financial-services",
    "personal-services",
    "business-services",
    "education",
    "recreation",
    "business-brokers-pe",
    "property-associated",
)

BUSINESS_LINES: tuple[str, ...] = ("OutreachGlobal", "Nextier", "ECBB")

NATIONAL = "us"

# USPS codes: the 50 states, DC and the inhabited territories.
_USPS_CODES = (
    "al ak az ar ca co ct de fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj "
    "nm ny nc nd oh ok or pa ri sc sd tn tx ut vt va wa wv wi wy dc pr vi gu as mp"
)
US_STATES: frozenset[str] = frozenset(_USPS_CODES.split())

# Slugs become path segments in the datalake: lowercase ASCII words joined by single hyphens
# can never spell '..', '/', or an absolute path.
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SIC = re.compile(r"[0-9]{4}")
_MAJOR_GROUP = re.compile(r"([0-9]{2})(?:-([0-9]{2}))?")
_SIC_INPUT = re.compile(r"([0-9]+)(?:\.0*)?")

CATALOG_RESOURCE = "buckets.yaml"


class CatalogError(ValueError):
    """The catalogue data is malformed."""


class UnknownBucket(KeyError):
    """No bucket has this id. `suggestions` holds up to five ids the caller may have meant."""

    def __init__(self, bucket_id: str, suggestions: list[str]) -> None:
        super().__init__(bucket_id)
        self.bucket_id = bucket_id
        self.suggestions = suggestions

    def __str__(self) -> str:
        # KeyError.__str__ would show only the repr of the id; the suggestions are the point.
        hint = f"; did you mean: {', '.join(self.suggestions)}" if self.suggestions else ""
        return f"unknown bucket {self.bucket_id!r}{hint}"


@dataclass(frozen=True)
class Bucket:
    id: str
    name: str
    sector: str
    subsector: str
    sic_codes: tuple[str, ...]
    state: str
    business_line: str

    def __post_init__(self) -> None:
        # Accept any iterable so callers may pass a list, but store a tuple to stay hashable.
        object.__setattr__(self, "sic_codes", tuple(self.sic_codes))
        text_fields = (self.id, self.name, self.sector, self.subsector, self.state)
        if not all(isinstance(v, str) for v in (*text_fields, self.business_line)):
            raise CatalogError(f"invalid bucket {self.id!r}: text fields must be strings")
        problems: list[str] = []
        if self.state != NATIONAL and self.state not in US_STATES:
            problems.append(f"state {self.state!r} is not a USPS code or {NATIONAL!r}")
        if self.sector not in SECTORS:
            problems.append(f"sector {self.sector!r} is not one of {', '.join(SECTORS)}")
        if not _SLUG.fullmatch(self.subsector):
            problems.append(f"subsector {self.subsector!r} is not a lowercase slug")
        expected_id = f"{self.state}-{self.sector}-{self.subsector}"
        if self.id != expected_id:
            problems.append(f"id must be {expected_id!r} ({{state}}-{{sector}}-{{subsector}})")
        if not self.name.strip():
            problems.append("name is empty")
        if not self.sic_codes:
            problems.append("no SIC codes")
        bad_codes = [c for c in self.sic_codes if not (isinstance(c, str) and _SIC.fullmatch(c))]
        if bad_codes:
            problems.append(f"SIC codes must be 4-digit strings, got {bad_codes!r}")
        if len(set(self.sic_codes)) != len(self.sic_codes):
            problems.append("duplicate SIC codes")
        if self.business_line not in BUSINESS_LINES:
            problems.append(
                f"business_line {self.business_line!r} is not one of {', '.join(BUSINESS_LINES)}"
            )
        if problems:
            raise CatalogError(f"invalid bucket {self.id!r}: {'; '.join(problems)}")

    @property
    def storage_prefix(self) -> str:
        """Folder of this bucket below `team_{team_id}/datalake/`."""
        return f"business/{self.state}/sectors/{self.sector}/{self.subsector}"


def normalize_sic(code: str | int | float | None) -> str | None:
    """The 4-digit SIC code in `code`, or None when it is not one.

    Accepts what lead files actually contain: surrounding spaces, a spreadsheet's trailing
    '.0', 6- or 8-digit extended SIC codes (the first four digits are the SIC code), and codes
    whose leading zero a spreadsheet dropped (742 for 0742)."""
    if code is None or isinstance(code, bool):
        return None
    match = _SIC_INPUT.fullmatch(str(code).strip())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) in (3, 5, 7):
        digits = "0" + digits
    if len(digits) not in (4, 6, 8):
        return None
    return digits[:4]


class Catalog:
    """All buckets, with lookups by id and by SIC code.

    Buckets are kept in file order; where several subsectors share a SIC code, the first one
    listed wins, so the order of `buckets` is part of the data."""

    def __init__(self, buckets: Iterable[Bucket], sic_major_groups: Mapping[str, str]) -> None:
        self.buckets: dict[str, Bucket] = {}
        # (sector, subsector) -> state -> bucket, in file order.
        self._subsectors: dict[tuple[str, str], dict[str, Bucket]] = {}
        for bucket in buckets:
            if bucket.id in self.buckets:
                raise CatalogError(f"duplicate bucket id {bucket.id!r}")
            self.buckets[bucket.id] = bucket
            states = self._subsectors.setdefault((bucket.sector, bucket.subsector), {})
            first = next(iter(states.values()), None)
            if first is not None and (
                first.sic_codes != bucket.sic_codes or first.business_line != bucket.business_line
            ):
                raise CatalogError(
                    f"bucket {bucket.id!r} disagrees with {first.id!r} on SIC codes or "
                    "business line; every state of a subsector must share them"
                )
            states[bucket.state] = bucket

        for (sector, subsector), states in self._subsectors.items():
            if NATIONAL not in states:
                raise CatalogError(
                    f"subsector {sector}/{subsector} has no {NATIONAL!r} bucket; every "
                    "subsector needs a national bucket for lookups to fall back to"
                )

        for group, sector in sic_major_groups.items():
            if not re.fullmatch(r"[0-9]{2}", group):
                raise CatalogError(f"SIC major group {group!r} is not 2 digits")
            if sector not in SECTORS:
                raise CatalogError(f"SIC major group {group} maps to unknown sector {sector!r}")
        self.sic_major_groups: dict[str, str] = dict(sic_major_groups)

        # SIC code -> subsectors listing it, in file order.
        self._by_sic: dict[str, list[tuple[str, str]]] = {}
        for key, states in self._subsectors.items():
            for code in states[NATIONAL].sic_codes:
                self._by_sic.setdefault(code, []).append(key)

    def __len__(self) -> int:
        return len(self.buckets)

    def __iter__(self) -> Iterator[Bucket]:
        return iter(self.buckets.values())

    def __contains__(self, bucket_id: object) -> bool:
        return bucket_id in self.buckets

    def get(self, bucket_id: str) -> Bucket:
        # Ids are canonical lowercase; forgiving case and stray spaces costs nothing.
        key = bucket_id.strip().lower()
        try:
            return self.buckets[key]
        except KeyError:
            raise UnknownBucket(bucket_id, self.suggest(key)) from None

    def suggest(self, bucket_id: str, limit: int = 5) -> list[str]:
        """Up to `limit` bucket ids close to `bucket_id`; never empty for a non-empty catalogue."""
        ids = list(self.buckets)
        close = difflib.get_close_matches(bucket_id, ids, n=limit)
        if close:
            return close
        # Nothing is similar overall (e.g. a bare 'plumbers' or a state we do not offer), so
        # rank the buckets that at least share a subsector or sector named in the input.
        pool = [b.id for b in self if b.subsector in bucket_id]
        pool = pool or [b.id for b in self if b.sector in bucket_id]
        return difflib.get_close_matches(bucket_id, pool or ids, n=limit, cutoff=0.0)

    def by_sector(self, sector: str) -> list[Bucket]:
        """The buckets of one sector, in file order."""
        if sector not in SECTORS:
            raise KeyError(f"unknown sector {sector!r}")
        return [b for b in self if b.sector == sector]

    def bucket_for_sic(
        self, code: str | int | float | None, state: str | None = None
    ) -> Bucket | None:
        """The bucket for a SIC code, preferring `state` and falling back to the national one.

        An exact SIC match wins; otherwise the 2-digit major group picks a sector and, within
        it, the subsector whose codes share the longest prefix with `code` (else the sector's
        first subsector). Returns None for a malformed code or a major group outside every
        sector."""
        sic = normalize_sic(code)
        if sic is None:
            return None
        wanted = state.strip().lower() if state else NATIONAL
        exact = self._by_sic.get(sic)
        if exact:
            return self._in_state(exact[0], wanted)

        sector = self.sic_major_groups.get(sic[:2])
        if sector is None:
            return None
        keys = [key for key in self._subsectors if key[0] == sector]
        if not keys:
            return None
        best_key, best_len = keys[0], 0
        for key in keys:
            shared = max(
                (len(os.path.commonprefix([sic, c])) for c in self._sic_codes(key)), default=0
            )
            if shared >= 2 and shared > best_len:
                best_key, best_len = key, shared
        return self._in_state(best_key, wanted)

    def sectors_for_sic(self, code: str | int | float | None) -> tuple[str, ...]:
        """The sectors a SIC code belongs to, by the same rules as `bucket_for_sic`: every
        sector with a subsector listing it (7389 is in two), else its major group's sector.
        Empty for a malformed code or a major group outside every sector."""
        sic = normalize_sic(code)
        if sic is None:
            return ()
        listed = self._by_sic.get(sic)
        if listed:
            return tuple(dict.fromkeys(sector for sector, _ in listed))
        sector = self.sic_major_groups.get(sic[:2])
        return (sector,) if sector else ()

    def _sic_codes(self, key: tuple[str, str]) -> tuple[str, ...]:
        return self._subsectors[key][NATIONAL].sic_codes

    def _in_state(self, key: tuple[str, str], state: str) -> Bucket:
        states = self._subsectors[key]
        return states.get(state) or states[NATIONAL]


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise CatalogError(f"{where}: expected a {kind.__name__}, got {value!r}")
    return value


def _major_groups(data: Mapping[str, Any]) -> dict[str, str]:
    groups: dict[str, str] = {}
    for sector, entries in _expect(data, dict, "sic_major_groups").items():
        for entry in _expect(entries or [], list, f"sic_major_groups.{sector}"):
            match = _MAJOR_GROUP.fullmatch(entry) if isinstance(entry, str) else None
            if match is None:
                raise CatalogError(
                    f"sic_major_groups.{sector}: {entry!r} is not a quoted 'NN' or 'NN-MM'"
                )
            low = int(match.group(1))
            high = int(match.group(2) or low)
            if high < low:
                raise CatalogError(f"sic_major_groups.{sector}: empty range {entry!r}")
            for number in range(low, high + 1):
                group = f"{number:02d}"
                if group in groups:
                    raise CatalogError(
                        f"SIC major group {group} is mapped to both {groups[group]} and {sector}"
                    )
                groups[group] = sector
    return groups


def _states(value: Any, state_sets: Mapping[str, list[str]], where: str) -> list[str]:
    if isinstance(value, str):
        if value not in state_sets:
            raise CatalogError(f"{where}: unknown state set {value!r}")
        value = state_sets[value]
    states = _expect(value, list, where)
    if len(set(states)) != len(states):
        raise CatalogError(f"{where}: a state is listed twice in {states!r}")
    return states


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Expand and validate the YAML document (already parsed) into a Catalog."""
    _expect(data, dict, "catalog")
    unknown = set(data) - {"state_sets", "sic_major_groups", "sectors"}
    if unknown:
        raise CatalogError(f"unknown top-level keys: {sorted(unknown)}")
    state_sets = _expect(data.get("state_sets") or {}, dict, "state_sets")
    sectors = _expect(data.get("sectors"), dict, "sectors")
    if set(sectors) != set(SECTORS):
        missing = [s for s in SECTORS if s not in sectors]
        extra = sorted(set(sectors) - set(SECTORS))
        raise CatalogError(f"sectors must be exactly SECTORS; missing {missing}, unknown {extra}")

    buckets: list[Bucket] = []
    for sector, spec in sectors.items():
        where = f"sectors.{sector}"
        _expect(spec, dict, where)
        business_line = spec.get("business_line")
        default_states = spec.get("states", "national")
        subsectors = _expect(spec.get("subsectors"), dict, f"{where}.subsectors")
        if not subsectors:
            raise CatalogError(f"{where}: no subsectors")
        for subsector, sub in subsectors.items():
            sub_where = f"{where}.subsectors.{subsector}"
            _expect(sub, dict, sub_where)
            unknown = set(sub) - {"name", "sic", "states"}
            if unknown:
                # Usually an unquoted comma in a flow mapping's name splitting it in two.
                raise CatalogError(f"{sub_where}: unknown keys {sorted(unknown)}")
            name = _expect(sub.get("name"), str, f"{sub_where}.name")
            sic_codes = tuple(_expect(sub.get("sic"), list, f"{sub_where}.sic"))
            states = _states(sub.get("states", default_states), state_sets, sub_where)
            for state in states:
                buckets.append(
                    Bucket(
                        id=f"{state}-{sector}-{subsector}",
                        name=f"{str(state).upper()} {name}",
                        sector=sector,
                        subsector=subsector,
                        sic_codes=sic_codes,
                        state=state,
                        business_line=business_line,
                    )
                )
    return Catalog(buckets, _major_groups(data.get("sic_major_groups") or {}))


@cache
def load_catalog() -> Catalog:
    """The packaged catalogue, parsed and validated once per process."""
    text = (
        resources.files("outreach_core.catalog")
        .joinpath(CATALOG_RESOURCE)
        .read_text(encoding="utf-8")
    )
    return parse_catalog(yaml.safe_load(text))
