"""A state's standard plate, front on: its background and pictures, its legends and sticker
boxes, and its serial in the state's format, colour and die glyphs (synth_states has the facts).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from training.synth_art import legend, paint, sticker
from training.synth_decor import frame, stack_letters
from training.synth_decor import jitter as _jitter
from training.synth_dies import die_two, flag_one, font_stem, open_four, round_o, short_v_m, slab_i
from training.synth_dies import stadium_zero as _stadium_zero
from training.synth_fonts import glyph_mask, plate_fonts
from training.synth_serial import FlatPlate, SerialLayout, ink_serial, lay_serial
from training.synth_states import PlateDesign, state_serial

__all__ = ["die_glyph", "render_state"]

_BREAK_W = {
    "gap": 0.42,
    "dash": 0.5,
    "outline": 0.7,
    "keystone": 0.6,
    "tx": 0.7,
    "tristar": 0.85,
    "oranges": 1.0,
}
# Characters whose aspect sets how much a face must be condensed to the state's die width.
_BODY = "0235689ABCDEFGHKNPRSTUXYZ"


@functools.cache
def font_wh(font: Path) -> float:
    """The face's typical character width / height."""
    return float(
        np.median([glyph_mask(font, c).shape[1] / glyph_mask(font, c).shape[0] for c in _BODY])
    )


def die_glyph(
    rng: np.random.Generator, design: PlateDesign, font: Path, char: str, stem: int
) -> np.ndarray | None:
    """The state die's own glyph for char where it differs from the face, else None.

    Stamped dies are drawn nearly always; now and then the face's own glyph stands in, as
    specialty and replacement plates sometimes print a different face."""
    wh = design.wh
    if char == "4" and design.open_four and rng.random() < 0.95:
        return open_four(stem, round(wh * 1.12, 2), float(rng.choice([0.18, 0.25, 0.32])))
    if char == "I" and design.slab_i and rng.random() < 0.95:
        return slab_i(stem, round(wh * 0.8, 2))
    if char == "1" and rng.random() < 0.85:
        return flag_one(stem, round(wh * (0.75 if design.one_base else 0.6), 2), design.one_base)
    if char in "0O" and design.stadium_zero and rng.random() < 0.85:
        if char == "O" and design.round_o:
            return round_o(stem, round(wh + 0.14, 2))
        return _stadium_zero(stem, round(wh, 2))
    if char == "2" and rng.random() < 0.85:
        return die_two(stem, round(wh, 2))
    if char in "MW" and rng.random() < 0.85:
        depth = round(float(np.clip(design.m_depth + rng.normal(0, 0.05), 0.3, 0.97)), 2)
        m = short_v_m(stem, depth, round(wh * 1.25, 2))
        return m if char == "M" else np.ascontiguousarray(m[::-1])
    return None


def _bands(design: PlateDesign, h: int, top: int, bottom: int) -> tuple[tuple[int, int], ...]:
    """Rows for the top and bottom legends: a painted band where the design has one."""
    up, down = (
        (int(0.03 * h), top - max(2, int(0.04 * h))),
        (
            bottom + max(2, int(0.04 * h)),
            int(0.97 * h),
        ),
    )
    for art in design.art:
        if art.kind == "band" and art.a == 0.0:
            up = (int(0.02 * h), min(up[1], int(art.b * h) - 1))
        elif art.kind == "band" and art.b == 1.0:
            down = (max(down[0], int(art.a * h) + 2), int(0.98 * h))
        elif art.kind == "waves" and art.a > 0.5:
            down = (max(down[0], int((art.a + art.b / 2) * h) + 1), int(0.98 * h))
    return up, down


def render_state(rng: np.random.Generator, design: PlateDesign) -> FlatPlate:
    """Draw one front-on plate of the design with its labelled serial."""
    text, brk = state_serial(rng, design)
    h = int(rng.integers(100, 131))
    w = int(h * rng.uniform(1.9, 2.1))  # 12 x 6 in
    img = np.empty((h, w, 3), np.float32)
    img[:] = _jitter(rng, design.background, 8)
    for art in design.art:
        paint(rng, img, art)
    img += np.linspace(-1, 1, h, dtype=np.float32)[:, None, None] * float(rng.uniform(-12, 12))

    fonts, probs = plate_fonts()
    font = fonts[int(rng.choice(len(fonts), p=probs))]
    condense = design.wh / font_wh(font) * float(rng.uniform(0.93, 1.07))
    stem = max(3, round(font_stem(font) * min(1.0, condense) * rng.uniform(0.9, 1.15)))
    glyphs, widths = [], []
    for c in text.text:
        die = die_glyph(rng, design, font, c, stem)
        g = glyph_mask(font, c) if die is None else die
        glyphs.append(g)
        widths.append(g.shape[1] / g.shape[0] * (condense if die is None else 1.0))
    # Monospaced dies: every character gets the same cell, the widest glyphs set their own.
    cells = [max(design.wh, wd) for wd in widths]
    brk_w = _BREAK_W.get(brk, 0.5) * float(rng.uniform(0.85, 1.15))
    layout = SerialLayout(glyphs, widths, cells, text.groups, brk, brk_w, rng.uniform(0.06, 0.13))
    cap = min(h * design.cap * rng.uniform(0.92, 1.06), w * rng.uniform(0.82, 0.9) / layout.units)
    x = float((w - layout.units * cap) / 2 + rng.normal(0, 0.01 * w))
    y0 = int(np.clip(h * (design.yc + rng.normal(0, 0.015)) - cap / 2, 2, h - cap - 2))
    ch = max(4, round(cap))
    top_band, bottom_band = _bands(design, h, y0, y0 + ch)

    # Decoration first (the serial paints over anything that spills).
    for item in design.legends:
        if rng.random() < 0.92:
            legend(rng, img, item, top_band if item.where.startswith("top") else bottom_band)
    for corner in design.stickers:
        limit = (int(0.04 * h), y0 - 2) if corner[0] == "t" else (y0 + ch + 2, int(0.96 * h))
        sticker(rng, img, corner, limit, design.serial)
    if rng.random() < 0.4:  # mounting holes above and below the serial
        r = max(2, int(h * rng.uniform(0.02, 0.035)))
        for bx in (int(w * rng.uniform(0.2, 0.3)), int(w * rng.uniform(0.7, 0.8))):
            for by in (int(h * 0.08), int(h * 0.93)):
                if by + r < y0 or by - r > y0 + ch:
                    cv2.circle(img, (bx, by), r, _jitter(rng, (150.0, 150.0, 150.0), 40), -1)

    ink = _jitter(rng, design.serial, 10)
    stack = rng.random() < 0.06  # a small stacked "DP" / "DV" / dealer code, unlabelled
    index_map, alpha, end_x = lay_serial(rng, img, layout, x=x, y0=y0, cap=cap, ink=ink)
    if stack and end_x + 0.5 * ch < w:
        stack_letters(rng, img, end_x, y0, ch, ink)
    img = ink_serial(rng, img, alpha, ink, ch, emboss=rng.random() < design.embossed)
    if rng.random() < 0.45:
        img, index_map = frame(rng, img, index_map)
    return FlatPlate(np.clip(img, 0, 255), index_map, text.text, design.name)
