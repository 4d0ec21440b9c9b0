"""SMS templates, opt-out language and segment counting: pure functions, no database needed."""

from __future__ import annotations

import copy
from decimal import Decimal
from importlib import resources
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from outreach_core.messaging.segments import (
    GSM_BASIC_CHARSET,
    GSM_CONCAT_SEGMENT_SEPTETS,
    GSM_SINGLE_SEGMENT_SEPTETS,
    UCS2_CONCAT_SEGMENT_UNITS,
    UCS2_SINGLE_SEGMENT_UNITS,
    Encoding,
    SegmentInfo,
    count_segments,
    estimate_cost,
)
from outreach_core.messaging.templates import (
    OPT_OUT_SEPARATOR,
    OPT_OUT_TEXT,
    MissingVariable,
    Template,
    TemplateError,
    UnknownVariable,
    VariableTableError,
    has_opt_out_instruction,
    load_variables,
    parse_template,
    parse_variables,
    with_opt_out,
)

ISSUE_VARIABLES = (
    "firstName",
    "lastName",
    "fullName",
    "companyName",
    "address",
    "city",
    "propertyValue",
    "equity",
    "yearsOwned",
)
# Values a caller supplies beside the lead's columns (see template_variables.yaml).
NON_COLUMN_FIELDS = {"property_value", "equity", "years_owned"}

LEAD: dict[str, object] = {
    "first_name": "Ann",
    "last_name": "Lee",
    "contact_name": "Ann B. Lee",
    "company_name": "Lee Plumbing",
    "organization_name": "Lee Plumbing LLC",
    "address": "12 Main St",
    "city": "Albany",
    "property_value": 350000,
    "equity": Decimal("120000.00"),
    "years_owned": 7,
}

# A character outside GSM-7 but inside the BMP: one UTF-16 code unit.
CYRILLIC = "ж"
EMOJI = "\U0001f44b"  # waving hand: a surrogate pair, two UTF-16 code units


def render(text: str, values: dict[str, object] | None = None) -> str:
    return parse_template(text).render(LEAD if values is None else values)


def without(*fields: str) -> dict[str, object]:
    return {k: v for k, v in LEAD.items() if k not in fields}


# --- variables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{firstName}}", "Ann"),
        ("{{lastName}}", "Lee"),
        ("{{fullName}}", "Ann Lee"),
        ("{{companyName}}", "Lee Plumbing"),
        ("{{address}}", "12 Main St"),
        ("{{city}}", "Albany"),
        ("{{propertyValue}}", "$350,000"),
        ("{{equity}}", "$120,000"),
        ("{{yearsOwned}}", "7"),
    ],
)
def test_each_variable(text: str, expected: str) -> None:
    assert render(text) == expected


def test_the_data_file_defines_the_issues_variables() -> None:
    assert load_variables().names == ISSUE_VARIABLES


def test_every_source_field_is_a_lead_column_or_a_documented_extra() -> None:
    from outreach_core.db.tables import Lead

    columns = set(Lead.__table__.columns.keys())
    for variable in load_variables().variables.values():
        for name in variable.fields:
            assert (name in columns) != (name in NON_COLUMN_FIELDS), (variable.name, name)


def test_full_name_needs_both_parts_else_uses_contact_name() -> None:
    assert render("{{fullName}}", without("last_name")) == "Ann B. Lee"
    # Never half a name: with no contact_name, a lead with only a first name has none.
    with pytest.raises(MissingVariable):
        render("{{fullName}}", {"first_name": "Ann", "last_name": " "})
    assert render("{{fullName|there}}", {"first_name": "Ann"}) == "there"


def test_company_name_falls_back_to_apollos_organisation_name() -> None:
    assert render("{{companyName}}", without("company_name")) == "Lee Plumbing LLC"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (350000, "$350,000"),
        (Decimal("350000.00"), "$350,000"),
        (349999.5, "$350,000"),
        ("350,000", "$350,000"),
        (" $350,000.00 ", "$350,000"),
        (1234567, "$1,234,567"),
        (0, "$0"),
        (Decimal("-0.4"), "$0"),
        ("-$20,000", "-$20,000"),
    ],
)
def test_money_is_whole_dollars_with_thousands_separators(raw: object, expected: str) -> None:
    assert render("{{propertyValue}}", {"property_value": raw}) == expected


