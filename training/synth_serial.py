"""Laying a serial onto a flat plate glyph by glyph, and inking it (flat or embossed).

The index map records which pixel belongs to which character, so the geometric stage can warp
it and read exact ink boxes. Marks between groups (dashes, emblems, state outlines) are painted
on the image only, never on the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from training.synth_art import STATE_SEPARATORS, state_separator
from training.synth_decor import Color, separator

__all__ = ["FlatPlate", "SerialLayout", "ink_serial", "lay_serial"]

# How much of the cap height each state mark fills (the Florida oranges are nearly full size).
_MARK_HEIGHT = {"outline": 0.5, "tx": 0.45, "keystone": 0.55, "tristar": 0.8, "oranges": 0.85}


@dataclass
class FlatPlate:
    image: np.ndarray  # float32 HxWx3 BGR in 0..255
    index_map: np.ndarray  # uint8 HxW: 0 background, k = ink of serial character k-1
    text: str
    design: str = "generic"  # the state design's name (synth_states) or "generic"


@dataclass(frozen=True)
class SerialLayout:
    """Where the glyphs go, in cap heights: each glyph centred in its cell (monospaced dies
    give a narrow 1 the cell of a wide M), groups split by a break of `brk_w`."""

    glyphs: Sequence[np.ndarray]
    widths: Sequence[float]
    cells: Sequence[float]
    groups: Sequence[str]
    brk: str
    brk_w: float
    gap: float

    @property
    def units(self) -> float:
        n_breaks = len(self.groups) - 1
        return sum(self.cells) + self.gap * (len(self.cells) - 1) + n_breaks * self.brk_w


def lay_serial(
    rng: np.random.Generator,
    img: np.ndarray,
    layout: SerialLayout,
    *,
    x: float,
    y0: int,
    cap: float,
    ink: Color,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw the layout's breaks on img and return (index map, ink alpha, x after the serial)."""
    h, w = img.shape[:2]
    ch = max(4, round(cap))
    index_map = np.zeros((h, w), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    stroke = int(rng.integers(-1, 2)) if ch > 40 else 0
    gap = layout.gap * cap
    k = 0
    for gi, group in enumerate(layout.groups):
        if gi > 0:
            bw = layout.brk_w * cap
            if layout.brk in STATE_SEPARATORS:
                s = _MARK_HEIGHT[layout.brk] * ch
                top = y0 + (ch - s) / 2
                state_separator(rng, img, layout.brk, (x, top, x + bw - gap, top + s), ink)
                x += bw
            else:
                x = separator(rng, img, layout.brk, x, y0, ch, bw, gap, ink)
        for _ in group:
            gw = max(2, round(layout.widths[k] * cap))
            m = cv2.resize(layout.glyphs[k], (gw, ch), interpolation=cv2.INTER_AREA)
            if stroke:
                op = cv2.dilate if stroke > 0 else cv2.erode
                m = op(m, np.ones((2, 2), np.uint8))
            xi = round(x + (layout.cells[k] * cap - gw) / 2)
            x1, x2 = max(0, xi), min(w, xi + gw)
            sub = m[:, x1 - xi : x2 - xi]
            np.maximum(alpha[y0 : y0 + ch, x1:x2], sub / 255.0, out=alpha[y0 : y0 + ch, x1:x2])
            index_map[y0 : y0 + ch, x1:x2][sub > 110] = k + 1
            x += layout.cells[k] * cap + gap
            k += 1
    return index_map, alpha, x


def ink_serial(
    rng: np.random.Generator, img: np.ndarray, alpha: np.ndarray, ink: Color, ch: int, emboss: bool
) -> np.ndarray:
    """Paint the serial's ink; stamped dies get a light rim on one side, a shadow on the other."""
    a = alpha[..., None]
    if emboss:
        d = max(1, round(ch * rng.uniform(0.02, 0.05)))
        lit = np.roll(alpha, (-d, -d), (0, 1))[..., None]
        shade = np.roll(alpha, (d, d), (0, 1))[..., None]
        img = img + np.clip(lit - a, 0, 1) * float(rng.uniform(20, 60))
        img = img - np.clip(shade - a, 0, 1) * float(rng.uniform(30, 90))
    return np.asarray(img * (1 - a) + np.array(ink, np.float32) * a, np.float32)
