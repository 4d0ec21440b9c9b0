"""How many SMS segments a body costs, and what they cost.

A body that fits the GSM-7 alphabet (3GPP TS 23.038 default alphabet plus its extension
table) is sent in 7-bit septets; anything else makes the whole message UCS-2 (UTF-16 code
units). A single SMS carries 140 octets; a concatenated one gives 6 of them to the header
that stitches the parts together, which is where the 160/153 and 70/67 limits come from.

Carriers split long messages character by character: a GSM extension character (ESC + char)
and a UTF-16 surrogate pair (an emoji) are never split across two segments, so a segment may
end one unit short and the count is not simply ceil(units / capacity).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

__all__ = [
    "GSM_BASIC_CHARSET",
    "GSM_CONCAT_SEGMENT_SEPTETS",
    "GSM_EXTENSION_CHARSET",
    "GSM_SINGLE_SEGMENT_SEPTETS",
    "UCS2_CONCAT_SEGMENT_UNITS",
    "UCS2_SINGLE_SEGMENT_UNITS",
    "Encoding",
    "SegmentInfo",
    "count_segments",
    "estimate_cost",
]

# 140 octets * 8 bits / 7 bits per septet.
GSM_SINGLE_SEGMENT_SEPTETS: Final = 160
# 134 octets after the 6-octet concatenation header: 153 septets (plus a fill bit).
GSM_CONCAT_SEGMENT_SEPTETS: Final = 153
# 140 octets / 2 octets per UTF-16 code unit.
UCS2_SINGLE_SEGMENT_UNITS: Final = 70
# (140 - 6) octets / 2.
UCS2_CONCAT_SEGMENT_UNITS: Final = 67

# An extension character is sent as the escape septet followed by its own septet.
_GSM_EXTENSION_SEPTETS: Final = 2
_GSM_BASIC_SEPTETS: Final = 1
# Characters beyond the Basic Multilingual Plane (most emoji) are a UTF-16 surrogate pair.
_LAST_BMP_CODE_POINT: Final = 0xFFFF
_SURROGATE_PAIR_UNITS: Final = 2
_BMP_UNITS: Final = 1

# The default alphabet in table order, 0x00-0x7F, without 0x1B (the escape to the extension
# table, which is not a character a body can contain). Note Ç: the table has the capital only.
GSM_BASIC_CHARSET: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table's characters in common use (form feed is in it too).
GSM_EXTENSION_CHARSET: Final = frozenset("^{}\\[~]|€\f")


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentInfo:
    """`units` are septets for GSM-7 and UTF-16 code units for UCS-2."""

    encoding: Encoding
    units: int
    segments: int


def _gsm_septets(body: str) -> list[int] | None:
    """Septets per character, or None when some character is not in GSM-7."""
    septets: list[int] = []
    for char in body:
        if char in GSM_BASIC_CHARSET:
            septets.append(_GSM_BASIC_SEPTETS)
        elif char in GSM_EXTENSION_CHARSET:
            septets.append(_GSM_EXTENSION_SEPTETS)
        else:
            return None
    return septets


def _utf16_units(body: str) -> list[int]:
    return [_SURROGATE_PAIR_UNITS if ord(c) > _LAST_BMP_CODE_POINT else _BMP_UNITS for c in body]


def _pack(widths: Iterable[int], capacity: int) -> int:
    """Segments needed when each character (of `width` units) must sit whole in one."""
    segments, used = 1, 0
    for width in widths:
        if used + width > capacity:
            segments += 1
            used = 0
        used += width
    return segments


def count_segments(body: str) -> SegmentInfo:
    """The encoding, units and segment count of `body`. An empty body is 0 segments: it
    cannot be sent, so it costs nothing."""
    widths = _gsm_septets(body)
    if widths is not None:
        encoding, single, concat = (
            Encoding.GSM7,
            GSM_SINGLE_SEGMENT_SEPTETS,
            GSM_CONCAT_SEGMENT_SEPTETS,
        )
    else:
        widths = _utf16_units(body)
        encoding, single, concat = (
            Encoding.UCS2,
            UCS2_SINGLE_SEGMENT_UNITS,
            UCS2_CONCAT_SEGMENT_UNITS,
        )
    units = sum(widths)
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = _pack(widths, concat)
    return SegmentInfo(encoding=encoding, units=units, segments=segments)


def estimate_cost(segments: int, price_per_segment: Decimal) -> Decimal:
    """What `segments` cost at `price_per_segment`. Decimal only: money is never a float."""
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 0:
        raise ValueError(f"segments must be an integer >= 0, got {segments!r}")
    if not isinstance(price_per_segment, Decimal) or not price_per_segment.is_finite():
        raise TypeError(f"price_per_segment must be a finite Decimal, got {price_per_segment!r}")
    if price_per_segment < 0:
        raise ValueError(f"price_per_segment must be >= 0, got {price_per_segment}")
    return price_per_segment * segments
