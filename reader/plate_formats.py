"""US serial formats, as a soft prior for decoding: `L` a letter, `D` a digit, anything else itself.

Derived from the per-state formats of patrik-csak/license-plate-serial-generator (MIT; the regular
expressions in its `states/*/*.test.ts`, as of 2019) with separators dropped, plus formats that
`shared/reference/US_PLATE_DESIGNS.md` describes from the states' specimen plates (New York City
taxis `T123456C`, California commercial `1A23456`, New York specialty `234ABC`). Vanity and
specialty plates follow none of these, which is why this is a prior that rescores candidates,
never a filter.
"""

import re
from functools import cache
from typing import Final

__all__ = ["FORMATS", "matches_format"]

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
)


@cache
def _pattern() -> re.Pattern[str]:
    def one(template: str) -> str:
        return "".join({"L": "[A-Z]", "D": "[0-9O]"}.get(c, re.escape(c)) for c in template)

    return re.compile("|".join(f"(?:{one(t)})" for t in sorted(set(FORMATS))))


def matches_format(text: str) -> bool:
    """Whether `text` (0-9A-Z, no separators) has the shape of a known US serial format."""
    return _pattern().fullmatch(text) is not None
