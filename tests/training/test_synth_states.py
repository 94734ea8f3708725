"""State plate designs: every design renders with exact labels, serials follow the state's
formats, and the plate-die glyphs (open 4, slab I, flagged 1, narrow 0) are what they claim."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("cv2")

import cv2

from training.synth import render_plate
from training.synth_render import render_flat
from training.synth_states import DESIGNS, PlateDesign, pick_design, state_serial

_BY_NAME = {d.name: d for d in DESIGNS}


def _holes(mask: np.ndarray) -> int:
    """Enclosed counters in a glyph mask (a closed 4 has one, an open 4 none)."""
    binary = (mask > 127).astype(np.uint8)
    binary = np.pad(binary, 2)
    _, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return 0 if hierarchy is None else int((hierarchy[0][:, 3] >= 0).sum())


def _regex(pattern: str, skip: str) -> re.Pattern[str]:
    letters = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in skip)
    table = {"L": f"[{letters}]", "N": "[0-9]", "#": "[1-9]", "-": "", " ": ""}
    return re.compile("".join(table.get(c, re.escape(c)) for c in pattern) + "$")


def test_designs_cover_the_fifteen_most_populous_states_and_nyc_taxis() -> None:
    states = {d.state_code for d in DESIGNS}
    top15 = {"CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ"}
    assert top15 | {"TN", "MA"} <= states
    assert "NYC-tlc" in _BY_NAME
    weight = Counter[str]()
    for d in DESIGNS:
        weight[d.state_code] += d.weight
    assert weight.most_common(1)[0][0] == "CA"  # the most common plate on US roads
    picked = Counter(pick_design(np.random.default_rng([0, i])).state_code for i in range(600))
    assert picked.most_common(1)[0][0] == "CA"


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
def test_every_design_renders_with_labels_only_on_its_serial(design: PlateDesign) -> None:
    for i in range(6):
        flat = render_flat(np.random.default_rng([21, i]), design)
        assert flat.design == design.name
        h, w = flat.index_map.shape
        assert flat.image.shape == (h, w, 3)
        labelled = flat.index_map > 0
        # each character has ink, and nothing else (legends, pictures, marks) carries a label
        assert set(np.unique(flat.index_map[labelled]).tolist()) == set(
            range(1, len(flat.text) + 1)
        )
        ys, _ = np.nonzero(labelled)
        assert ys.max() - ys.min() <= 0.65 * h
        img, text, boxes = render_plate(np.random.default_rng([22, i]), design)
        assert [b[0] for b in boxes] == list(text)
        ih, iw = img.shape[:2]
        for _, x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= iw and 0 <= y1 < y2 <= ih
        centres = [(b[1] + b[3]) / 2 for b in boxes]
        assert centres == sorted(centres)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
def test_serials_follow_the_state_formats_and_skip_its_letters(design: PlateDesign) -> None:
    regexes = [_regex(p, design.skip) for p, _ in design.formats if p != "VANITY"]
    vanity = any(p == "VANITY" for p, _ in design.formats)
    matched = 0
    for i in range(200):
        text, brk = state_serial(np.random.default_rng([9, i]), design)
        if any(r.match(text.text) for r in regexes):
            matched += 1
        else:
            assert vanity and 2 <= len(text.text) <= 7, text
        assert brk in {"gap", "dash", "outline", "keystone", "tristar", "oranges", "tx"}
    assert matched >= 150


def test_state_serials_look_like_the_states() -> None:
    rng = np.random.default_rng(3)
    ca = [state_serial(rng, _BY_NAME["CA-script"])[0].text for _ in range(100)]
    assert sum(bool(re.fullmatch(r"[1-9][A-Z]{3}[0-9]{3}", t)) for t in ca) >= 75
    nj = [state_serial(rng, _BY_NAME["NJ"])[0] for _ in range(100)]
    assert all(not set("IOQ") & set(t.text) for t in nj if len(t.groups) == 2)
    taxi = [state_serial(rng, _BY_NAME["NYC-tlc"])[0].text for _ in range(50)]
    assert all(re.fullmatch(r"[TY][0-9]{6}C", t) for t in taxi)
    tx = state_serial(np.random.default_rng(1), _BY_NAME["TX"])
    assert tx[1] in {"tx", "gap"}


def test_open_four_differs_from_a_closed_four_in_its_pixels() -> None:
    from training.synth_dies import open_four
    from training.synth_fonts import glyph_mask, plate_fonts

    fonts = plate_fonts()[0]
    four = open_four(14, 0.5, 0.25)
    assert _holes(four) == 0  # no enclosed counter: the top is open
    h, w = four.shape
    stem_cols = four[int(h * 0.8)] > 127  # below the bar only the stem has ink
    stem_x = np.nonzero(stem_cols)[0]
    assert stem_x.min() > w / 2  # the stem stands right of centre
    assert not (four[: int(h * 0.2), stem_x.min() : stem_x.max() + 1] > 127).any()
    for font in fonts:  # every bundled face's own 4 is closed
        closed = glyph_mask(font, "4")
        assert _holes(closed) == 1, font
        resized = cv2.resize(closed, (w, h)) > 127
        iou = (resized & (four > 127)).sum() / (resized | (four > 127)).sum()
        assert iou < 0.8, font


def test_california_plates_use_the_open_four_and_other_states_do_not() -> None:
    from training.synth_dies import font_stem
    from training.synth_fonts import plate_fonts
    from training.synth_state_plate import die_glyph

    font = plate_fonts()[0][0]
    stem = font_stem(font)
    rng = np.random.default_rng(5)
    ca = [die_glyph(rng, _BY_NAME["CA-script"], font, "4", stem) for _ in range(100)]
    assert sum(g is not None and _holes(g) == 0 for g in ca) >= 85
    assert all(die_glyph(rng, _BY_NAME["TX"], font, "4", stem) is None for _ in range(50))
    # and the open 4 reaches the rendered plates: the ink labelled 4 encloses no counter
    fours = []
    for i in range(300):
        flat = render_flat(np.random.default_rng([31, i]), _BY_NAME["CA-block"])
        if "4" in flat.text:
            fours.append((flat.index_map == flat.text.index("4") + 1).astype(np.uint8) * 255)
        if len(fours) == 10:
            break
    assert len(fours) == 10
    assert sum(_holes(f) == 0 for f in fours) >= 8


def test_slab_i_flagged_one_and_narrow_zero_are_drawn_as_the_dies_cut_them() -> None:
    from training.synth_dies import flag_one, round_o, slab_i, stadium_zero

    stem = 12
    i = slab_i(stem, 0.36) > 127
    h = i.shape[0]
    assert i[0].sum() > 2 * stem and i[-1].sum() > 2 * stem  # slabs top and bottom
    assert i[h // 2].sum() <= stem + 1  # a plain stem between them
    with_foot, without = flag_one(stem, 0.36, True) > 127, flag_one(stem, 0.3, False) > 127
    assert with_foot[-1].sum() > 2 * stem and without[-1].sum() <= stem + 1
    for one in (with_foot, without):  # the flag reaches left of the stem near the top
        stem_left = np.nonzero(one[one.shape[0] // 2])[0].min()
        assert np.nonzero(one[int(h * 0.15)])[0].min() < stem_left
    zero, o = stadium_zero(stem, 0.44) > 127, round_o(stem, 0.58) > 127
    assert zero.shape[1] < o.shape[1]
    side = zero[:, : stem // 2].any(axis=1)  # straight sides: the outer column is ink a long way
    assert side.mean() > 0.4
    assert o[:, : stem // 2].any(axis=1).mean() < side.mean()
    assert _holes(zero.astype(np.uint8) * 255) == 1


def test_the_die_two_has_a_round_top_a_straight_diagonal_and_a_flat_base() -> None:
    from training.synth_dies import die_two
    from training.synth_fonts import glyph_mask, plate_fonts

    stem = 12
    two = die_two(stem, 0.44) > 127
    h, w = two.shape
    assert two[-1].sum() > 0.9 * w  # flat base
    assert not two[: stem // 2, : stem // 2].any()  # round top: no corner, where a Z has one
    assert _holes(two.astype(np.uint8) * 255) == 0
    # Between the bowl and the base one straight stroke runs down to the left: each row's ink
    # is one run, and its centre moves left by about the same amount from row to row.
    rows = range(int(h * 0.55), int(h * 0.85), 4)
    centres = [float(np.nonzero(two[y])[0].mean()) for y in rows]
    assert all(np.diff(np.nonzero(two[y])[0]).max() == 1 for y in rows)
    steps = np.diff(centres)
    assert (steps < 0).all() and steps.max() - steps.min() < 2.0
    # and it is not the bundled faces' Z, whose top is a full-width bar
    z = cv2.resize(glyph_mask(plate_fonts()[0][0], "Z"), (w, h)) > 127
    assert z[: stem // 2, : stem // 2].any()


def test_state_plates_are_deterministic_for_a_seed() -> None:
    for design in (_BY_NAME["CA-script"], _BY_NAME["NYC-tlc"], _BY_NAME["TN"]):
        a = render_plate(np.random.default_rng([4, 2]), design)
        b = render_plate(np.random.default_rng([4, 2]), design)
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
