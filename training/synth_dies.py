"""Plate-die glyphs that no desktop face has, drawn as uint8 ink masks GLYPH_PX tall.

US plates are stamped (or printed) from dies whose letters differ from any font in ways the
reader must learn: California's open-top 4, the slab-serif I of Illinois and Massachusetts, the
flagged 1 (with a foot in some states, without in others), the 2 whose bowl runs into a
straight diagonal (a desktop face's 2 curves all the way down; its Z is that diagonal), a
narrow straight-sided 0 beside a rounder O, and M and W whose middle V stops short. Each is
drawn from strokes with the stem of the plate's font, so it sits beside that font's other
glyphs. All masks are read-only and cached.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from training.synth_fonts import GLYPH_PX, glyph_mask

__all__ = [
    "DIE_DEPTHS",
    "DIE_WIDTHS",
    "die_m",
    "die_two",
    "die_w",
    "flag_one",
    "font_stem",
    "open_four",
    "round_o",
    "short_v_m",
    "slab_i",
    "stadium_zero",
]

# Depths (fraction of cap height the middle V reaches) and widths (of cap height) the die
# letters are drawn at: New York's dies stop the V at about a third, others nearer the middle.
DIE_DEPTHS: tuple[float, ...] = (0.3, 0.38, 0.46, 0.58)
DIE_WIDTHS: tuple[float, ...] = (0.46, 0.54, 0.62)


def _frozen(m: np.ndarray) -> np.ndarray:
    m = np.ascontiguousarray(m)
    m.setflags(write=False)
    return m


@functools.cache
def font_stem(path: Path) -> int:
    """The face's vertical stem in pixels at GLYPH_PX cap height (from its "I")."""
    i = glyph_mask(path, "I")
    stem: int = max(3, round(i.shape[1] * GLYPH_PX / i.shape[0]))
    return stem


def _canvas(width: float) -> np.ndarray:
    return np.zeros((GLYPH_PX, max(4, round(GLYPH_PX * width))), np.uint8)