@pytest.mark.parametrize(("raw", "expected"), [(12, "12"), (12.9, "12"), ("3", "3"), (0, "0")])
def test_years_owned_counts_whole_years(raw: object, expected: str) -> None:
    assert render("{{yearsOwned}}", {"years_owned": raw}) == expected


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("property_value", "call me"),
        ("property_value", "NaN"),
        ("property_value", True),
        ("years_owned", -1),
        ("years_owned", [3]),
    ],
)
def test_an_unusable_number_counts_as_missing(field: str, raw: object) -> None:
    name = "propertyValue" if field == "property_value" else "yearsOwned"
    with pytest.raises(MissingVariable):
        render(f"{{{{{name}}}}}", {field: raw})


def test_values_are_stripped_and_whitespace_collapsed() -> None:
    values = {"first_name": "  Ann \t", "address": "12 Main St\n Apt 4"}
    assert render("Hi {{firstName}}, {{address}}", values) == "Hi Ann, 12 Main St Apt 4"


def test_render_takes_any_mapping() -> None:
    assert render("{{city}}", MappingProxyType({"city": "Troy"})) == "Troy"  # type: ignore[arg-type]


# --- fallbacks and missing values --------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Hi {{firstName|there}}!", "Hi {{ firstName | there }}!", "Hi {{firstName|  there}}!"]
)
def test_fallback_is_used_only_when_the_value_is_missing(text: str) -> None:
    assert render(text) == "Hi Ann!"
    assert render(text, without("first_name")) == "Hi there!"
    assert render(text, {"first_name": "   "}) == "Hi there!"


def test_fallback_may_hold_spaces() -> None:
    assert render("Hi {{firstName|my friend}}", {}) == "Hi my friend"


@pytest.mark.parametrize(
    "values", [without("first_name"), {"first_name": None}, {"first_name": ""}]
)
def test_missing_variable_without_fallback(values: dict[str, object]) -> None:
    template = parse_template("Hi {{firstName|there}}, about {{city}} and {{firstName}}")
    with pytest.raises(MissingVariable) as caught:
        template.render({**values, "city": "Troy"})
    assert caught.value.name == "firstName"
    assert caught.value.reason == "missing_variable"
    assert "firstName" in str(caught.value)
    assert not isinstance(caught.value, TemplateError)


# --- parsing -----------------------------------------------------------------------------------


def test_a_template_is_parsed_once_into_parts() -> None:
    template = parse_template("Hi {{firstName|there}}, {{fullName}} owns {{firstName}}'s place")
    assert isinstance(template, Template)
    assert template.variables == ("firstName", "fullName")
    assert template.fields == ("first_name", "last_name", "contact_name")
    assert parse_template("no placeholders").render({}) == "no placeholders"
    assert parse_template("").render({}) == ""


def test_unknown_variable_names_it_and_lists_the_known_ones() -> None:
    with pytest.raises(UnknownVariable) as caught:
        parse_template("Hi {{ firstname }}, worth {{propertyValue}}")
    error = caught.value
    assert isinstance(error, TemplateError)
    assert error.name == "firstname"
    assert error.position == 3
    assert error.known == ISSUE_VARIABLES
    message = str(error)
    assert "'firstname'" in message
    assert "did you mean firstName" in message
    for name in ISSUE_VARIABLES:
        assert name in message


def test_unknown_variable_without_a_close_match_still_lists_the_known_ones() -> None:
    with pytest.raises(UnknownVariable, match=r"'zzz'.*known variables: firstName, lastName"):
        parse_template("{{zzz}}")


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("Hi {{firstName", 3, "not closed"),
        ("Hi firstName}}", 12, "no opening"),
        ("Hi {firstName}", 3, "single '{'"),
        ("Hi {{firstName}", 3, "not closed"),
        ("Hi {{firstName}}}", 14, "3 '}' in a row"),
        ("Hi {{{firstName}}}", 3, "3 '{' in a row"),
        ("Hi {{first{{Name}}", 3, "not closed"),
        ("Hi {{}}", 3, "empty placeholder"),
        ("Hi {{  }}", 3, "empty placeholder"),
        ("Hi {{|there}}", 3, "empty placeholder"),
        ("Hi {{firstName|}}", 3, "empty fallback"),
        ("Hi {{firstName| }}", 3, "empty fallback"),
        ("Hi {{firstName|a|b}}", 3, "more than one '|'"),
        ("Hi {{firstName}} {oops", 17, "single '{'"),
    ],
)
def test_malformed_braces_are_errors(text: str, position: int, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment) as caught:
        parse_template(text)
    assert caught.value.position == position


