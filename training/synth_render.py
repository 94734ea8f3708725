"""Flat (front-on) plate rendering: background, labelled serial, unlabelled decoration.

The serial is drawn glyph by glyph from cached ink masks, and an index map records which pixel
belongs to which character, so the geometric stage can warp the map and read exact ink boxes.
Decoration never overlaps the serial's band, so a label never has to cover a distractor.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.synth_decor import (
    Color,
    decor_text,
    frame,
    side_graphic,
    stack_letters,
)
from training.synth_decor import jitter as _jitter
from training.synth_dies import DIE_DEPTHS, DIE_WIDTHS, die_m, die_w
from training.synth_fonts import glyph_mask, plate_fonts
from training.synth_serial import FlatPlate, SerialLayout, ink_serial, lay_serial
from training.synth_state_plate import render_state
from training.synth_states import PlateDesign, pick_design
from training.synth_text import SLOGANS, STATE_NAMES, PlateText, random_plate_text


def _palette(rng: np.random.Generator) -> tuple[str, Color, Color]:
    """(style, background, ink) in BGR; proportions roughly follow what real crops show."""
    r = rng.random()
    if r < 0.30:  # New York "Excelsior" gold, navy serial: the largest share of real crops
        bg = _jitter(rng, (35, 175, 235), 15)
        ink = (75, 35, 25) if rng.random() < 0.7 else (30, 25, 25)
        return "ny", bg, _jitter(rng, ink, 10)
    if r < 0.62:
        bg = _jitter(rng, (235, 238, 240), 12)
        inks = [(110, 30, 20), (30, 30, 30), (140, 60, 20), (40, 80, 30), (40, 30, 130)]
        return "light", bg, _jitter(rng, inks[int(rng.integers(len(inks)))], 15)
    if r < 0.72:
        bg = _jitter(rng, (40, 195, 235), 18)  # NY / taxi yellow-orange
        ink = (25, 25, 25) if rng.random() < 0.7 else (90, 40, 20)
        return "yellow", bg, _jitter(rng, ink, 10)
    if r < 0.84:
        bgs = [(30, 30, 30), (80, 30, 10), (20, 60, 20), (60, 60, 60), (90, 50, 20)]
        inks = [(235, 235, 235), (60, 210, 240), (200, 200, 200)]
        return (
            "dark",
            _jitter(rng, bgs[int(rng.integers(len(bgs)))], 12),
            _jitter(rng, inks[int(rng.integers(len(inks)))], 12),
        )
    bg = _jitter(rng, (225, 225, 215), 20)  # graphic plates: pale scenery behind dark ink
    inks = [(100, 30, 20), (20, 20, 20), (30, 30, 140)]
    return "graphic", bg, _jitter(rng, inks[int(rng.integers(len(inks)))], 12)


def _background(rng: np.random.Generator, h: int, w: int, style: str, bg: Color) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    # Vertical gradient: plates are lit from above and reflective sheeting fades at the edges.
    grad = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None]
    img += grad * float(rng.uniform(-18, 18))
    if style in ("graphic", "light") and rng.random() < (0.9 if style == "graphic" else 0.3):
        layer = img.copy()
        for _ in range(int(rng.integers(1, 4))):
            col = _jitter(
                rng, (float(rng.uniform(90, 255)), 180.0, float(rng.uniform(90, 255))), 50
            )
            if rng.random() < 0.5:  # hills / waves along the bottom or top
                xs = np.linspace(0, w, 8)
                base = (
                    rng.uniform(0.55, 0.95) * h if rng.random() < 0.7 else rng.uniform(0, 0.3) * h
                )
                ys = base + rng.normal(0, 0.08 * h, 8)
                pts = np.stack([xs, ys], 1)
                edge = h if base > h / 2 else 0
                poly = np.vstack([pts, [[w, edge], [0, edge]]]).astype(np.int32)
                cv2.fillPoly(layer, [poly], col)
            else:
                c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
                ax = (int(rng.uniform(0.1, 0.5) * w), int(rng.uniform(0.1, 0.5) * h))
                cv2.ellipse(layer, c, ax, float(rng.uniform(0, 180)), 0, 360, col, -1)
        a = float(rng.uniform(0.15, 0.45))
        img = img * (1 - a) + layer * a
    img += rng.normal(0, float(rng.uniform(0, 4)), (h, w, 1)).astype(np.float32)
    return img


def _die_glyph(font: Path, char: str, depth: float, width: float) -> np.ndarray:
    return die_m(font, depth, width) if char == "M" else die_w(font, depth, width)


def render_generic(rng: np.random.Generator) -> FlatPlate:
    """A plate of no particular state: palettes, formats and decoration drawn freely, for the
    states and specialty plates the state designs leave out."""
    style, bg, ink = _palette(rng)
    ny = style == "ny"
    plate_text: PlateText = random_plate_text(rng, "ny" if ny else "any")
    h = int(rng.integers(100, 131))
    w = int(h * rng.uniform(1.85, 2.15))
    img = _background(rng, h, w, style, bg)

    fonts, probs = plate_fonts()
    font: Path = fonts[int(rng.choice(len(fonts), p=probs))]
    # New York's serials are tall and narrow.
    condense = float(rng.uniform(0.7, 1.0) if ny else rng.uniform(0.75, 1.2))
    gap = float(rng.uniform(0.04, 0.14))
    if ny:  # NY puts its state outline between the groups
        brk = "emblem" if rng.random() < 0.75 else "dash"
    else:
        brk = ("dash", "gap", "emblem", "dot", "gap")[int(rng.integers(5))]
    brk_w = {"dash": 0.45, "gap": 0.4, "emblem": 0.7, "dot": 0.35}[brk] * float(
        rng.uniform(0.8, 1.3)
    )
    stack = rng.random() < 0.15
    stack_left = rng.random() < 0.6

    # Lay out in units of cap height, then pick the cap height that fits the plate width.
    # Plate-die M and W (short V) instead of the face's own: nearly always on New York plates.
    die = rng.random() < (0.85 if ny else 0.4)
    depth = float(DIE_DEPTHS[int(rng.integers(2 if ny else len(DIE_DEPTHS)))])
    die_width = float(DIE_WIDTHS[int(rng.integers(len(DIE_WIDTHS)))])
    glyphs = [
        _die_glyph(font, c, depth, die_width) if die and c in "MW" else glyph_mask(font, c)
        for c in plate_text.text
    ]
    widths = [g.shape[1] / g.shape[0] * condense for g in glyphs]
    n_breaks = len(plate_text.groups) - 1
    units = sum(widths) + gap * (len(glyphs) - 1) + n_breaks * brk_w + (0.5 if stack else 0.0)
    cap_frac = rng.uniform(0.45, 0.62) if ny else rng.uniform(0.42, 0.62)
    # Some plates carry a picture beside the serial (specialty and state-art plates).
    picture = None if rng.random() >= 0.25 else ("left" if rng.random() < 0.6 else "right")
    room = rng.uniform(0.62, 0.75) if picture else rng.uniform(0.8, 0.94)
    cap = min(h * cap_frac, w * room / units)
    total = units * cap
    if picture is None:
        x = float((w - total) / 2 + rng.uniform(-0.5, 0.5) * max(0.0, w * 0.94 - total) / 2)
    else:  # the serial leans away from the picture, which fills the space left on its side
        x = float(w * 0.97 - total if picture == "left" else w * 0.03)
    yc = h * (rng.uniform(0.55, 0.62) if ny else rng.uniform(0.48, 0.58))
    y0 = int(np.clip(yc - cap / 2, 2, h - cap - 2))
    ch = max(4, round(cap))
    text_top, text_bottom = y0, y0 + ch

    # Decoration first (the serial paints over anything that spills).
    deco = _jitter(rng, ink, 40) if rng.random() < 0.6 else _jitter(rng, (40, 40, 160), 40)
    top_band = (int(0.03 * h), text_top - max(2, int(0.04 * h)))
    if ny:  # navy band across the top carrying "NEW YORK" in white or gold
        band_bottom = int(min(h * rng.uniform(0.17, 0.24), text_top - 0.03 * h))
        cv2.rectangle(img, (0, 0), (w, band_bottom), _jitter(rng, ink, 15), -1)
        light = (235.0, 235.0, 235.0) if rng.random() < 0.5 else (60.0, 200.0, 240.0)
        decor_text(rng, img, ("NEW YORK",), (2, band_bottom - 2), _jitter(rng, light, 15))
    elif rng.random() < 0.8:
        decor_text(rng, img, STATE_NAMES, top_band, deco)
    bottom_words = ("EMPIRE STATE", "TAXI", "T&LC", "COMMERCIAL", "EXCELSIOR") if ny else SLOGANS
    if rng.random() < (0.8 if ny else 0.6):
        band = (text_bottom + max(2, int(0.04 * h)), int(0.97 * h))
        decor_text(rng, img, bottom_words, band, deco)
    if rng.random() < 0.5:  # mounting bolts sit above/below the serial band
        r = max(2, int(h * rng.uniform(0.025, 0.045)))
        bolt = _jitter(rng, (150, 150, 150), 40)
        for bx in (int(w * rng.uniform(0.18, 0.3)), int(w * rng.uniform(0.7, 0.82))):
            for by in (int(h * 0.09), int(h * 0.92)):
                if by + r < text_top or by - r > text_bottom:
                    cv2.circle(img, (bx, by), r, bolt, -1)
    if rng.random() < 0.3:  # registration sticker in a top corner
        sw, sh = int(w * rng.uniform(0.1, 0.18)), int(h * rng.uniform(0.1, 0.18))
        sx = int(w * 0.03) if rng.random() < 0.5 else int(w * 0.97) - sw
        sy = int(h * 0.04)
        if sy + sh < text_top:
            cv2.rectangle(img, (sx, sy), (sx + sw, sy + sh), _jitter(rng, (60, 160, 200), 80), -1)

    if picture is not None:
        gap_px = int(0.15 * cap)
        gx1, gx2 = (
            (int(w * 0.03), int(x) - gap_px)
            if picture == "left"
            else (
                int(x + total) + gap_px,
                int(w * 0.97),
            )
        )
        pad = int(cap * rng.uniform(0.0, 0.3))
        side_graphic(rng, img, (gx1, max(0, text_top - pad), gx2, min(h - 1, text_bottom + pad)))

    if stack and stack_left:
        x = stack_letters(rng, img, x, text_top, ch, ink)
    layout = SerialLayout(glyphs, widths, widths, plate_text.groups, brk, brk_w, gap)
    index_map, text_alpha, x = lay_serial(rng, img, layout, x=x, y0=y0, cap=cap, ink=ink)
    if stack and not stack_left:
        stack_letters(rng, img, x + 0.1 * cap, text_top, ch, ink)
    img = ink_serial(rng, img, text_alpha, ink, ch, emboss=rng.random() < 0.6)
    if rng.random() < 0.35:  # painted border line around the plate
        t = max(1, h // 40)
        cv2.rectangle(img, (t, t), (w - 1 - t, h - 1 - t), ink, t, cv2.LINE_AA)
    if rng.random() < 0.45:
        img, index_map = frame(rng, img, index_map)
    return FlatPlate(np.clip(img, 0, 255), index_map, plate_text.text)


# Share of plates drawn by the free generic renderer rather than from a state design: the other
# 30 states, specialty and vanity bases, and the variety the state designs alone would lack.
GENERIC_SHARE = 0.25


def render_flat(rng: np.random.Generator, design: PlateDesign | None = None) -> FlatPlate:
    """Draw one front-on plate with its labelled serial and unlabelled distractors: a state's
    standard plate (by how common it is on US roads), or, for GENERIC_SHARE of plates, a
    generic one. `design` forces a state design."""
    if design is None and rng.random() < GENERIC_SHARE:
        return render_generic(rng)
    return render_state(rng, design or pick_design(rng))