@functools.cache
def short_v_m(stem: int, depth: float, width: float) -> np.ndarray:
    """The die M with a given stem (see die_m)."""
    h = GLYPH_PX
    w = max(stem * 3, round(h * width))
    m = np.zeros((h, w), np.uint8)
    m[:, :stem] = 255
    m[:, w - stem :] = 255
    pts = [(stem // 2, 0), (w // 2, round(h * depth)), (w - 1 - stem // 2, 0)]
    cv2.polylines(m, [np.array(pts, np.int32)], False, 255, stem, cv2.LINE_AA)
    return _frozen(m)


def die_m(path: Path, depth: float = 0.58, width: float = 0.62) -> np.ndarray:
    """An "M" as the dies cut it: vertical legs and a V that stops at `depth` of the cap height,
    `width` cap heights wide. Desktop faces run the V to the baseline, so a detector trained on
    them reads a short-V M as H."""
    return short_v_m(font_stem(path), depth, width)


def die_w(path: Path, depth: float = 0.58, width: float = 0.62) -> np.ndarray:
    """The die "W": the die "M" upside down (its V rises from the baseline)."""
    return _frozen(die_m(path, depth, width)[::-1])


@functools.cache
def open_four(stem: int, width: float = 0.5, stem_top: float = 0.25) -> np.ndarray:
    """California's 4: a slanted left stroke that ends on the crossbar, and a short stem that
    starts `stem_top` of the cap height down, so the top is open (a closed 4 meets in an apex;
    a detector that never saw this one reads it as L)."""
    m = _canvas(width)
    h, w = m.shape
    bar_y = round(h * 0.64)
    half = stem // 2
    cv2.rectangle(m, (0, bar_y - half), (w - 1, bar_y - half + stem - 1), 255, -1)
    x_stem = w - stem - round(0.12 * w)
    cv2.rectangle(m, (x_stem, round(h * stem_top)), (x_stem + stem - 1, h - 1), 255, -1)
    # The left stroke leans from the top to the bar's left end, clear of the stem's top.
    xt = min(w * 0.4, x_stem - stem / 2 - max(2.0, 0.1 * w))
    left = [(xt - stem / 2, 0), (xt + stem / 2, 0), (stem, bar_y), (0, bar_y)]
    cv2.fillPoly(m, [np.round(np.array(left) * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return _frozen(m)


@functools.cache
def slab_i(stem: int, width: float = 0.36) -> np.ndarray:
    """An I with slab serifs top and bottom (Illinois, Massachusetts), which a detector that
    knows only sans-serif I reads as T or 1."""
    m = _canvas(width)
    h, w = m.shape
    x = (w - stem) // 2
    m[:, x : x + stem] = 255
    slab = max(2, round(stem * 0.85))
    m[:slab] = 255
    m[h - slab :] = 255
    return _frozen(m)


@functools.cache
def flag_one(stem: int, width: float = 0.36, base: bool = True) -> np.ndarray:
    """A 1 with a flag at the top and, where the state's die has one, a foot (CA, TX, GA, MA,
    TN, VA; NY, WI and IL have none). Without the flag the reader takes it for I, L or T."""
    m = _canvas(width)
    h, w = m.shape
    x = w - stem - round(w * (0.22 if base else 0.0))
    m[:, x : x + stem] = 255
    cv2.line(
        m, (x + stem // 2, stem // 2), (0 + stem // 2, round(h * 0.26)), 255, stem, cv2.LINE_AA
    )
    if base:
        foot = max(2, round(stem * 0.8))
        m[h - foot :, 0:w] = 255
    return _frozen(m)


@functools.cache
def die_two(stem: int, width: float = 0.44) -> np.ndarray:
    """The dies' 2: a round bowl over the top half, then a straight diagonal to a flat base
    (shared/reference: "curved with a flat base" in every state seen). The bundled faces' 2
    curves down to the base, and their Z is the straight diagonal, so plates drawn with them
    alone show no 2 like New York's: the fast reader trained on them read it as 7 (23 dev
    misreads; 15 when trained with this one, model card)."""
    m = _canvas(width)
    h, w = m.shape
    half = stem / 2
    cx, cy = w / 2, h * 0.28
    ax, ay = max(1.0, (w - stem) / 2), max(1.0, h * 0.28 - half)
    end_deg = 35.0  # the bowl turns into the diagonal a little below its widest point
    cv2.ellipse(
        m,
        (round(cx), round(cy)),
        (round(ax), round(ay)),
        0,
        165,
        360 + end_deg,
        255,
        stem,
        cv2.LINE_AA,
    )
    end = (cx + ax * np.cos(np.radians(end_deg)), cy + ay * np.sin(np.radians(end_deg)))
    foot = max(2, round(stem * 0.9))
    base_y = h - foot / 2
    cv2.line(
        m, (round(end[0]), round(end[1])), (round(half), round(base_y)), 255, stem, cv2.LINE_AA
    )
    m[h - foot :, :] = 255
    return _frozen(m)


def _stadium(h: int, w: float, inset: float) -> np.ndarray:
    """Soft mask (0..1) of a stadium (straight sides, round ends) h tall, w wide, inset px."""
    yy, xx = np.mgrid[0:h, 0 : round(w)].astype(np.float32) + 0.5
    r = w / 2 - inset
    cy = np.clip(yy, w / 2, h - w / 2)
    d = np.hypot(xx - w / 2, yy - cy)
    return np.asarray(np.clip(r - d + 0.5, 0.0, 1.0), np.float32)


@functools.cache
def stadium_zero(stem: int, width: float = 0.44) -> np.ndarray:
    """The dies' 0: a narrow stadium with straight sides, as wide as D or U (a round desktop 0
    is read as O or D on real plates, and the reverse)."""
    h, w = GLYPH_PX, max(4.0, GLYPH_PX * width)
    ring = _stadium(h, w, 0) - _stadium(h, w, stem)
    return _frozen((np.clip(ring, 0, 1) * 255).astype(np.uint8))


@functools.cache
def round_o(stem: int, width: float = 0.6) -> np.ndarray:
    """The letter O of the dies that keep it apart from 0: an oval ring, wider than the 0."""
    m = _canvas(width)
    h, w = m.shape
    axes = (max(1, (w - stem) // 2), max(1, (h - stem) // 2))
    cv2.ellipse(m, (w // 2, h // 2), axes, 0, 0, 360, 255, stem, cv2.LINE_AA)
    return _frozen(m)
