"""The standard passenger plates of the most populous US states (and NYC's T&LC plates), as data.

Facts come from `../shared/reference/US_PLATE_DESIGNS.md` (what each state's specimen plates look
like) and the per-state serial formats of patrik-csak/license-plate-serial-generator (MIT,
github.com/patrik-csak/license-plate-serial-generator @ c3b38a4, licence in
LICENSE-us-plate-serials.txt beside this module): the formats and the letters a
state skips are taken from it; its issued ranges (2019) are too narrow for plates on the road
(California never forces replacement), so serials are drawn across the whole format instead.

Design weights follow registered vehicles per state (millions, roughly), split between the
designs still on the road; the renderer keeps a share of generic plates for every other state
and specialty issue (see synth_render).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.synth_decor import Color
from training.synth_text import PlateText, random_plate_text

__all__ = ["DESIGNS", "Art", "Legend", "PlateDesign", "pick_design", "state_serial"]


def hexbgr(code: str) -> Color:
    """Hex "#rrggbb" (as the reference samples colours) to the BGR the renderer paints in."""
    r, g, b = (int(code[i : i + 2], 16) for i in (1, 3, 5))
    return (float(b), float(g), float(r))


@dataclass(frozen=True)
class Legend:
    """Unlabelled printed words: a state name, a slogan, a web address (one picked per plate)."""

    words: tuple[str, ...]
    color: Color
    where: str = "top"  # top | bottom, then optional -left / -right
    size: float = 0.16  # text height as a fraction of plate height
    italic: bool = False


@dataclass(frozen=True)
class Art:
    """One picture layer painted before the serial (kinds: see synth_art.paint)."""

    kind: str
    colors: tuple[Color, ...] = ()
    a: float = 0.0
    b: float = 1.0


@dataclass(frozen=True)
class PlateDesign:
    """What one state's plate looks like and which serials it carries."""

    name: str
    weight: float
    background: Color
    serial: Color
    formats: tuple[tuple[str, float], ...]
    separator: str = "none"  # none | dash | space | outline | keystone | tristar | oranges | tx
    embossed: float = 0.8  # probability the serial is stamped (relief) rather than flat
    wh: float = 0.43  # character width / cap height on the state's die
    m_depth: float = 0.63  # how far down the M's V reaches (fraction of cap height)
    open_four: bool = False
    slab_i: bool = False
    one_base: bool = True  # the flagged 1 has a foot
    stadium_zero: bool = True
    round_o: bool = True  # O drawn rounder than 0 (False: 0 and O look the same, as in MI)
    skip: str = ""  # letters the state does not issue
    legends: tuple[Legend, ...] = ()
    art: tuple[Art, ...] = ()
    stickers: tuple[str, ...] = ()  # tl, tr, bl, br
    cap: float = 0.43  # serial cap height as a fraction of plate height
    yc: float = 0.52  # vertical centre of the serial
    state: str = field(default="", compare=False)

    @property
    def state_code(self) -> str:
        return self.state or self.name.split("-")[0]


NAVY, WHITE, BLACK = hexbgr("#172756"), hexbgr("#f4f4f2"), hexbgr("#1e1e1e")
RED, GOLD, MAIZE = hexbgr("#c8202a"), hexbgr("#d9a521"), hexbgr("#f0b919")
SKY, PEACH = hexbgr("#b9dcf2"), hexbgr("#f6c9a0")
NY_TAXI = (("TNNNNNNC", 90.0), ("YNNNNNNC", 10.0))
_ABC_1234 = (("LLL-NNNN", 92.0), ("VANITY", 8.0))
_ABC1234 = (("LLLNNNN", 92.0), ("VANITY", 8.0))
_ABC_S_1234 = (("LLL NNNN", 92.0), ("VANITY", 8.0))
_CA = (("#LLLNNN", 86.0), ("#LNNNNN", 6.0), ("VANITY", 8.0))
_CA_OLD = (("NNN LLL", 45.0), ("LLL NNN", 45.0), ("VANITY", 10.0))
_CA_LEGENDS = (Legend(("DMV.CA.GOV", "dmv.ca.gov"), hexbgr("#c8202a"), "bottom", 0.09),)
_CA_DIE = {"open_four": True, "wh": 0.44, "m_depth": 0.63}


def _ca(name: str, weight: float, **kw: object) -> PlateDesign:
    return PlateDesign(name, weight, state="CA", **{**_CA_DIE, **kw})  # type: ignore[arg-type]


