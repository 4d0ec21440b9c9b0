"""Quiet hours: recipient time zone, rules data and window arithmetic. Pure, no database.

Every test passes `now` explicitly: the guardrail takes the caller's clock, so a frozen clock is
just a datetime."""

from __future__ import annotations

import collections
import copy
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
import zipcodes

from outreach_core.catalog import US_STATES
from outreach_core.guardrails import BlockReason, QuietHoursDecision, check_quiet_hours
from outreach_core.guardrails._data import GuardrailDataError, read_yaml_resource
from outreach_core.guardrails.rules import (
    QuietHoursRule,
    QuietHoursRules,
    load_quiet_hours_rules,
    parse_quiet_hours_rules,
)
from outreach_core.guardrails.timezones import (
    TimeZoneSource,
    load_state_time_zones,
    locate_recipient,
    parse_state_time_zones,
    resolve_time_zone,
)
from outreach_core.guardrails.windows import (
    TWILIO_VALIDITY_PERIOD_MAX_S,
    TWILIO_VALIDITY_PERIOD_MIN_S,
    is_allowed,
    next_window_start,
    twilio_validity_period_s,
    window_closes_at,
)

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")

NY_ZIP = "10001"  # Manhattan
CA_ZIP = "90012"  # Los Angeles
FL_MIAMI_ZIP = "33101"  # Eastern Florida
FL_PANHANDLE_ZIP = "32501"  # Pensacola: Florida, Central time
KY_WEST_ZIP = "42001"  # Paducah: Kentucky, Central time
LA_PHONE = "+13105550100"  # area code 310: Los Angeles
NY_PHONE = "+12125550100"  # area code 212: New York
FL_PANHANDLE_PHONE = "+18505551234"  # area code 850: phonenumbers says Eastern for this one
TOLL_FREE_PHONE = "+18005550100"  # not geographic: no area-code zone

