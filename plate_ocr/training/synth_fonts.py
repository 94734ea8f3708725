"""System fonts for the generator and cached glyph masks.

Fonts come from the machine's Debian font packages at training time; none ship with the project.
Glyphs are rasterised once per (font, character) at a large size and cropped to their ink, so a
plate can resize them freely and its character boxes are the ink boxes exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FONT_ROOT = Path("/usr/share/fonts")

# Condensed bold sans faces close to the USA plate dies; the weight says how often each is used.
_PLATE_FONTS: tuple[tuple[str, float], ...] = (
    ("opentype/bebas-neue/BebasNeue-Bold.otf", 2.0),
    ("opentype/bebas-neue/BebasNeue-Regular.otf", 1.5),
    ("truetype/opendin/OSP-DIN.ttf", 2.0),
    ("truetype/roboto/unhinted/RobotoCondensed-Bold.ttf", 1.5),
    ("truetype/roboto/unhinted/RobotoCondensed-Medium.ttf", 1.5),
    ("truetype/roboto/unhinted/RobotoCondensed-Regular.ttf", 1.0),
    ("truetype/liberation/LiberationSansNarrow-Bold.ttf", 1.5),
    ("truetype/liberation/LiberationSansNarrow-Regular.ttf", 1.0),
    ("opentype/urw-base35/NimbusSansNarrow-Bold.otf", 1.5),
    ("opentype/urw-base35/NimbusSansNarrow-Regular.otf", 1.0),
    ("truetype/dejavu/DejaVuSansCondensed-Bold.ttf", 1.0),
    ("truetype/dejavu/DejaVuSansCondensed.ttf", 0.5),
    ("opentype/urw-base35/URWGothic-Demi.otf", 0.5),
)
# Faces for unlabelled decoration (state names, slogans, dealer frames): serif, script-ish, sans.
_DECOR_FONTS: tuple[str, ...] = (
    "truetype/liberation/LiberationSerif-Bold.ttf",
    "truetype/liberation/LiberationSerif-Regular.ttf",
    "truetype/liberation/LiberationSerif-Italic.ttf",
    "truetype/liberation/LiberationSans-Bold.ttf",
    "opentype/urw-base35/C059-Bold.otf",
    "opentype/urw-base35/P052-Roman.otf",
    "opentype/urw-base35/Z003-MediumItalic.otf",
    "opentype/urw-base35/NimbusSans-Bold.otf",
    "truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "truetype/dejavu/DejaVuSans-Bold.ttf",
)

_GLYPH_PX = 96  # rasterisation size; plates rarely need more after resizing


def _existing(paths: list[str]) -> list[Path]:
    return [p for p in (_FONT_ROOT / s for s in paths) if p.is_file()]


@functools.cache
def plate_fonts() -> tuple[tuple[Path, ...], np.ndarray]:
    """Plate faces present on this machine and their sampling probabilities."""
    found = [(_FONT_ROOT / p, w) for p, w in _PLATE_FONTS if (_FONT_ROOT / p).is_file()]
    if not found:
        raise RuntimeError(
            f"no plate fonts under {_FONT_ROOT}: install fonts-bebas-neue, fonts-opendin, "
            "fonts-roboto, fonts-liberation, fonts-urw-base35 or fonts-dejavu"
        )
    weights = np.array([w for _, w in found])
    return tuple(p for p, _ in found), weights / weights.sum()


@functools.cache
def decor_fonts() -> tuple[Path, ...]:
    found = _existing(list(_DECOR_FONTS))
    return tuple(found) if found else plate_fonts()[0]


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@functools.cache
def glyph_mask(path: Path, char: str) -> np.ndarray:
    """The character's ink as a uint8 mask cropped tight (read-only, shared between plates)."""
    font = _font(path, _GLYPH_PX)
    left, top, right, bottom = font.getbbox(char)
    img = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - top), char, fill=255, font=font)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 40)
    out = np.ascontiguousarray(arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    out.setflags(write=False)
    return out


def text_mask(path: Path, text: str, size: int) -> np.ndarray:
    """A whole decoration string rendered as a tight uint8 mask (empty array if no ink)."""
    font = _font(path, max(6, size))
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (max(1, int(right - left) + 4), max(1, int(bottom - top) + 4)), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, fill=255, font=font)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 40)
    if len(ys) == 0:
        return np.zeros((0, 0), np.uint8)
    return np.ascontiguousarray(arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


# Depths (fraction of cap height the middle V reaches) and widths (of cap height) the die
# letters are drawn at: New York's dies stop the V at about a third, others nearer the middle.
DIE_DEPTHS: tuple[float, ...] = (0.3, 0.38, 0.46, 0.58)
DIE_WIDTHS: tuple[float, ...] = (0.46, 0.54, 0.62)


@functools.cache
def die_m(path: Path, depth: float = 0.58, width: float = 0.62) -> np.ndarray:
    """An "M" as the USA plate dies cut it: vertical legs and a V that stops at `depth` of the
    cap height (New York: about a third), `width` cap heights wide.

    Desktop faces run the V down to the baseline, which the detector then fails to match on
    New York plates (it reads their M as H); this variant borrows the face's stem width.
    """
    stem = max(
        3, round(glyph_mask(path, "I").shape[1] * _GLYPH_PX / glyph_mask(path, "I").shape[0])
    )
    h = _GLYPH_PX
    w = max(stem * 3, round(h * width))
    m = np.zeros((h, w), np.uint8)
    m[:, :stem] = 255
    m[:, w - stem :] = 255
    vy = round(h * depth)
    pts = [(stem // 2, 0), (w // 2, vy), (w - 1 - stem // 2, 0)]
    cv2.polylines(m, [np.array(pts, np.int32)], False, 255, stem, cv2.LINE_AA)
    m.setflags(write=False)
    return m


@functools.cache
def die_w(path: Path, depth: float = 0.58, width: float = 0.62) -> np.ndarray:
    """The die "W": the die "M" upside down (its V rises from the baseline)."""
    w = np.ascontiguousarray(die_m(path, depth, width)[::-1])
    w.setflags(write=False)
    return w