# fmt: off
DESIGNS: tuple[PlateDesign, ...] = (
    # California: the red-script plate (1993-) and the older ones CA never forces off the road.
    _ca("CA-script", 19.0, background=WHITE, serial=hexbgr("#2a3580"), formats=_CA,
        legends=(Legend(("California",), hexbgr("#c8202a"), "top", 0.2, True), *_CA_LEGENDS),
        stickers=("tl", "tr")),
    _ca("CA-block", 3.0, background=WHITE, serial=hexbgr("#2a3580"), formats=_CA,
        legends=(Legend(("CALIFORNIA",), hexbgr("#c8202a"), "top", 0.17),), stickers=("tl", "tr")),
    _ca("CA-sunset", 3.0, background=hexbgr("#f4ecd8"), serial=hexbgr("#2a3580"), formats=_CA,
        legends=(Legend(("CALIFORNIA",), hexbgr("#c8202a"), "top", 0.17),
                 Legend(("The Golden State",), hexbgr("#c8202a"), "bottom", 0.1, True)),
        art=(Art("sun", (hexbgr("#f39a2b"), hexbgr("#d8402a")), 0.02, 0.13),),
        stickers=("tl", "tr")),
    _ca("CA-legacy-black", 2.5, background=hexbgr("#151515"), serial=hexbgr("#f2c318"),
        formats=(*_CA_OLD, ("#LLLNNN", 60.0)), embossed=0.95,
        legends=(Legend(("CALIFORNIA",), hexbgr("#f2c318"), "top", 0.14),)),
    _ca("CA-legacy-blue", 2.5, background=hexbgr("#1d3b8c"), serial=hexbgr("#f2c318"),
        formats=(*_CA_OLD, ("#LLLNNN", 60.0)), embossed=0.95,
        legends=(Legend(("CALIFORNIA",), hexbgr("#f2c318"), "top", 0.14),)),
    PlateDesign("TX", 22.0, hexbgr("#eef0f2"), BLACK, _ABC_1234, "tx", 0.6, 0.38, 0.65,
                legends=(Legend(("TEXAS",), BLACK, "top", 0.18),
                         Legend(("The Lone Star State",), BLACK, "bottom", 0.12)),
                art=(Art("guilloche", (hexbgr("#c9ced6"),)), Art("star", (BLACK,), 0.16),
                     Art("barcode", (BLACK,))), cap=0.45),
    PlateDesign("FL", 18.0, WHITE, hexbgr("#0b4e31"), (("LNN NLL", 50.0), ("LLL LNN", 42.0),
                ("VANITY", 8.0)), "oranges", 0.85, 0.42, 0.66,
                legends=(Legend(("MYFLORIDA.COM",), hexbgr("#0b4e31"), "top", 0.15),
                         Legend(("SUNSHINE STATE", "IN GOD WE TRUST", "MIAMI-DADE COUNTY",
                                 "ORANGE COUNTY", "BROWARD COUNTY"), hexbgr("#0b4e31"), "bottom",
                                0.11)),
                art=(Art("blob", (hexbgr("#cfe8cf"),)),), stickers=("tr",)),
    PlateDesign("NY-excelsior", 3.5, WHITE, hexbgr("#08286a"), _ABC_1234, "outline", 0.95, 0.35,
                0.71, one_base=False,
                legends=(Legend(("NEW YORK",), hexbgr("#08286a"), "top", 0.15),
                         Legend(("EXCELSIOR",), GOLD, "bottom", 0.13)),
                art=(Art("rule", (GOLD,), 0.05, 0.02), Art("rule", (GOLD,), 0.22, 0.02),
                     Art("skyline", (hexbgr("#7fa7c9"),), 0.82, 0.15)), cap=0.47, yc=0.54),
    PlateDesign("NY-gold", 5.0, hexbgr("#f0c43c"), hexbgr("#0c2a6a"), _ABC_1234, "dash", 0.95,
                0.35, 0.38, one_base=False,
                legends=(Legend(("NEW YORK",), hexbgr("#0c2a6a"), "top", 0.16),
                         Legend(("EMPIRE STATE",), hexbgr("#0c2a6a"), "bottom", 0.14)),
                cap=0.48, yc=0.55),
    PlateDesign("NY-skyline", 2.0, WHITE, hexbgr("#1d3f8f"), _ABC_1234, "dash", 0.95, 0.35, 0.5,
                one_base=False,
                legends=(Legend(("NEW YORK",), hexbgr("#c8202a"), "top", 0.13),
                         Legend(("THE EMPIRE STATE",), hexbgr("#1d3f8f"), "bottom", 0.11)),
                art=(Art("skyline", (hexbgr("#9fc3e6"),), 0.0, 0.28),), cap=0.46, yc=0.56),
    # Commercial plates (vans, trucks, NYC's delivery fleets): the Empire Gold base with a navy
    # band holding a gold "NEW YORK", five digits, the state outline, then two letters.
    PlateDesign("NY-commercial", 2.0, hexbgr("#f0c43c"), hexbgr("#14182a"),
                (("NNNNN-LL", 100.0),), "outline", 0.95, 0.35, 0.3, one_base=False, state="NY",
                legends=(Legend(("NEW YORK",), GOLD, "top", 0.15),
                         Legend(("COMMERCIAL",), hexbgr("#14182a"), "bottom", 0.11)),
                art=(Art("band", (hexbgr("#14182a"),), 0.0, 0.19),), cap=0.48, yc=0.55),
    PlateDesign("NYC-tlc", 4.0, hexbgr("#f0c43c"), hexbgr("#0c2a6a"), NY_TAXI, "none", 0.95,
                0.33, 0.38, one_base=False, state="NY",
                legends=(Legend(("NEW YORK",), hexbgr("#0c2a6a"), "top", 0.16),
                         Legend(("T&LC",), hexbgr("#0c2a6a"), "bottom", 0.15)), cap=0.46, yc=0.55),
    PlateDesign("PA", 10.0, WHITE, hexbgr("#0a416d"), _ABC_1234, "keystone", 0.7, 0.42, 0.6,
                one_base=False,
                legends=(Legend(("PENNSYLVANIA",), WHITE, "top", 0.13),
                         Legend(("visitPA.com", "www.visitPA.com"), hexbgr("#0a416d"), "bottom",
                                0.12)),
                art=(Art("band", (hexbgr("#0a2f5c"),), 0.0, 0.18),
                     Art("band", (hexbgr("#f2c230"),), 0.82, 1.0)), cap=0.44),
    PlateDesign("IL", 7.0, WHITE, hexbgr("#9d1422"), (("LL NNNNN", 90.0), ("VANITY", 10.0)),
                "space", 0.7, 0.43, 0.6, slab_i=True, one_base=False,
                legends=(Legend(("ILLINOIS",), BLACK, "top", 0.14),
                         Legend(("LAND OF LINCOLN",), BLACK, "bottom", 0.11)),
                art=(Art("grad", (SKY, WHITE), 0.0, 0.35), Art("portrait", (hexbgr("#9a9a9a"),)),
                     Art("skyline", (hexbgr("#dfe3e8"),), 0.2, 0.6)), stickers=("tr",)),
    PlateDesign("IL-old", 3.0, WHITE, hexbgr("#b8202a"), (("LL NNNNN", 80.0), ("NNNNNNN", 10.0),
                ("VANITY", 10.0)), "space", 0.8, 0.43, 0.6, slab_i=True, one_base=False,
                legends=(Legend(("Illinois",), hexbgr("#1d3f8f"), "top", 0.18, True),
                         Legend(("Land of Lincoln",), hexbgr("#1d3f8f"), "bottom", 0.11)),
                art=(Art("grad", (WHITE, SKY), 0.65, 1.0),), stickers=("tr",)),
    PlateDesign("OH", 10.0, WHITE, hexbgr("#2b3d7d"), _ABC_S_1234, "space", 0.15, 0.36, 0.6,
                legends=(Legend(("OHIO",), hexbgr("#c8202a"), "top", 0.15),
                         Legend(("BIRTHPLACE OF AVIATION", "FRANKLIN", "CUYAHOGA", "HAMILTON"),
                                hexbgr("#2b3d7d"), "bottom", 0.1)),
                art=(Art("grad", (SKY, WHITE), 0.0, 0.4), Art("border", (hexbgr("#c8202a"),)),
                     Art("hills", (hexbgr("#9cc98a"),), 0.9, 0.06)), cap=0.45),
    PlateDesign("GA", 8.0, SKY, hexbgr("#211f1d"), _ABC1234, "none", 0.1, 0.43, 0.6,
                legends=(Legend(("GEORGIA",), BLACK, "top-right", 0.14),
                         Legend(("FULTON", "GWINNETT", "COBB", "DEKALB", "CHATTAHOOCHEE"), BLACK,
                                "bottom", 0.1)),
                art=(Art("grad", (SKY, PEACH), 0.0, 0.8), Art("hills", (hexbgr("#6f9f4f"),),
                     0.88, 0.08), Art("tree", (hexbgr("#f3a6b5"), hexbgr("#f08a3c"))),
                     Art("panel", (WHITE,), 0.83, 0.98)), stickers=("br",)),
    PlateDesign("NC", 9.0, WHITE, hexbgr("#0536a8"), _ABC_1234, "dash", 0.85, 0.41, 0.6,
                legends=(Legend(("First in Flight", "First in Freedom"), hexbgr("#c8202a"), "top",
                                0.14),
                         Legend(("NORTH CAROLINA",), hexbgr("#c8202a"), "bottom", 0.12)),
                art=(Art("grass", (hexbgr("#a9c8e8"),)),)),
    PlateDesign("MI", 6.0, WHITE, hexbgr("#5775b3"), _ABC_S_1234, "space", 0.85, 0.40, 0.66,
                round_o=False,
                legends=(Legend(("PURE MICHIGAN",), hexbgr("#5775b3"), "top", 0.12),
                         Legend(("michigan.org",), WHITE, "bottom", 0.1)),
                art=(Art("waves", (hexbgr("#5775b3"),), 0.85, 0.06),), stickers=("tr",), yc=0.48),
    PlateDesign("MI-bridge", 1.0, hexbgr("#f5c26b"), BLACK, _ABC_S_1234, "space", 0.1, 0.40,
                0.66, round_o=False,
                legends=(Legend(("THE MACKINAC BRIDGE",), BLACK, "bottom", 0.09),),
                art=(Art("grad", (hexbgr("#f7e08a"), hexbgr("#f08a3c")), 0.0, 0.8),
                     Art("bridge", (BLACK, hexbgr("#3a6fb0")))), stickers=("tr",)),
    PlateDesign("MI-wwl", 1.0, hexbgr("#14213f"), MAIZE, _ABC_S_1234, "space", 0.9, 0.40, 0.66,
                round_o=False,
                legends=(Legend(("MICHIGAN",), MAIZE, "top", 0.13),
                         Legend(("WATER-WINTER WONDERLAND",), MAIZE, "bottom", 0.1)),
                stickers=("br",)),
    PlateDesign("NJ", 6.0, hexbgr("#fee967"), hexbgr("#211d1f"), (("LNN-LLL", 92.0),
                ("VANITY", 8.0)), "outline", 0.8, 0.43, 0.68, skip="IOQ",
                legends=(Legend(("New Jersey",), BLACK, "top", 0.16),
                         Legend(("Garden State",), BLACK, "bottom", 0.13)),
                art=(Art("grad", (hexbgr("#fee967"), hexbgr("#fef7ce")), 0.0, 1.0),)),
    PlateDesign("VA", 7.0, WHITE, hexbgr("#253e80"), _ABC_1234, "dash", 0.9, 0.43, 0.97,
                legends=(Legend(("VIRGINIA",), hexbgr("#253e80"), "top", 0.14),
                         Legend(("VIRGINIA IS FOR LOVERS", "Virginia.org"), hexbgr("#4a4a4a"),
                                "bottom", 0.1)), stickers=("tl", "tr")),
    PlateDesign("WA", 7.0, WHITE, BLACK, _ABC1234, "none", 0.5, 0.42, 0.58,
                legends=(Legend(("WASHINGTON",), hexbgr("#c8202a"), "top-left", 0.13),
                         Legend(("EVERGREEN STATE",), hexbgr("#c8202a"), "bottom", 0.11)),
                art=(Art("mountain", (hexbgr("#c5dcef"),), 0.5, 0.12),), stickers=("tr",)),
    PlateDesign("AZ", 6.0, WHITE, hexbgr("#253438"), _ABC1234, "none", 0.4, 0.40, 0.6,
                legends=(Legend(("ARIZONA",), hexbgr("#0c8a8f"), "top", 0.14),
                         Legend(("GRAND CANYON STATE",), hexbgr("#0c8a8f"), "bottom-right", 0.1)),
                art=(Art("grad", (WHITE, hexbgr("#f5b98a")), 0.35, 1.0),
                     Art("hills", (hexbgr("#7a4f8f"),), 0.82, 0.12)), stickers=("tr",)),
    PlateDesign("TN", 6.0, NAVY, WHITE, (("LLL NNNN", 60.0), ("LLL-NNN", 32.0),
                ("VANITY", 8.0)), "tristar", 0.1, 0.40, 0.6,
                legends=(Legend(("TENNESSEE",), WHITE, "top", 0.13),
                         Legend(("TNVACATION.COM",), WHITE, "bottom", 0.1)),
                art=(Art("border", (WHITE,)),), stickers=("tr",)),
    PlateDesign("MA", 5.0, hexbgr("#f2f2f0"), hexbgr("#880807"), (("#LLL NN", 55.0),
                ("NNNLLL", 25.0), ("NLLNNN", 12.0), ("VANITY", 8.0)), "none", 0.9, 0.49, 0.6,
                slab_i=True, skip="IOQU",
                legends=(Legend(("Massachusetts",), hexbgr("#1d3f8f"), "top", 0.17, True),
                         Legend(("The Spirit of America",), hexbgr("#1d3f8f"), "bottom", 0.11,
                                True)), stickers=("tl", "tr")),
    PlateDesign("IN", 6.0, WHITE, hexbgr("#323776"), (("NNNL", 15.0), ("NNNLL", 30.0),
                ("NNNLLL", 47.0), ("VANITY", 8.0)), "none", 0.1, 0.45, 0.6,
                legends=(Legend(("INDIANA",), hexbgr("#323776"), "top", 0.14),),
                art=(Art("grad", (SKY, WHITE), 0.0, 0.35), Art("hills", (hexbgr("#4f8f4a"),),
                     0.88, 0.08), Art("countybox", (hexbgr("#323776"),))), cap=0.44),
    PlateDesign("MO", 5.0, WHITE, hexbgr("#1d2f6f"), (("LLN LNL", 92.0), ("VANITY", 8.0)),
                "space", 0.6, 0.42, 0.6,
                legends=(Legend(("MISSOURI", "Missouri"), hexbgr("#1d2f6f"), "top", 0.15),
                         Legend(("SHOW-ME STATE", "1821 2021"), hexbgr("#1d2f6f"), "bottom",
                                0.09)),
                art=(Art("waves", (hexbgr("#c8202a"), hexbgr("#1d2f6f")), 0.05, 0.04),
                     Art("seal", (hexbgr("#e3e3e3"),))), stickers=("bl", "br")),
    PlateDesign("MD", 4.0, WHITE, BLACK, (("#LLNNNN", 92.0), ("VANITY", 8.0)), "none", 0.9,
                0.40, 0.6,
                legends=(Legend(("Maryland",), BLACK, "top", 0.17, True),
                         Legend(("maryland.gov", "Chesapeake Bay", "War of 1812"), BLACK,
                                "bottom", 0.1, True)), stickers=("tr",)),
    PlateDesign("WI", 5.0, WHITE, BLACK, _ABC_1234, "dash", 0.7, 0.50, 0.75, one_base=False,
                legends=(Legend(("WISCONSIN",), hexbgr("#bb1d49"), "top-left", 0.14, True),
                         Legend(("America's Dairyland",), hexbgr("#bb1d49"), "bottom", 0.12,
                                True)),
                art=(Art("rule", (hexbgr("#2a5db0"),), 0.2, 0.012),
                     Art("barn", (hexbgr("#f39a2b"), hexbgr("#6f9f4f"), hexbgr("#b02a2a")))),
                stickers=("tr",)),
)
# fmt: on
_P = np.array([d.weight for d in DESIGNS])
_P /= _P.sum()


def pick_design(rng: np.random.Generator) -> PlateDesign:
    """A state design, drawn by how common its plates are on US roads."""
    return DESIGNS[int(rng.choice(len(DESIGNS), p=_P))]


def state_serial(rng: np.random.Generator, design: PlateDesign) -> tuple[PlateText, str]:
    """A serial in one of the design's formats and the break drawn between its groups.

    Pattern letters: L letter (not one the state skips), N digit, # digit 1-9; "-" is the
    state's separator, " " a plain space; anything else is literal. VANITY: a vanity plate.
    """
    formats = design.formats
    p = np.array([w for _, w in formats])
    pattern = formats[int(rng.choice(len(formats), p=p / p.sum()))][0]
    brk = "gap" if " " in pattern or design.separator in ("none", "space") else design.separator
    text = random_plate_text(rng, pattern=pattern.replace(" ", "-"), skip=design.skip)
    if pattern == "VANITY":
        brk = "gap"
    return text, brk