DEFAULT_WINDOW = {"start": "09:00", "end": "20:00"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def rule(start: str = "09:00", end: str = "20:00", cap: int | None = None) -> QuietHoursRule:
    return QuietHoursRule.model_validate({"start": start, "end": end, "max_messages_per_24h": cap})


def check(
    now: datetime,
    zip_code: str | None = None,
    state: str | None = None,
    phone: str | None = None,
    rules: QuietHoursRules | None = None,
) -> QuietHoursDecision:
    return check_quiet_hours(now_utc=now, zip_code=zip_code, state=state, phone=phone, rules=rules)


@pytest.fixture()
def raw_rules() -> dict[str, Any]:
    return copy.deepcopy(read_yaml_resource("quiet_hours.yaml"))


# --- the rules data --------------------------------------------------------------------------


def test_packaged_rules_load_once() -> None:
    rules = load_quiet_hours_rules()
    assert load_quiet_hours_rules() is rules
    assert (rules.default.start, rules.default.end) == (time(9), time(20))
    assert rules.default.max_messages_per_24h is None
    for state in ("FL", "OK"):
        assert (rules.states[state].start, rules.states[state].end) == (time(8), time(20))
        assert rules.states[state].max_messages_per_24h == 3


def test_effective_rule_is_the_stricter_of_default_and_state() -> None:
    rules = load_quiet_hours_rules()
    # Florida's 08:00 start does not loosen the house 09:00; its cap is what it adds.
    florida = rules.for_states(["fl"])
    assert (florida.start, florida.end, florida.max_messages_per_24h) == (time(9), time(20), 3)
    assert rules.for_states(["NY"]) == rules.default
    assert rules.for_states([None, "", "ZZ"]) == rules.default


def test_state_rules_combine_latest_start_earliest_end_smallest_cap() -> None:
    rules = parse_quiet_hours_rules(
        {
            "default": {"start": "08:00", "end": "21:00"},
            "states": {
                "TX": {"start": "10:00", "end": "20:30", "max_messages_per_24h": 5},
                "FL": {"start": "08:00", "end": "20:00", "max_messages_per_24h": 3},
            },
        }
    )
    combined = rules.for_states(["TX", "FL"])
    assert (combined.start, combined.end, combined.max_messages_per_24h) == (time(10), time(20), 3)
    assert rules.for_states(["NY"]).end == time(21)


BAD_RULES = [
    # (path to change, new value, expected words in the message)
    (("states", "FL", "end"), 1200, r"states\.FL\.end: must be a quoted 'HH:MM' string"),
    (("states", "FL", "end"), "8pm", r"states\.FL\.end: '8pm' is not a 24-hour 'HH:MM' time"),
    (("default", "start"), "24:00", r"default\.start: '24:00' is not"),
    (("states", "FL", "start"), "21:00", r"states\.FL: .*start 21:00 must be before end 20:00"),
    (("states", "FL", "max_messages_per_24h"), 0, r"states\.FL\.max_messages_per_24h"),
    (("states", "FL", "max_messages_per_24h"), "3", r"states\.FL\.max_messages_per_24h"),
    (("states", "FL", "max_messages_per_day"), 3, r"states\.FL\.max_messages_per_day: Extra"),
    (("states", "XX"), DEFAULT_WINDOW, r"states: .*unknown state code\(s\) \['XX'\]"),
    (("states", "fl"), DEFAULT_WINDOW, r"unknown state code\(s\) \['fl'\].*capitals"),
    (("states", "OK"), {"start": "06:00", "end": "08:30"}, r"share no window"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_RULES)
def test_malformed_rules_are_rejected_naming_the_problem(
    raw_rules: dict[str, Any], path: tuple[str, ...], value: Any, message: str
) -> None:
    target = raw_rules
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(GuardrailDataError, match=message) as info:
        parse_quiet_hours_rules(raw_rules)
    assert str(info.value).startswith("quiet_hours.yaml: ")


def test_unquoted_yaml_time_is_caught() -> None:
    # The trap the loader guards against: YAML 1.1 reads 20:00 as base-60 1200.
    text = "default:\n  start: '09:00'\n  end: 20:00\n"
    with pytest.raises(GuardrailDataError, match=r"default\.end: must be a quoted .* got 1200"):
        parse_quiet_hours_rules(yaml.safe_load(text))


@pytest.mark.parametrize("document", [None, [], {"states": {}}, {"default": None}])
def test_rules_document_shape_is_checked(document: Any) -> None:
    with pytest.raises(GuardrailDataError, match=r"^quiet_hours\.yaml: "):
        parse_quiet_hours_rules(document)


# --- the state -> zone data -------------------------------------------------------------------


def test_state_zones_cover_every_state_and_match_most_zips() -> None:
    zones = load_state_time_zones()
    assert load_state_time_zones() is zones
    assert set(zones) == {code.upper() for code in US_STATES}
    # "Main zone" = the zone most of the state's ZIP codes are in.
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for entry in zipcodes.list_all():
        if entry["timezone"]:
            counts[entry["state"]][entry["timezone"]] += 1
    for code, zone in zones.items():
        assert zone.key == counts[code].most_common(1)[0][0], code


def test_malformed_state_zones_are_rejected() -> None:
    data = dict(read_yaml_resource("state_time_zones.yaml"))
    data["FL"] = "America/Pensacola"
    del data["TX"]
    data["QQ"] = "America/Chicago"
    with pytest.raises(GuardrailDataError) as info:
        parse_state_time_zones(data)
    message = str(info.value)
    assert message.startswith("state_time_zones.yaml: ")
    assert "missing state code(s) ['TX']" in message
    assert "unknown state code(s) ['QQ']" in message
    assert "'FL': 'America/Pensacola'" in message


# --- where the recipient is -------------------------------------------------------------------


def test_zip_beats_state_beats_area_code() -> None:
    by_zip = resolve_time_zone(FL_PANHANDLE_ZIP, "NY", LA_PHONE)
    by_state = resolve_time_zone(None, "NY", LA_PHONE)
    by_phone = resolve_time_zone(None, None, LA_PHONE)
    assert by_zip is not None and (by_zip.zone, by_zip.source) == (CHICAGO, TimeZoneSource.ZIP)
    assert by_state is not None and (by_state.zone, by_state.source) == (
        NEW_YORK,
        TimeZoneSource.STATE,
    )
    assert by_phone is not None and (by_phone.zone, by_phone.source) == (
        LOS_ANGELES,
        TimeZoneSource.AREA_CODE,
    )
    # An unknown ZIP or state is skipped, not fatal.
    fallback = resolve_time_zone("00000", "ZZ", LA_PHONE)
    assert fallback is not None and fallback.source is TimeZoneSource.AREA_CODE


@pytest.mark.parametrize(
    ("zip_code", "zone"),
    [
        (FL_PANHANDLE_ZIP, CHICAGO),  # Pensacola: Florida, but Central
        (KY_WEST_ZIP, CHICAGO),  # Paducah: Kentucky, but Central
        (FL_MIAMI_ZIP, NEW_YORK),
        (f"{FL_PANHANDLE_ZIP}-1234", CHICAGO),  # ZIP+4
    ],
)
def test_zip_is_right_for_split_states(zip_code: str, zone: ZoneInfo) -> None:
    resolution = resolve_time_zone(zip_code, None, None)
    assert resolution is not None and resolution.zone == zone
    assert resolution.source is TimeZoneSource.ZIP


def test_area_code_is_coarse_so_it_comes_last() -> None:
    # This 850 number is in the Central panhandle, but phonenumbers says Eastern; the ZIP wins.
    by_phone = resolve_time_zone(None, None, FL_PANHANDLE_PHONE)
    assert by_phone is not None and by_phone.zone == NEW_YORK
    by_zip = resolve_time_zone(FL_PANHANDLE_ZIP, None, FL_PANHANDLE_PHONE)
    assert by_zip is not None and by_zip.zone == CHICAGO


def test_several_area_code_zones_pick_the_state_main_zone_and_say_so() -> None:
    alaska = resolve_time_zone(None, None, "+19075550100")
    assert alaska is not None and alaska.source is TimeZoneSource.AREA_CODE
    assert alaska.zone == ZoneInfo("America/Anchorage")
    assert alaska.ambiguous and alaska.candidates == ("America/Adak", "America/Anchorage")
    assert resolve_time_zone(None, None, "+19075550100") == alaska  # deterministic


def test_nothing_known_means_no_zone() -> None:
    assert resolve_time_zone(None, None, None) is None
    assert resolve_time_zone("", " ", "not a phone") is None
    assert resolve_time_zone(None, None, TOLL_FREE_PHONE) is None  # every NANP zone: useless


def test_states_include_zip_and_area_code_states() -> None:
    location = locate_recipient(NY_ZIP, "nj", FL_PANHANDLE_PHONE)
    assert location.states == ("NJ", "NY", "FL")


# --- the decision -----------------------------------------------------------------------------


def test_ny_and_ca_at_one_instant() -> None:
    now = utc(2025, 6, 2, 14, 0)  # 10:00 in New York, 07:00 in Los Angeles (both on DST)
    leads = {
        "ny": (NY_ZIP, "NY"),
        "ca": (CA_ZIP, "CA"),
        "ca-no-zip": (None, "CA"),
        "ny-phone-only": (None, None),
    }
    phones = {"ny-phone-only": NY_PHONE}
    decisions = {
        name: check(now, zip_code, state, phones.get(name))
        for name, (zip_code, state) in leads.items()
    }
    assert {name for name, d in decisions.items() if d.allowed} == {"ny", "ny-phone-only"}
    for name in ("ca", "ca-no-zip"):
        blocked = decisions[name]
        assert blocked.reason is BlockReason.QUIET_HOURS
        assert blocked.retry_at == local(LOS_ANGELES, 2025, 6, 2, 9, 0) == utc(2025, 6, 2, 16, 0)
        assert blocked.validity_period_s is None
    allowed = decisions["ny"]
    assert allowed.reason is None and allowed.retry_at is None
    assert allowed.closes_at == local(NEW_YORK, 2025, 6, 2, 20, 0)
    assert allowed.validity_period_s == 10 * 3600


def test_florida_and_new_york_at_0830() -> None:
    # With the packaged rules the house 09:00 is stricter than Florida's 08:00, so both wait;
    # Florida differs by its cap of 3 per 24 h.
    florida = check(local(NEW_YORK, 2025, 6, 2, 8, 30), FL_MIAMI_ZIP, "FL")
    new_york = check(local(NEW_YORK, 2025, 6, 2, 8, 30), NY_ZIP, "NY")
    for decision in (florida, new_york):
        assert not decision.allowed and decision.reason is BlockReason.QUIET_HOURS
        assert decision.retry_at == local(NEW_YORK, 2025, 6, 2, 9, 0)
    assert florida.max_messages_per_24h == 3
    assert new_york.max_messages_per_24h is None


def test_state_rule_tightens_a_looser_default() -> None:
    # Under a TCPA-style default (08:00-21:00) Florida's own 08:00-20:00 is what binds.
    rules = parse_quiet_hours_rules(
        {
            "default": {"start": "08:00", "end": "21:00"},
            "states": {"FL": {"start": "08:00", "end": "20:00", "max_messages_per_24h": 3}},
        }
    )
    morning = local(NEW_YORK, 2025, 6, 2, 8, 30)
    assert check(morning, FL_MIAMI_ZIP, "FL", rules=rules).allowed
    assert check(morning, NY_ZIP, "NY", rules=rules).allowed
    evening = local(NEW_YORK, 2025, 6, 2, 20, 30)
    florida = check(evening, FL_MIAMI_ZIP, "FL", rules=rules)
    assert not florida.allowed and florida.retry_at == local(NEW_YORK, 2025, 6, 3, 8, 0)
    assert check(evening, NY_ZIP, "NY", rules=rules).allowed


def test_panhandle_lead_uses_central_time() -> None:
    now = local(NEW_YORK, 2025, 6, 2, 9, 30)  # 08:30 in Pensacola
    panhandle = check(now, FL_PANHANDLE_ZIP, "FL", FL_PANHANDLE_PHONE)
    assert panhandle.time_zone is not None and panhandle.time_zone.zone == CHICAGO
    assert panhandle.reason is BlockReason.QUIET_HOURS
    assert panhandle.retry_at == local(CHICAGO, 2025, 6, 2, 9, 0)
    assert check(now, FL_MIAMI_ZIP, "FL").allowed


def test_florida_area_code_brings_florida_cap() -> None:
    # A New York address with a Florida number: Florida presumes its area codes reach residents.
    decision = check(local(NEW_YORK, 2025, 6, 2, 12, 0), NY_ZIP, "NY", FL_PANHANDLE_PHONE)
    assert decision.allowed and decision.states == ("NY", "FL")
    assert decision.max_messages_per_24h == 3


def test_unknown_time_zone_is_blocked_without_retry() -> None:
    decision = check(utc(2025, 6, 2, 17, 0), None, None, TOLL_FREE_PHONE)
    assert not decision.allowed
    assert decision.reason is BlockReason.UNKNOWN_TIMEZONE
    assert decision.retry_at is None and decision.closes_at is None
    assert decision.time_zone is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(datetime(2025, 6, 2, 12, 0), NY_ZIP)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_allowed(datetime(2025, 6, 2, 12, 0), NEW_YORK, rule())


# --- window arithmetic ------------------------------------------------------------------------


def test_window_edges_start_inclusive_end_exclusive() -> None:
    r = rule()
    start, end = local(NEW_YORK, 2025, 6, 2, 9, 0), local(NEW_YORK, 2025, 6, 2, 20, 0)
    second = timedelta(seconds=1)
    assert not is_allowed(start - second, NEW_YORK, r)
    assert is_allowed(start, NEW_YORK, r)
    assert is_allowed(end - second, NEW_YORK, r)
    assert not is_allowed(end, NEW_YORK, r)
    assert next_window_start(start, NEW_YORK, r) == start
    assert next_window_start(end, NEW_YORK, r) == local(NEW_YORK, 2025, 6, 3, 9, 0)


def test_closes_at_is_this_or_the_next_window() -> None:
    r = rule()
    assert window_closes_at(local(NEW_YORK, 2025, 6, 2, 7, 0), NEW_YORK, r) == local(
        NEW_YORK, 2025, 6, 2, 20, 0
    )
    assert window_closes_at(local(NEW_YORK, 2025, 6, 2, 12, 0), NEW_YORK, r) == local(
        NEW_YORK, 2025, 6, 2, 20, 0
    )
    assert window_closes_at(local(NEW_YORK, 2025, 6, 2, 21, 0), NEW_YORK, r) == local(
        NEW_YORK, 2025, 6, 3, 20, 0
    )


@pytest.mark.parametrize(
    ("now_local", "expected_local"),
    [
        ((2025, 6, 2, 23, 59, 59), (2025, 6, 3, 9, 0)),  # UTC is already on the 3rd
        ((2025, 6, 3, 0, 0, 0), (2025, 6, 3, 9, 0)),
        ((2025, 6, 3, 0, 1, 0), (2025, 6, 3, 9, 0)),
        ((2025, 12, 31, 23, 59, 0), (2026, 1, 1, 9, 0)),  # across the year end
    ],
)
def test_just_before_and_after_midnight(
    now_local: tuple[int, ...], expected_local: tuple[int, ...]
) -> None:
    for zone in (NEW_YORK, LOS_ANGELES):
        now = local(zone, *now_local)
        assert not is_allowed(now, zone, rule())
        assert next_window_start(now, zone, rule()) == local(zone, *expected_local)
        decision = check(now, NY_ZIP if zone is NEW_YORK else CA_ZIP)
        assert decision.retry_at == local(zone, *expected_local)


def test_spring_forward_day() -> None:
    # 2025-03-09: New York jumps from 02:00 EST to 03:00 EDT.
    r = rule()
    night_before = local(NEW_YORK, 2025, 3, 8, 20, 30)  # EST
    opens = next_window_start(night_before, NEW_YORK, r)
    assert opens == utc(2025, 3, 9, 13, 0)  # 09:00 EDT, not 14:00 UTC (09:00 EST)
    assert opens - night_before == timedelta(hours=11, minutes=30)  # one hour shorter night
    assert next_window_start(utc(2025, 3, 9, 6, 0), NEW_YORK, r) == opens  # 01:00 EST
    assert not is_allowed(utc(2025, 3, 9, 12, 59), NEW_YORK, r)
    assert is_allowed(utc(2025, 3, 9, 13, 0), NEW_YORK, r)
    assert window_closes_at(opens, NEW_YORK, r) == utc(2025, 3, 10, 0, 0)  # 20:00 EDT


def test_fall_back_day() -> None:
    # 2025-11-02: New York repeats 01:00-02:00 (EDT, then EST).
    r = rule()
    night_before = local(NEW_YORK, 2025, 11, 1, 20, 30)  # EDT
    opens = next_window_start(night_before, NEW_YORK, r)
    assert opens == utc(2025, 11, 2, 14, 0)  # 09:00 EST
    assert opens - night_before == timedelta(hours=13, minutes=30)  # one hour longer night
    assert next_window_start(utc(2025, 11, 2, 5, 30), NEW_YORK, r) == opens  # 1st 01:30
    assert next_window_start(utc(2025, 11, 2, 6, 30), NEW_YORK, r) == opens  # 2nd 01:30
    assert window_closes_at(opens, NEW_YORK, r) == utc(2025, 11, 3, 1, 0)  # 20:00 EST


def test_dst_edge_wall_times_resolve_to_the_stricter_side() -> None:
    # 01:30 happens twice on 2025-11-02: a window opens at the later one, closes at the earlier.
    first, second = utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 6, 30)
    assert next_window_start(utc(2025, 11, 2, 4, 0), NEW_YORK, rule("01:30", "12:00")) == second
    assert window_closes_at(utc(2025, 11, 2, 4, 0), NEW_YORK, rule("00:30", "01:30")) == first
    # 02:30 does not exist on 2025-03-09: the window opens after the gap, not before it.
    opens = next_window_start(utc(2025, 3, 9, 5, 0), NEW_YORK, rule("02:30", "12:00"))
    assert opens == utc(2025, 3, 9, 7, 30)  # 03:30 EDT


# --- Twilio ValidityPeriod ----------------------------------------------------------------------


def test_validity_period_bounds_are_twilios() -> None:
    assert (TWILIO_VALIDITY_PERIOD_MIN_S, TWILIO_VALIDITY_PERIOD_MAX_S) == (1, 36_000)


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (timedelta(hours=11), TWILIO_VALIDITY_PERIOD_MAX_S),  # a whole 09:00-20:00 window
        (timedelta(hours=10), 36_000),
        (timedelta(minutes=5), 300),
        (timedelta(minutes=5, microseconds=999_999), 300),  # rounded down, never past close
        (timedelta(milliseconds=400), TWILIO_VALIDITY_PERIOD_MIN_S),
        (timedelta(0), TWILIO_VALIDITY_PERIOD_MIN_S),
        (-timedelta(hours=1), TWILIO_VALIDITY_PERIOD_MIN_S),
    ],
)
def test_validity_period_is_clamped(remaining: timedelta, expected: int) -> None:
    now = utc(2025, 6, 2, 12, 0)
    assert twilio_validity_period_s(now, now + remaining) == expected


