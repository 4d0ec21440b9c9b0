"""Vectorised normalisation of parsed CSV rows into standard lead columns.

Input: a frame with ``row_number`` and the file's columns as raw strings (see
``reader.py``). Output: accepted rows in :data:`STANDARD_COLUMNS` and rejected
rows with a reason and the original values as JSON.

Everything runs as polars expressions over whole chunks. Only values that the
regex paths cannot decide go through Python: phones with a non-US country code,
letters or odd punctuation (``phonenumbers``); non-ASCII e-mail addresses get a
Unicode-aware pattern that is too slow to run on every row. Both work on
distinct values only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
import polars as pl
import us

from outreach_core.ingest.columns import STANDARD_COLUMNS, ColumnMapping

ROW_NUMBER = "row_number"

# Values that mean "nothing here" in exports from spreadsheets, SQL tools and
# pandas. Case variants are listed instead of lower-casing, so that surnames
# such as "Na" or "Nan" survive.
PLACEHOLDERS: tuple[str, ...] = (
    "NULL", "null", "Null", "None", "none", "NONE", "N/A", "n/a", "N/a", "NA", "#N/A",
    "NaN", "nan", "-", "--", "---", ".", "?",
)  # fmt: skip

_NULLS: list[str] = ["", *PLACEHOLDERS]
_NULL = pl.lit(None, dtype=pl.String)

# Trailing extension: "x123", "ext. 45", "extension 7", "#12", ", ext 9".
_PHONE_EXTENSION = r"(?i)\s*[,;]?\s*(?:(?:ext|extn|extension|x)\s*[.:]?|#)\s*\d{1,7}\s*$"
# A whole number that went through a spreadsheet as a float: "2125550100.0".
_PHONE_FLOAT = r"^(\+?\d{7,15})\.0+$"
_PHONE_FORMATTING = r"[\s().\-/]"
# Literal separators for the fast path (replace_many is ~30% cheaper than a regex).
_PHONE_SEPARATORS = [" ", "(", ")", "-", ".", "/"]
# NANP: optional country code 1, area code and exchange both starting 2-9.
_NANP = r"^(?:\+?1)?([2-9]\d{2}[2-9]\d{6})$"
# Digits only (optionally "+1..."), not an international "011" dial prefix:
# when such a value is not NANP-shaped, phonenumbers would not accept it either.
_PHONE_DECIDED = r"^(?:\+1)?\d+$"
_PHONE_INTL_PREFIX = "011"

# Lower-cased addresses. Any non-ASCII character counts as a letter, which
# accepts internationalised addresses (EAI, IDN) without \p{L} classes: those
# make the regex ~15x slower.
_U = r"[^\x00-\x7F]"
_EMAIL_ATOM = rf"(?:[a-z0-9!#$%&'*+/=?^_`{{|}}~-]|{_U})+"
_EMAIL_LABEL = rf"(?:[a-z0-9]|{_U})(?:(?:[a-z0-9-]|{_U}){{0,61}}(?:[a-z0-9]|{_U}))?"
_EMAIL_TLD = rf"(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}}|{_U}{{2,63}})"
EMAIL_PATTERN = rf"^{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@(?:{_EMAIL_LABEL}\.)+{_EMAIL_TLD}$"
# First thing that looks like an address: handles "a@x.com; b@y.com" and
# "Jane <jane@x.com>".
_EMAIL_TOKEN = r"([^\s,;<>]+@[^\s,;<>]+)"
_EMAIL_MAX = 254

_ZIP = r"^(\d{3,5})(?:[-\s]?\d{4})?(?:\.0+)?$"
_SIC_FOUR = r"^(\d{4})(?:\d{2}|\d{4})?(?:\.0+)?$"
_SIC_THREE = r"^(\d{3})(?:\.0+)?$"
# Applied to lower-cased text: case-insensitive regexes are markedly slower.
_LINKEDIN = r"^(?:https?://)?(?:[a-z0-9-]+\.)?linkedin\.com/((?:in|company)/[^/?#\s]+)"
_WEBSITE = (
    r"^(?:https?://)?(?:www\d*\.)?"
    r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})\.?(?::\d{1,5})?(?:[/?#]\S*)?$"
)
_NAME_PREFIX = r"(?i)^(?:mr|mrs|ms|miss|dr|prof)\.?\s+"
_NAME_SUFFIX = r"(?i)[,\s]+(?:jr|sr|ii|iii|iv|md|phd|esq|cpa|dds)\.?$"


@lru_cache(maxsize=1)
def state_lookup() -> dict[str, str]:
    """Upper-cased state names and abbreviations -> USPS code, from ``us``."""
    lookup: dict[str, str] = {}
    for state in [*us.states.STATES_AND_TERRITORIES, us.states.DC]:
        code = state.abbr
        keys = {code, state.name, ".".join(code) + "."}
        if state.ap_abbr:
            keys |= {state.ap_abbr, state.ap_abbr.replace(".", "")}
        for key in keys:
            lookup[key.upper()] = code
    lookup.update({"WASHINGTON DC": "DC", "WASHINGTON D.C.": "DC", "D.C": "DC"})
    return lookup


def clean(expr: pl.Expr) -> pl.Expr:
    """Strip whitespace; empty strings and placeholders become null."""
    # One chain on purpose: eager polars does not share sub-expressions, so
    # when(stripped...).then(stripped) would strip every value three times.
    return expr.str.strip_chars().replace(_NULLS, None)


def mask_phone(digits: pl.Expr) -> pl.Expr:
    """``***`` + last four digits: enough to find the row, not enough to dial."""
    return pl.lit("***") + digits.str.slice(-4)


@dataclass(frozen=True)
class Normalised:
    accepted: pl.DataFrame  # row_number + STANDARD_COLUMNS
    rejected: pl.DataFrame  # row_number, reason, raw


def _phone_fast(value: pl.Expr) -> pl.Expr:
    """E.164 for the usual US spellings, null for anything else (decided later)."""
    # Phones exported from a float column ("2125550100.0") are common enough,
    # sometimes a whole file of them, to be worth handling on this path.
    compact = value.str.strip_suffix(".0").str.replace_many(
        _PHONE_SEPARATORS, [""] * len(_PHONE_SEPARATORS)
    )
    return pl.lit("+1") + compact.str.extract(_NANP, 1)


def phone_slow(values: pl.Series) -> pl.Series:
    """E.164 or null for values the fast path left open (extensions, +44, letters...).

    Regexes settle what they can; ``phonenumbers`` (US default region) gets only
    the distinct values that are neither NANP-shaped nor plainly wrong.
    """
    frame = pl.DataFrame({"value": values}).with_columns(
        pl.col("value")
        .str.replace(_PHONE_EXTENSION, "")
        .str.replace(_PHONE_FLOAT, "${1}")
        .alias("core")
    )
    compact = pl.col("core").str.replace_all(_PHONE_FORMATTING, "")
    frame = frame.with_columns(
        (pl.lit("+1") + compact.str.extract(_NANP, 1)).alias("e164"),
        (compact.str.contains(_PHONE_DECIDED) & ~compact.str.starts_with(_PHONE_INTL_PREFIX)).alias(
            "decided"
        ),
    )
    undecided = frame.filter(
        pl.col("e164").is_null() & ~pl.col("decided") & pl.col("core").str.contains(r"\d")
    )
    keys = undecided.get_column("core").unique()
    if keys.is_empty():
        return frame.get_column("e164").alias(values.name)
    found = [_phonenumbers_e164(key) for key in keys.to_list()]
    looked_up = pl.col("core").replace_strict(
        keys, pl.Series(found, dtype=pl.String), default=None, return_dtype=pl.String
    )
    return frame.select(pl.coalesce("e164", looked_up)).to_series().alias(values.name)


def _phonenumbers_e164(value: str) -> str | None:
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _zip_slow(values: pl.Series) -> pl.Series:
    """ZIP+4, lost leading zeros and spreadsheet floats -> 5 digits, else null."""
    return values.str.extract(_ZIP, 1).str.zfill(5)


def _sic_slow(values: pl.Series) -> pl.Series:
    """'7311.0', 3-digit codes that lost their zero, 6/8-digit extensions -> 4 digits."""
    frame = pl.DataFrame({"v": values})
    return frame.select(
        pl.coalesce(
            pl.col("v").str.extract(_SIC_FOUR, 1),
            pl.lit("0") + pl.col("v").str.extract(_SIC_THREE, 1),
        )
    ).to_series()


def email_slow(values: pl.Series) -> pl.Series:
    """Valid address or null for values the fast path rejected.

    Pulls an address out of ``mailto:...``, ``Jane <jane@x.com>`` and lists
    such as ``a@x.com; b@y.com`` (the first one wins).
    """
    tokens = (
        pl.DataFrame({"value": values})
        .select(
            pl.col("value")
            .str.to_lowercase()
            .str.replace(r"^mailto:", "")
            .str.extract(_EMAIL_TOKEN, 1)
            .alias("token")
        )
        .to_series()
    )
    return _valid_email(pl.DataFrame({"token": tokens})).alias(values.name)


def _valid_email(frame: pl.DataFrame) -> pl.Series:
    token = pl.col(frame.columns[0])
    valid = token.str.contains(EMAIL_PATTERN) & (token.str.len_bytes() <= _EMAIL_MAX)
    return frame.select(pl.when(valid).then(token)).to_series()


def _settle(
    frame: pl.DataFrame, value_col: str, source_col: str, slow: Callable[[pl.Series], pl.Series]
) -> pl.DataFrame:
    """Run ``slow`` on the rows where ``source_col`` is set but ``value_col`` is not."""
    rows = frame.select(
        pl.arg_where(pl.col(source_col).is_not_null() & pl.col(value_col).is_null())
    ).to_series()
    if rows.is_empty():
        return frame
    settled = slow(frame.get_column(source_col).gather(rows))
    column = frame.get_column(value_col).scatter(rows, settled)
    return frame.with_columns(column)


def _src(index: int) -> pl.Expr:
    return pl.col(f"_s{index}")


def normalise(frame: pl.DataFrame, mapping: ColumnMapping, extra_columns: int) -> Normalised:
    """Normalise one parsed chunk and split it into accepted and rejected rows.

    ``frame`` has ``row_number``, ``c0..c{n-1}`` (the file's columns) and
    ``x0..x{extra_columns-1}`` (fields beyond the header width, null if absent).
    """
    extras = [f"x{j}" for j in range(extra_columns)]
    phones = mapping.sources.get("phone", ())
    emails = mapping.sources.get("email", ())
    used = sorted({index for indexes in mapping.sources.values() for index in indexes})

    # Each stage is materialised before the next one uses its columns: eager
    # polars does not share sub-expressions, and referencing a column is free.
    work = frame.with_columns(clean(pl.col(f"c{index}")).alias(f"_s{index}") for index in used)
    work = work.with_columns(
        *[_phone_fast(_src(index)).alias(f"_p{k}") for k, index in enumerate(phones)],
        *[_src(index).str.to_lowercase().alias(f"_e{k}") for k, index in enumerate(emails)],
    )
    if emails:
        work = work.with_columns(
            pl.when(
                pl.col(f"_e{k}").str.contains(EMAIL_PATTERN)
                & (pl.col(f"_e{k}").str.len_bytes() <= _EMAIL_MAX)
            ).then(pl.col(f"_e{k}"))
            for k in range(len(emails))
        )
    # Stage 2: the few values the fast paths did not settle.
    for k, index in enumerate(phones):
        work = _settle(work, f"_p{k}", f"_s{index}", phone_slow)
    for k, index in enumerate(emails):
        work = _settle(work, f"_e{k}", f"_s{index}", email_slow)

    # Stage 3: decide acceptance, then build the other columns for accepted
    # rows only, after dropping the raw columns (less work, less memory).
    phone = pl.coalesce([pl.col(f"_p{k}") for k in range(len(phones))] or [_NULL])
    email = pl.coalesce([pl.col(f"_e{k}") for k in range(len(emails))] or [_NULL])
    # Trailing empty fields ("a,b,c,,,") are an export artefact; only extra
    # fields with data make a row too long.
    overflow = pl.max_horizontal(
        [
            pl.when(pl.col(x).str.strip_chars().str.len_bytes().fill_null(0) > 0)
            .then(pl.lit(j + 1))
            .otherwise(pl.lit(0))
            for j, x in enumerate(extras)
        ]
        or [pl.lit(0)]
    )
    work = work.with_columns(
        phone.alias("_phone"), email.alias("_email"), overflow.alias("_overflow")
    )
    ok = work.select(
        (pl.col("_phone").is_not_null() | pl.col("_email").is_not_null())
        & (pl.col("_overflow") == 0)
    ).to_series()

    # A phone cell without a single digit ("N/A", "call me") is no phone at all.
    phone_texts = [pl.when(_src(i).str.contains(r"\d")).then(_src(i)) for i in phones]
    rejected = work.filter(~ok).with_columns(
        pl.coalesce(phone_texts or [_NULL]).alias("_phone_raw"),
        pl.any_horizontal([_src(i).is_not_null() for i in emails] or [pl.lit(False)]).alias(
            "_email_present"
        ),
    )
    too_long = bool(rejected.select((pl.col("_overflow") > 0).any()).item())
    rejected = rejected.select(
        pl.col(ROW_NUMBER).cast(pl.Int64),
        reject_reason(len(mapping.names), extra_columns).alias("reason"),
        raw_json(mapping, extras if too_long else []).alias("raw"),
    )

    keep = [ROW_NUMBER, "_phone", "_email", *(f"_s{index}" for index in used)]
    work = work.select(keep)
    if not ok.all():
        work = work.filter(ok)
    # ZIP and SIC are usually clean already: a cheap shape test settles most
    # values and the capturing regexes only run on the rest.
    for column, shape, slow in (
        ("zip", r"^\d{5}$", _zip_slow),
        ("sic_code", r"^\d{4}$", _sic_slow),
    ):
        index = mapping.first(column)
        if index is not None:
            work = work.with_columns(
                pl.when(_src(index).str.contains(shape)).then(_src(index)).alias(f"_{column}")
            )
            work = _settle(work, f"_{column}", f"_s{index}", slow)
    outputs = _other_columns(mapping)
    outputs["phone"] = pl.col("_phone")
    outputs["email"] = pl.col("_email")
    accepted = work.select(
        pl.col(ROW_NUMBER).cast(pl.Int64),
        *[
            (outputs[name].cast(pl.String) if name in outputs else _NULL).alias(name)
            for name in STANDARD_COLUMNS
        ],
    )
    return Normalised(accepted=accepted, rejected=rejected)


def _other_columns(mapping: ColumnMapping) -> dict[str, pl.Expr]:
    """Expressions for every standard column except phone and e-mail."""

    def source(column: str) -> pl.Expr | None:
        index = mapping.first(column)
        return None if index is None else _src(index)

    outputs: dict[str, pl.Expr] = {}
    for column in ("company_name", "title", "address", "city", "county"):
        expr = source(column)
        if expr is not None:
            outputs[column] = expr

    first, last, contact = source("first_name"), source("last_name"), source("contact_name")
    if first is not None or last is not None:
        parts = [e for e in (first, last) if e is not None]
        combined = pl.concat_str(parts, separator=" ", ignore_nulls=True).replace("", None)
        outputs["contact_name"] = combined if contact is None else pl.coalesce(contact, combined)
    elif contact is not None:
        outputs["contact_name"] = contact
    if contact is not None and (first is None or last is None):
        base = contact.str.replace(_NAME_PREFIX, "").str.replace(_NAME_SUFFIX, "")
        # "Smith, John" is the usual "last, first" export form.
        comma = base.str.extract_groups(r"^([^,\s]+)\s*,\s*(\S+)")
        derived_first = pl.coalesce(comma.struct.field("2"), base.str.extract(r"^(\S+)\s+\S", 1))
        derived_last = pl.coalesce(comma.struct.field("1"), base.str.extract(r"\s(\S+)$", 1))
        first = derived_first if first is None else pl.coalesce(first, derived_first)
        last = derived_last if last is None else pl.coalesce(last, derived_last)
    if first is not None:
        outputs["first_name"] = first
    if last is not None:
        outputs["last_name"] = last

    state = source("state")
    if state is not None:
        outputs["state"] = state.str.to_uppercase().replace_strict(
            state_lookup(), default=None, return_dtype=pl.String
        )
    # zip and sic_code were settled into columns by normalise().
    if mapping.has("zip"):
        outputs["zip"] = pl.col("_zip")
    if mapping.has("sic_code"):
        outputs["sic_code"] = pl.col("_sic_code")
    linkedin = source("linkedin_url")
    if linkedin is not None:
        path = linkedin.str.to_lowercase().str.extract(_LINKEDIN, 1)
        outputs["linkedin_url"] = pl.lit("https://www.linkedin.com/") + path
    website = source("website")
    if website is not None:
        outputs["website"] = website.str.to_lowercase().str.extract(_WEBSITE, 1)
    return outputs


def reject_reason(width: int, extra_columns: int) -> pl.Expr:
    """Reason text for rows that failed; evaluated on the rejected rows only."""
    overflow = pl.col("_overflow")
    fields = pl.lit(width) + overflow
    too_many = (
        pl.when(overflow >= extra_columns)
        .then(pl.format("row has more than {} fields, header has {}", fields - 1, pl.lit(width)))
        .otherwise(pl.format("row has {} fields, header has {}", fields, pl.lit(width)))
    )
    digits = pl.col("_phone_raw").str.replace_all(r"\D", "")
    phone_reason = pl.lit("invalid phone: ") + mask_phone(digits)
    return (
        pl.when(overflow > 0)
        .then(too_many)
        .when(pl.col("_phone_raw").is_not_null() & pl.col("_email_present"))
        .then(phone_reason + pl.lit("; invalid email"))
        .when(pl.col("_phone_raw").is_not_null())
        .then(phone_reason)
        .when(pl.col("_email_present"))
        .then(pl.lit("invalid email, no phone"))
        .otherwise(pl.lit("no phone or email"))
    )


def raw_json(mapping: ColumnMapping, extras: list[str]) -> pl.Expr:
    """The original row as a JSON object keyed by (de-duplicated) header names."""
    fields = [pl.col(f"c{i}").alias(name) for i, name in enumerate(mapping.names)]
    plain = pl.struct(fields).struct.json_encode()
    if not extras:
        return plain
    extra_values = pl.concat_list([pl.col(x) for x in extras]).list.drop_nulls()
    with_extra = pl.struct([*fields, extra_values.alias("_extra")]).struct.json_encode()
    return pl.when(pl.col("_overflow") > 0).then(with_extra).otherwise(plain)
