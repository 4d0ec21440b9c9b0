"""Where a recipient is: their time zone, and the states whose rules may apply to them.

Time zone, first source that knows wins:
  1. ZIP code (`zipcodes`, offline): right for split states, e.g. Florida's panhandle (32501)
     and western Kentucky (42001) are Central.
  2. State: its main zone from `state_time_zones.yaml` (a guess in split states).
  3. Phone area code (`phonenumbers`): coarse, e.g. 850 (FL panhandle) and 270 (western KY)
     come back Eastern only, so it is the last resort. Non-geographic numbers (toll-free, 5XX)
     are ignored: they come back with every zone of the NANP. When a geographic number still
     gives several zones (907 Alaska: Adak or Anchorage; 775 Nevada: Boise or Los Angeles), the
     main zone of the number's state is picked if it is among them, else the first name in
     alphabetical order; `TimeZoneResolution.candidates` then lists them all, so the pick is
     visible in whatever records the decision.
None of them known -> None; guardrails.quiet_hours says what a caller does then.

States (for per-state rules): the lead's own state, the ZIP's state and the phone number's state
all count, because state telemarketing laws follow the called party's location and Florida's and
Oklahoma's presume that a call to one of their area codes reaches a resident. Combining rules is
strictest-wins, so an extra state can only make sending more careful."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import us
import zipcodes
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone
from pydantic import RootModel, ValidationError, field_validator

from outreach_core.guardrails._data import describe, read_yaml_resource
from outreach_core.guardrails.rules import USPS_CODES

STATE_ZONES_RESOURCE = "state_time_zones.yaml"

# ZIP or ZIP+4, with or without the hyphen. Leads already store 5 digits (ingest restores lost
# leading zeros); this only forgives callers that pass a ZIP+4.
_ZIP = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")
# phonenumbers' geocoder describes US numbers as "City, ST" or as a bare state name.
_CITY_STATE = re.compile(r",\s*([A-Z]{2})$")
# Distinct ZIPs in one campaign run are few; the cache saves zipcodes' lookup per message.
_ZIP_CACHE_SIZE = 65_536


class TimeZoneSource(StrEnum):
    ZIP = "zip"
    STATE = "state"
    AREA_CODE = "area_code"


@dataclass(frozen=True)
class TimeZoneResolution:
    zone: ZoneInfo
    source: TimeZoneSource
    # All zones the source offered when it offered several and `zone` is a deterministic pick;
    # empty when the source was unambiguous.
    candidates: tuple[str, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


@dataclass(frozen=True)
class RecipientLocation:
    time_zone: TimeZoneResolution | None
    # USPS codes (capitals) of every state the recipient may be in, in the order: the lead's
    # state, the ZIP's state, the phone number's state; no duplicates.
    states: tuple[str, ...]


def locate_recipient(
    zip_code: str | None, state: str | None, phone: str | None
) -> RecipientLocation:
    """The recipient's time zone (see the module docstring for the order) and possible states."""
    zip_zone, zip_state = _zip_lookup(normalize_zip(zip_code))
    own_state = normalize_state(state)
    number = parse_phone(phone)
    number_state = phone_state(number) if number is not None else None

    resolution: TimeZoneResolution | None = None
    if zip_zone is not None:
        resolution = TimeZoneResolution(zip_zone, TimeZoneSource.ZIP)
    elif own_state is not None:
        resolution = TimeZoneResolution(load_state_time_zones()[own_state], TimeZoneSource.STATE)
    elif number is not None:
        resolution = _area_code_resolution(number, number_state)

    states = tuple(dict.fromkeys(s for s in (own_state, zip_state, number_state) if s))
    return RecipientLocation(resolution, states)


def resolve_time_zone(
    zip_code: str | None, state: str | None, phone: str | None
) -> TimeZoneResolution | None:
    """The recipient's time zone and which source decided it, or None when nothing is known."""
    return locate_recipient(zip_code, state, phone).time_zone


def normalize_zip(value: str | None) -> str | None:
    """The 5-digit ZIP in `value` (ZIP+4 accepted), else None."""
    match = _ZIP.fullmatch(value.strip()) if value else None
    return match.group(1) if match else None


