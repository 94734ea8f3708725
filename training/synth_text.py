"""Plate texts for the generator: class names, state-like serial formats, distractor words.

Formats follow common USA issues so that the detector sees realistic character mixes and group
layouts; the exact state does not matter, only the shapes of the strings and their separators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Class ids: 0-9 are the digits, 10-35 the letters, exactly as the reader expects.
CLASS_NAMES: tuple[str, ...] = tuple(DIGITS + LETTERS)
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASS_NAMES)}

# Many states skip I, O, Q (and some U) in serials; they still appear on vanity plates, so they
# are drawn less often rather than never.
_LETTER_WEIGHTS = np.array([0.25 if c in "IOQU" else 1.0 for c in LETTERS])
_LETTER_WEIGHTS /= _LETTER_WEIGHTS.sum()

# Pattern letters: L = letter, N = digit, X = either; other characters are literal.
# "-" marks a group break whose look (dash, gap, emblem) the renderer picks.
_FORMATS: tuple[tuple[str, float], ...] = (
    ("LLL-NNNN", 14.0),  # NY, PA, MI ...
    ("NLLLNNN", 8.0),  # California
    ("NNN-LLL", 8.0),
    ("LLL-NNN", 8.0),
    ("NNNNN-LL", 5.0),  # NY commercial
    ("TNNNNNNC", 7.0),  # NYC taxi (yellow)
    ("LNN-LLL", 5.0),  # New Jersey
    ("NNN-NNN", 3.0),
    ("LL-NNNNN", 3.0),
    ("NLL-NNNN", 3.0),
    ("LLL-NNNL", 2.0),
    ("NNNN-LL", 3.0),
    ("NN-LLL-N", 2.0),
    ("LNNNNN", 2.0),
    ("NLLNNN", 2.0),
    ("VANITY", 6.0),
)
_FORMAT_P = np.array([w for _, w in _FORMATS])
_FORMAT_P /= _FORMAT_P.sum()

# New York issues dominate the real crops (passenger, commercial, NYC taxi / livery), so the
# NY-styled plates draw from NY's own formats. "Y" also prefixes some yellow-cab medallions.
_NY_FORMATS: tuple[tuple[str, float], ...] = (
    ("LLL-NNNN", 50.0),
    ("TNNNNNNC", 25.0),
    ("YNNNNNNC", 3.0),
    ("NNNNN-LL", 10.0),
    ("LL-NNNNN", 3.0),
    ("VANITY", 9.0),
)
_NY_P = np.array([w for _, w in _NY_FORMATS])
_NY_P /= _NY_P.sum()

STATE_NAMES: tuple[str, ...] = (
    "NEW YORK",
    "New York",
    "NEW JERSEY",
    "New Jersey",
    "Connecticut",
    "PENNSYLVANIA",
    "California",
    "TEXAS",
    "Florida",
    "OHIO",
    "ILLINOIS",
    "Massachusetts",
    "MICHIGAN",
    "Virginia",
    "NORTH CAROLINA",
    "Georgia",
    "ARIZONA",
    "Colorado",
    "Maryland",
    "WASHINGTON",
    "Oregon",
    "NEVADA",
    "Utah",
    "IDAHO",
    "Montana",
    "Kentucky",
    "INDIANA",
    "Tennessee",
    "ALABAMA",
    "Louisiana",
    "Minnesota",
    "WISCONSIN",
    "IOWA",
    "Missouri",
    "Vermont",
    "MAINE",
)
SLOGANS: tuple[str, ...] = (
    "EMPIRE STATE",
    "Garden State",
    "Constitution State",
    "Sunshine State",
    "THE LONE STAR STATE",
    "Land of Lincoln",
    "First in Flight",
    "visitPA.com",
    "Great Lakes",
    "Live Free or Die",
    "COMMERCIAL",
    "TAXI",
    "Excelsior",
    "Wild, Wonderful",
    "Famous Potatoes",
    "Centennial",
    "dmv.ca.gov",
    "Greatest Snow on Earth",
    "Pure Michigan",
    "Spirit of America",
    "Green Mountain State",
    "The Volunteer State",
    "Heart of Dixie",
    "Virginia is for Lovers",
)
DEALER_WORDS: tuple[str, ...] = (
    "NISSAN OF MEADOWLANDS",
    "HONDA CITY",
    "TOYOTA OF QUEENS",
    "FORD",
    "AUTONATION",
    "BAY RIDGE CHEVROLET",
    "CARMAX",
    "PROUD GRANDPARENT",
    "I LOVE MY DOG",
    "BMW OF MANHATTAN",
    "SUBARU",
    "KIA MOTORS",
    "METRO AUTO",
    "HYUNDAI",
    "GO YANKEES",
    "BROOKLYN",
)
# Small stacked prefixes/suffixes that the labels leave out ("DP", dealer, MTA, fire fighter).
SMALL_STACKS: tuple[str, ...] = (
    "DP",
    "DLR",
    "MTA",
    "VF",
    "TLC",
    "NY",
    "PA",
    "JR",
    "MC",
    "FIRE",
    "59",
    "24",
    "HP",
    "MV",
)


@dataclass(frozen=True)
class PlateText:
    """A plate's labelled characters split into groups with a break between consecutive ones."""

    groups: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.groups)


def _letter(rng: np.random.Generator, skip: str = "") -> str:
    if not skip:
        return str(LETTERS[int(rng.choice(len(LETTERS), p=_LETTER_WEIGHTS))])
    p = np.where([c in skip for c in LETTERS], 0.0, _LETTER_WEIGHTS)
    return str(LETTERS[int(rng.choice(len(LETTERS), p=p / p.sum()))])


def _digit(rng: np.random.Generator) -> str:
    return str(DIGITS[int(rng.integers(10))])


def _vanity(rng: np.random.Generator) -> PlateText:
    # Vanity plates: 2-7 characters, mostly letters, sometimes split in two groups.
    n = int(rng.integers(2, 8))
    chars = "".join(_letter(rng) if rng.random() < 0.75 else _digit(rng) for _ in range(n))
    if n >= 4 and rng.random() < 0.3:
        cut = int(rng.integers(1, n))
        return PlateText((chars[:cut], chars[cut:]))
    return PlateText((chars,))


def random_plate_text(
    rng: np.random.Generator, style: str = "any", *, pattern: str | None = None, skip: str = ""
) -> PlateText:
    """Draw a serial in a state-like format ("ny" style: New York's own formats), or in the
    given pattern: L a letter (none of `skip`), N a digit, # a digit 1-9, "-" a group break,
    anything else literal; "VANITY" draws a vanity plate."""
    if pattern is None:
        formats, p = (_NY_FORMATS, _NY_P) if style == "ny" else (_FORMATS, _FORMAT_P)
        pattern = formats[int(rng.choice(len(formats), p=p))][0]
    if pattern == "VANITY":
        return _vanity(rng)
    groups: list[str] = []
    for part in pattern.split("-"):
        out = []
        for sym in part:
            if sym == "L":
                out.append(_letter(rng, skip))
            elif sym == "N":
                out.append(_digit(rng))
            elif sym == "#":
                out.append(str(int(rng.integers(1, 10))))
            else:
                out.append(sym)
        groups.append("".join(out))
    return PlateText(tuple(groups))
