"""The sector catalogue: pure data and lookups, no database needed."""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from outreach_core.catalog import (
    BUSINESS_LINES,
    SECTORS,
    US_STATES,
    Bucket,
    Catalog,
    CatalogError,
    UnknownBucket,
    load_catalog,
    normalize_sic,
    parse_catalog,
)

ID_PATTERN = re.compile(r"^([a-z]{2})-([a-z0-9-]+)$")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture()
def raw() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("outreach_core.catalog").joinpath("buckets.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def test_load_is_cached(catalog: Catalog) -> None:
    assert load_catalog() is catalog


def test_has_200_plus_buckets(catalog: Catalog) -> None:
    assert len(catalog) >= 200
    assert len(catalog.buckets) == len(catalog)


def test_all_17_sectors_present(catalog: Catalog) -> None:
    assert len(SECTORS) == 17
    assert {b.sector for b in catalog} == set(SECTORS)
    for sector in SECTORS:
        assert any(b.state == "us" for b in catalog.by_sector(sector))


def test_every_bucket_id_is_valid_and_unique(catalog: Catalog) -> None:
    ids = [b.id for b in catalog]
    assert len(ids) == len(set(ids))
    for key, bucket in catalog.buckets.items():
        assert key == bucket.id
        assert bucket.id == f"{bucket.state}-{bucket.sector}-{bucket.subsector}"
        assert ID_PATTERN.match(bucket.id)
        assert bucket.state == "us" or bucket.state in US_STATES
        assert bucket.sector in SECTORS
        assert bucket.business_line in BUSINESS_LINES
        assert bucket.name.startswith(bucket.state.upper() + " ")
        assert bucket.sic_codes and all(re.fullmatch(r"\d{4}", c) for c in bucket.sic_codes)


def test_business_lines(catalog: Catalog) -> None:
    for bucket in catalog:
        if bucket.sector == "business-brokers-pe":
            assert bucket.business_line == "ECBB"
        elif bucket.sector in ("real-estate", "property-associated"):
            assert bucket.business_line == "Nextier"
        else:
            assert bucket.business_line == "OutreachGlobal"


def test_storage_prefix_is_a_safe_relative_path(catalog: Catalog) -> None:
    for bucket in catalog:
        prefix = bucket.storage_prefix
        assert prefix == (f"business/{bucket.state}/sectors/{bucket.sector}/{bucket.subsector}")
        path = PurePosixPath(prefix)
        assert not path.is_absolute() and not prefix.startswith(("/", "\\"))
        assert ".." not in prefix and "\\" not in prefix
        assert all(part not in ("", ".", "..") for part in prefix.split("/"))
        assert prefix.isascii()


def test_exact_sic_match(catalog: Catalog) -> None:
    bucket = catalog.bucket_for_sic("1711")
    assert bucket is not None
    assert bucket.id == "us-construction-plumbers"
    assert catalog.bucket_for_sic("1711", state="ny") == catalog.get("ny-construction-plumbers")
    assert catalog.bucket_for_sic("1711", state="NY").id == "ny-construction-plumbers"


def test_exact_sic_match_falls_back_to_national(catalog: Catalog) -> None:
    # Plumbers are not offered as a Washington bucket.
    assert "wa-construction-plumbers" not in catalog
    assert catalog.bucket_for_sic("1711", state="wa").id == "us-construction-plumbers"
    assert catalog.bucket_for_sic("1711", state="zz").id == "us-construction-plumbers"


@pytest.mark.parametrize(
    "code", ["1711", " 1711 ", "1711.0", "171100", "17110000", 1711, 1711.0, "\t1711\n"]
)
def test_sic_input_forms(catalog: Catalog, code: str | int | float) -> None:
    assert catalog.bucket_for_sic(code).subsector == "plumbers"


def test_leading_zero_dropped_by_spreadsheet(catalog: Catalog) -> None:
    assert normalize_sic(742) == "0742"
    assert catalog.bucket_for_sic("742").subsector == "veterinarians"
    assert catalog.bucket_for_sic("0782", state="ny").id == "ny-property-associated-landscaping"


@pytest.mark.parametrize("code", ["1799", "1790", "1798"])
def test_two_digit_fallback(catalog: Catalog, code: str) -> None:
    bucket = catalog.bucket_for_sic(code)
    assert bucket is not None
    assert bucket.sector == "construction"
    assert bucket.state == "us"


def test_fallback_prefers_state_and_longest_prefix(catalog: Catalog) -> None:
    bucket = catalog.bucket_for_sic("1600", state="nj")
    assert bucket.id == "nj-construction-heavy-civil"
    # No subsector shares more than the major group: the sector's first subsector.
    assert catalog.bucket_for_sic("6090").sector == "financial-services"


def test_shared_sic_goes_to_first_listed_subsector(catalog: Catalog) -> None:
    # 7389 is also the business brokers' code, but a catch-all must not land in ECBB.
    assert catalog.bucket_for_sic("7389").business_line == "OutreachGlobal"
    assert "7389" in catalog.get("us-business-brokers-pe-business-brokers").sic_codes
    assert catalog.bucket_for_sic("5812").subsector == "restaurants"


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   ",
        "abc",
        "17a1",
        "17",
        "1",
        "1711.5",
        "-1711",
        "171",
        "12345678901",
        None,
        float("nan"),
        True,
        "5099",
        "0100",
    ],
)
def test_garbage_or_unmapped_sic_returns_none(catalog: Catalog, code: Any) -> None:
    assert catalog.bucket_for_sic(code) is None