def normalize_state(value: str | None) -> str | None:
    """The capitalised USPS code in `value` (any case), else None. Names are ingest's job."""
    code = value.strip().upper() if value else ""
    return code if code in USPS_CODES else None


def parse_phone(value: str | None) -> phonenumbers.PhoneNumber | None:
    """The phone number in `value` (E.164, or US national format), if it is a valid number."""
    if not value:
        return None
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def phone_state(number: phonenumbers.PhoneNumber) -> str | None:
    """The US state or territory a number's area code belongs to, else None."""
    region = phonenumbers.region_code_for_number(number)
    if region != "US":
        # NANP territories have their own region codes (PR, GU, VI, AS, MP).
        return region if region in USPS_CODES else None
    description = geocoder.description_for_number(number, "en")
    match = _CITY_STATE.search(description)
    code = match.group(1) if match else _state_names().get(description.upper())
    return code if code in USPS_CODES else None


def area_code_time_zones(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    """The zones phonenumbers gives for a geographic number's area code; () if none is known."""
    if not phonenumbers.is_number_geographical(number):
        return ()
    names = phone_timezone.time_zones_for_number(number)
    return tuple(name for name in names if _zone(name) is not None)


def _area_code_resolution(
    number: phonenumbers.PhoneNumber, number_state: str | None
) -> TimeZoneResolution | None:
    names = area_code_time_zones(number)
    if not names:
        return None
    if len(names) == 1:
        return TimeZoneResolution(ZoneInfo(names[0]), TimeZoneSource.AREA_CODE)
    main = load_state_time_zones().get(number_state) if number_state else None
    pick = main.key if main is not None and main.key in names else sorted(names)[0]
    return TimeZoneResolution(ZoneInfo(pick), TimeZoneSource.AREA_CODE, tuple(sorted(names)))


@lru_cache(maxsize=_ZIP_CACHE_SIZE)
def _zip_lookup(zip5: str | None) -> tuple[ZoneInfo | None, str | None]:
    """(zone, USPS state) of a ZIP; either is None when the data lacks it or it is unusable
    (military ZIPs have no zone, and the data holds a few names that are not IANA zones)."""
    if zip5 is None:
        return None, None
    try:
        matches = zipcodes.matching(zip5)
    except (TypeError, ValueError):
        return None, None
    if not matches:
        return None, None
    entry = matches[0]
    state = str(entry.get("state") or "").upper()
    return _zone(entry.get("timezone") or ""), state if state in USPS_CODES else None


def _zone(name: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def _state_names() -> Mapping[str, str]:
    names = {s.name.upper(): s.abbr for s in [*us.states.STATES_AND_TERRITORIES, us.states.DC]}
    names["WASHINGTON D.C."] = "DC"  # phonenumbers' spelling for 202
    return MappingProxyType(names)


class _StateZones(RootModel[dict[str, str]]):
    @field_validator("root")
    @classmethod
    def _check(cls, zones: dict[str, str]) -> dict[str, str]:
        problems = []
        missing = sorted(USPS_CODES - set(zones))
        unknown = sorted(set(zones) - USPS_CODES)
        if missing:
            problems.append(f"missing state code(s) {missing}")
        if unknown:
            problems.append(f"unknown state code(s) {unknown}: use USPS codes in capitals")
        bad = {code: name for code, name in zones.items() if _zone(name) is None}
        if bad:
            problems.append(f"not IANA time zones: {bad}")
        if problems:
            raise ValueError("; ".join(problems))
        return zones


def parse_state_time_zones(data: Any, source: str = STATE_ZONES_RESOURCE) -> Mapping[str, ZoneInfo]:
    """Validate an already parsed state -> zone document; GuardrailDataError names problems."""
    try:
        zones = _StateZones.model_validate(data).root
    except ValidationError as exc:
        raise describe(exc, source) from None
    return MappingProxyType({code: ZoneInfo(name) for code, name in zones.items()})


@cache
def load_state_time_zones() -> Mapping[str, ZoneInfo]:
    """The packaged state -> main zone table, parsed and validated once per process."""
    return parse_state_time_zones(read_yaml_resource(STATE_ZONES_RESOURCE))
