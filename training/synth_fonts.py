"""The generator's bundled fonts and cached glyph masks.

Only the OFL fonts shipped beside this module (`fonts/`, licences included) are used, never the
machine's own, so a seed gives the same plates on every machine. Glyphs are rasterised once per
(font, character) at a large size and cropped to their ink, so a plate can resize them freely
and its character boxes are the ink boxes exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_DIR", "GLYPH_PX", "decor_fonts", "glyph_mask", "plate_fonts", "text_mask"]

FONT_DIR = Path(__file__).resolve().parent / "fonts"

# Condensed bold faces close to the USA plate dies; the weight says how often each is used.
# Overpass is wide, so plates condense it (see render_flat); Big Shoulders is already narrow.
_PLATE_FONTS: tuple[tuple[str, float], ...] = (
    ("big-shoulders/BigShouldersText-Bold.ttf", 2.0),
    ("big-shoulders/BigShouldersText-ExtraBold.ttf", 1.5),
    ("big-shoulders/BigShouldersText-SemiBold.ttf", 1.5),
    ("big-shoulders/BigShouldersText-Medium.ttf", 0.5),
    ("big-shoulders/BigShouldersDisplay-Bold.ttf", 1.0),
    ("big-shoulders/BigShouldersDisplay-ExtraBold.ttf", 1.0),
    ("overpass/Overpass-Bold.ttf", 1.5),
    ("overpass/Overpass-ExtraBold.ttf", 1.0),
    ("overpass/Overpass-SemiBold.ttf", 1.0),
)
# Faces for unlabelled decoration (state names, slogans, dealer frames).
_DECOR_FONTS: tuple[str, ...] = (
    "overpass/Overpass-Medium.ttf",
    "overpass/Overpass-SemiBold.ttf",
    "overpass/Overpass-Bold.ttf",
    "overpass/Overpass-ExtraBold.ttf",
    "big-shoulders/BigShouldersDisplay-Bold.ttf",
    "big-shoulders/BigShouldersText-Medium.ttf",
)

GLYPH_PX = 96  # rasterisation size; plates rarely need more after resizing


def _bundled(rel: str) -> Path:
    path = FONT_DIR / rel
    if not path.is_file():
        # A broken install, not a machine without fonts: the files ship with the package.
        raise FileNotFoundError(f"bundled generator font missing: {path}")
    return path


@functools.cache
def plate_fonts() -> tuple[tuple[Path, ...], np.ndarray]:
    """The bundled plate faces and their sampling probabilities."""
    weights = np.array([w for _, w in _PLATE_FONTS])
    return tuple(_bundled(p) for p, _ in _PLATE_FONTS), weights / weights.sum()


@functools.cache
def decor_fonts() -> tuple[Path, ...]:
    return tuple(_bundled(p) for p in _DECOR_FONTS)


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    # Basic layout: libraqm, where the machine has it, would shape decoration strings differently.
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def glyph_mask(path: Path, char: str) -> np.ndarray:
    """The character's ink as a uint8 mask cropped tight (read-only, shared between plates)."""
    font = _font(path, GLYPH_PX)
    left, top, right, bottom = font.getbbox(char)
    img = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - top), char, fill=255, font=font)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 40)
    out = np.ascontiguousarray(arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    out.setflags(write=False)
    return out


def text_mask(path: Path, text: str, size: int) -> np.ndarray:
    """A whole decoration string rendered as a tight uint8 mask (empty array if no ink;
    read-only). Sizes are rounded to steps of 8 px: callers resize the mask anyway, and the
    few sizes left make the cache hit."""
    return _text_mask(path, text, max(8, round(size / 8) * 8))


@functools.lru_cache(maxsize=4096)
def _text_mask(path: Path, text: str, size: int) -> np.ndarray:
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (max(1, int(right - left) + 4), max(1, int(bottom - top) + 4)), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, fill=255, font=font)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 40)
    out = (
        np.zeros((0, 0), np.uint8)
        if len(ys) == 0
        else arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    )
    out = np.ascontiguousarray(out)
    out.setflags(write=False)
    return out