def test_decision_validity_period_stops_at_window_close() -> None:
    now = local(NEW_YORK, 2025, 6, 2, 19, 45)
    decision = check(now, NY_ZIP)
    assert decision.allowed and decision.validity_period_s == 15 * 60
    assert check(local(NEW_YORK, 2025, 6, 2, 9, 0), NY_ZIP).validity_period_s == 36_000


# --- block reasons ----------------------------------------------------------------------------


def test_block_reasons() -> None:
    expected = {
        "suppressed", "quiet_hours", "lead_cap", "budget", "daily_limit", "no_consent",
        "invalid_phone", "landline", "unknown_timezone", "campaign_paused", "number_halted",
    }  # fmt: skip
    assert expected <= {reason.value for reason in BlockReason}
    assert BlockReason("quiet_hours") is BlockReason.QUIET_HOURS
    assert f"{BlockReason.QUIET_HOURS}" == "quiet_hours"


def test_an_operators_rules_file_replaces_the_packaged_rules(tmp_path, monkeypatch) -> None:
    from outreach_core.guardrails.rules import load_quiet_hours_rules
    from outreach_core.settings import get_settings

    own = tmp_path / "rules.yaml"
    own.write_text(
        'default: {start: "08:00", end: "21:00"}\nstates: {TX: {start: "09:00", end: "21:00"}}\n'
    )
    monkeypatch.setattr(get_settings(), "quiet_hours_file", own)
    load_quiet_hours_rules.cache_clear()
    try:
        rules = load_quiet_hours_rules()
        assert (rules.default.start.hour, rules.default.end.hour) == (8, 21)
        assert rules.for_states(["tx"]).start.hour == 9 and rules.states.keys() == {"TX"}
        own.write_text('default: {start: 8, end: "21:00"}\n')
        load_quiet_hours_rules.cache_clear()
        with pytest.raises(ValueError, match=str(own)):
            load_quiet_hours_rules()
    finally:
        load_quiet_hours_rules.cache_clear()