def test_the_variables_file_is_validated() -> None:
    text = resources.files("outreach_core.messaging").joinpath("template_variables.yaml")
    raw: dict[str, Any] = yaml.safe_load(text.read_text("utf-8"))
    assert parse_variables(copy.deepcopy(raw)).names == ISSUE_VARIABLES

    bad_format = copy.deepcopy(raw)
    bad_format["variables"]["city"]["format"] = "currency"
    with pytest.raises(VariableTableError, match="currency"):
        parse_variables(bad_format)

    joined_money = copy.deepcopy(raw)
    joined_money["variables"]["equity"]["sources"] = [["equity", "property_value"]]
    with pytest.raises(VariableTableError, match="only text variables"):
        parse_variables(joined_money)

    bad_field = copy.deepcopy(raw)
    bad_field["variables"]["city"]["sources"] = ["City"]
    with pytest.raises(VariableTableError, match="snake_case"):
        parse_variables(bad_field)


def test_a_template_can_use_another_variables_table() -> None:
    table = parse_variables(
        {
            "money": {"symbol": "€", "decimal_places": 2},
            "variables": {"price": {"format": "money", "sources": ["price"]}},
        }
    )
    assert parse_template("{{price}}", table).render({"price": 1234.5}) == "€1,234.50"
    with pytest.raises(UnknownVariable, match=r"known variables: price\)"):
        parse_template("{{firstName}}", table)


# --- opt-out -----------------------------------------------------------------------------------


def test_opt_out_is_appended_to_a_first_message_once() -> None:
    body = with_opt_out("Hi Ann, still own 12 Main St?  ", first_message=True)
    assert body == f"Hi Ann, still own 12 Main St?{OPT_OUT_SEPARATOR}{OPT_OUT_TEXT}"
    assert OPT_OUT_TEXT == "Reply STOP to opt out"
    assert with_opt_out(body, first_message=True) == body
    assert body.count("STOP") == 1


def test_opt_out_is_not_added_to_later_messages() -> None:
    assert with_opt_out("Following up, Ann", first_message=False) == "Following up, Ann"


@pytest.mark.parametrize(
    "body",
    [
        "Hi Ann. Text STOP to quit",
        "Hi Ann. text STOP to end",
        "Hi Ann. reply stop to unsubscribe",
        "Hi Ann. Reply UNSUBSCRIBE anytime",
        "Hi Ann. Reply with 'Stop' to opt-out",
        "Hi Ann. Reply \u201cSTOP\u201d",
        "Hi Ann. STOP to cancel",
        "Hi Ann. Stop 2 end",
        "Hi Ann. STOP=end",
    ],
)
def test_opt_out_is_not_added_when_the_body_already_has_one(body: str) -> None:
    assert has_opt_out_instruction(body)
    assert with_opt_out(body, first_message=True) == body


@pytest.mark.parametrize(
    "body",
    [
        "Stop by our office on Main St",
        "Don't stop to think, call us",
        "Nonstop service",
        "You can unsubscribe anytime",
    ],
)
def test_the_word_alone_is_not_an_opt_out_instruction(body: str) -> None:
    # A body wrongly judged compliant would go out with no way to opt out.
    assert not has_opt_out_instruction(body)
    assert with_opt_out(body, first_message=True).endswith(OPT_OUT_SEPARATOR + OPT_OUT_TEXT)


def test_opt_out_on_an_empty_body() -> None:
    assert with_opt_out("", first_message=True) == OPT_OUT_TEXT


# --- segments ----------------------------------------------------------------------------------


