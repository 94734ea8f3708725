"""US serial formats, as a soft prior for decoding: `L` a letter, `D` a digit, anything else itself.

Derived from the per-state formats of patrik-csak/license-plate-serial-generator (MIT; the regular
expressions in its `states/*/*.test.ts`, as of 2019) with separators dropped, plus formats that
`shared/reference/US_PLATE_DESIGNS.md` describes from the states' specimen plates (New York City
taxis `T123456C` and `Y123456C`, California commercial `1A23456`, New York specialty `234ABC`).
Vanity and specialty plates follow none of these, which is why this is a prior that rescores
candidates, never a filter.
"""

import re
from functools import cache
from typing import Final

__all__ = ["FORMATS", "fixed_characters", "matches_format"]

FORMATS: Final[tuple[str, ...]] = (
    "DLLLDDD",  # California 1ABC234 (the most common plate on US roads)
    "DLDDDDD",  # California commercial 1A23456
    "LLLDDDD",  # NY, TX, PA, NC, VA, WI, OH, GA, AZ, WA, MS, MI (ABC-1234 and ABC1234)
    "LLDDDD",  # Michigan AB 1234, Washington DC AB-1234
    "LDDDD",  # Michigan A 1234
    "LLLDDD",  # TN, MN, VT, IA, HI, AK, SC (ABC 123)
    "LLDDD",  # South Carolina, Oklahoma
    "LDDD",
    "DDDLLL",  # OR, ND, LA, KY, AR, KS, IN, NM, NY specialty (123 ABC)
    "DDDLL",
    "DDDL",
    "LLDDDDD",  # Illinois AB 12345
    "LDDDLL",  # Florida A12 3BC
    "LDDLLL",  # New Jersey A12-BCD
    "DLLDDDD",  # Maryland, Alabama 1AB2345
    "DDLLDDD",  # Alabama 12AB345
    "DLLLDD",  # Massachusetts 1ABC23
    "DDDLDD",  # Nevada 123-A45
    "LLLLDD",  # Colorado ABC-D12
    "LLDLDL",  # Missouri AB1 C2D
    "DLDDDD",  # South Dakota 1A 234
    "DLLDDD",
    "DDLDDD",
    "DDDDDDD",  # New Hampshire 123 4567
    "DDDDDL",  # Montana 1-2345A
    "DDDDDDL",
    "DDDDDDDL",
    "DDDDDD",  # Wyoming 1-23456, Delaware
    "DDDDDDD",
    "DLL",  # Maine 1 AB .. 1234 AB
    "DDLL",
    "DDDDLL",
    "DDDDDLL",  # New York commercial 12345-MA
    "TDDDDDDC",  # New York City taxi (TLC) T123456C
    "YDDDDDDC",  # its yellow medallion taxis, reportedly Y123456C (US_PLATE_DESIGNS.md)
)


def _regex(template: str) -> str:
    return "".join({"L": "[A-Z]", "D": "[0-9O]"}.get(c, re.escape(c)) for c in template)


def _fixes(template: str) -> int:
    return sum(c not in "LD" for c in template)


@cache
def _pattern() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_regex(t)})" for t in sorted(set(FORMATS))))


@cache
def _fixing() -> tuple[tuple[re.Pattern[str], int], ...]:
    # Only the formats that fix characters (a taxi's T and C), each with how many it fixes.
    return tuple((re.compile(_regex(t)), _fixes(t)) for t in sorted(set(FORMATS)) if _fixes(t))


def matches_format(text: str) -> bool:
    """Whether `text` (0-9A-Z, no separators) has the shape of a known US serial format."""
    return _pattern().fullmatch(text) is not None


def fixed_characters(text: str) -> int:
    """How many of `text`'s characters the most specific format it has the shape of fixes (0
    where none fixes any)."""
    return max((n for pattern, n in _fixing() if pattern.fullmatch(text)), default=0)