def test_unknown_bucket_suggests_the_right_id(catalog: Catalog) -> None:
    with pytest.raises(UnknownBucket) as excinfo:
        catalog.get("ny-construction-plumber")
    err = excinfo.value
    assert isinstance(err, KeyError) and isinstance(err, LookupError)
    assert err.bucket_id == "ny-construction-plumber"
    assert err.suggestions[0] == "ny-construction-plumbers"
    assert 1 <= len(err.suggestions) <= 5
    assert "ny-construction-plumbers" in str(err)


@pytest.mark.parametrize("bad", ["plumbers", "zz-construction-plumbers", "nonsense"])
def test_unknown_bucket_always_suggests_something(catalog: Catalog, bad: str) -> None:
    with pytest.raises(UnknownBucket) as excinfo:
        catalog.get(bad)
    suggestions = excinfo.value.suggestions
    assert 1 <= len(suggestions) <= 5
    assert all(s in catalog for s in suggestions)
    if "plumbers" in bad:
        assert all(s.endswith("-construction-plumbers") for s in suggestions)


def test_get_forgives_case_and_spaces(catalog: Catalog) -> None:
    assert catalog.get(" NY-Construction-Plumbers ").id == "ny-construction-plumbers"


def test_bucket_rejects_bad_fields() -> None:
    good = dict(
        id="ny-construction-plumbers",
        name="NY Plumbers",
        sector="construction",
        subsector="plumbers",
        sic_codes=("1711",),
        state="ny",
        business_line="OutreachGlobal",
    )
    assert Bucket(**good).sic_codes == ("1711",)
    for field, value in [
        ("id", "ny-plumbers"),
        ("sector", "plumbing"),
        ("state", "zz"),
        ("subsector", "../etc"),
        ("sic_codes", ("171",)),
        ("sic_codes", ()),
        ("business_line", "Other"),
    ]:
        with pytest.raises(CatalogError):
            Bucket(**{**good, field: value})


def test_catalog_rejects_duplicate_ids() -> None:
    bucket = load_catalog().get("us-construction-plumbers")
    with pytest.raises(CatalogError, match="duplicate bucket id"):
        Catalog([bucket, bucket], {})


def test_parse_rejects_bad_data(raw: dict[str, Any]) -> None:
    assert len(parse_catalog(raw)) == len(load_catalog())

    unquoted = copy.deepcopy(raw)
    unquoted["sectors"]["construction"]["subsectors"]["plumbers"]["sic"] = [1711]
    with pytest.raises(CatalogError, match="4-digit"):
        parse_catalog(unquoted)

    missing_sector = copy.deepcopy(raw)
    del missing_sector["sectors"]["hotels"]
    with pytest.raises(CatalogError, match="hotels"):
        parse_catalog(missing_sector)

    no_national = copy.deepcopy(raw)
    no_national["sectors"]["construction"]["subsectors"]["plumbers"]["states"] = ["ny"]
    with pytest.raises(CatalogError, match="national"):
        parse_catalog(no_national)

    twice = copy.deepcopy(raw)
    twice["sic_major_groups"]["healthcare"] = ["80", "58"]
    with pytest.raises(CatalogError, match="58"):
        parse_catalog(twice)

    bad_slug = copy.deepcopy(raw)
    subsectors = bad_slug["sectors"]["retail"]["subsectors"]
    subsectors["Bad Slug"] = subsectors.pop("florists")
    with pytest.raises(CatalogError, match="slug"):
        parse_catalog(bad_slug)