def test_the_segment_limits() -> None:
    assert (GSM_SINGLE_SEGMENT_SEPTETS, GSM_CONCAT_SEGMENT_SEPTETS) == (160, 153)
    assert (UCS2_SINGLE_SEGMENT_UNITS, UCS2_CONCAT_SEGMENT_UNITS) == (70, 67)
    # The 3GPP default alphabet has 128 positions, one of them the escape to the extension.
    assert len(GSM_BASIC_CHARSET) == 127


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4)],
)
def test_gsm_segment_boundaries(length: int, segments: int) -> None:
    assert count_segments("a" * length) == SegmentInfo(Encoding.GSM7, length, segments)


@pytest.mark.parametrize(
    ("length", "segments"), [(70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3), (67 * 3 + 1, 4)]
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    assert count_segments(CYRILLIC * length) == SegmentInfo(Encoding.UCS2, length, segments)


def test_extension_characters_count_two_septets() -> None:
    info = count_segments("^{}\\[~]|€")
    assert info == SegmentInfo(Encoding.GSM7, 18, 1)
    assert count_segments("a" * 158 + "€") == SegmentInfo(Encoding.GSM7, 160, 1)
    assert count_segments("a" * 159 + "€") == SegmentInfo(Encoding.GSM7, 161, 2)


def test_an_extension_character_is_not_split_across_segments() -> None:
    # 152 + 2 + 152 = 306 septets, exactly two full segments by arithmetic, but the euro sign
    # cannot straddle septets 153 and 154, so segment one ends at 152 and a third is needed.
    body = "a" * 152 + "€" + "a" * 152
    assert count_segments(body) == SegmentInfo(Encoding.GSM7, 306, 3)
    # One septet earlier the euro sign fits at the end of segment one.
    assert count_segments("a" * 151 + "€" + "a" * 153) == SegmentInfo(Encoding.GSM7, 306, 2)


def test_an_emoji_makes_the_message_ucs2_and_counts_two_units() -> None:
    assert count_segments(f"Hi Ann {EMOJI}") == SegmentInfo(Encoding.UCS2, 9, 1)
    assert count_segments("a" * 68 + EMOJI) == SegmentInfo(Encoding.UCS2, 70, 1)
    assert count_segments("a" * 69 + EMOJI) == SegmentInfo(Encoding.UCS2, 71, 2)


def test_a_surrogate_pair_is_not_split_across_segments() -> None:
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 66  # 134 units: two segments by arithmetic
    assert count_segments(body) == SegmentInfo(Encoding.UCS2, 134, 3)
    assert count_segments(CYRILLIC * 65 + EMOJI + CYRILLIC * 67) == SegmentInfo(
        Encoding.UCS2, 134, 2
    )


def test_a_curly_quote_makes_the_message_ucs2() -> None:
    assert count_segments("It's").encoding is Encoding.GSM7
    assert count_segments("It\u2019s") == SegmentInfo(Encoding.UCS2, 4, 1)


def test_gsm_accented_letters_stay_gsm() -> None:
    assert count_segments("Café Müller, Señor Ñ, Ç £ ¥ ¿¡").encoding is Encoding.GSM7
    # Lower-case ç is not in the GSM table (only Ç is).
    assert count_segments("Façade").encoding is Encoding.UCS2


def test_an_empty_body_is_no_segments() -> None:
    assert count_segments("") == SegmentInfo(Encoding.GSM7, 0, 0)


def test_encoding_is_a_str_enum() -> None:
    assert Encoding.GSM7 == "GSM-7"
    assert Encoding.UCS2 == "UCS-2"


def test_estimate_cost() -> None:
    assert estimate_cost(3, Decimal("0.0079")) == Decimal("0.0237")
    assert estimate_cost(0, Decimal("0.0079")) == Decimal("0")
    with pytest.raises(TypeError):
        estimate_cost(1, 0.0079)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        estimate_cost(-1, Decimal("0.0079"))
    with pytest.raises(ValueError):
        estimate_cost(1, Decimal("-0.01"))


def test_a_first_message_end_to_end() -> None:
    template = parse_template("Hi {{firstName|there}}, is {{address}} for sale?")
    body = with_opt_out(template.render(LEAD), first_message=True)
    assert body == "Hi Ann, is 12 Main St for sale?\nReply STOP to opt out"
    assert count_segments(body) == SegmentInfo(Encoding.GSM7, len(body), 1)
