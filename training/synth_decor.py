"""Unlabelled plate decoration: state names, slogans, separators, stacked letters, frames.

Nothing here touches the character index map except to carry it through a frame, so every mark
drawn by this module stays out of the labels.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth_fonts import decor_fonts, glyph_mask, plate_fonts, text_mask
from training.synth_text import DEALER_WORDS, SMALL_STACKS

Color = tuple[float, float, float]


def jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    c = np.clip(np.array(color) + rng.normal(0, amount, 3), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def paste(img: np.ndarray, mask: np.ndarray, x: int, y: int, color: Color) -> None:
    """Alpha-blend a uint8 mask of one colour into img at (x, y), clipped to the image."""
    h, w = img.shape[:2]
    mh, mw = mask.shape
    x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + mw), min(h, y + mh)
    if x2 <= x1 or y2 <= y1:
        return
    a = mask[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32)[..., None] / 255.0
    img[y1:y2, x1:x2] = img[y1:y2, x1:x2] * (1 - a) + np.array(color, np.float32) * a


def decor_text(
    rng: np.random.Generator,
    img: np.ndarray,
    words: tuple[str, ...],
    band: tuple[int, int],
    color: Color,
) -> None:
    """Unlabelled text (state name, slogan) fitted inside a horizontal band."""
    h, w = img.shape[:2]
    top, bottom = band
    if bottom - top < 5:
        return
    word = words[int(rng.integers(len(words)))]
    fonts = decor_fonts()
    height = int(min(bottom - top, rng.uniform(0.09, 0.2) * h))
    m = text_mask(fonts[int(rng.integers(len(fonts)))], word, max(8, height * 2))
    if m.size == 0 or height < 4:
        return
    width = min(int(m.shape[1] * height / m.shape[0] * rng.uniform(0.8, 1.3)), int(w * 0.9))
    m = cv2.resize(m, (max(1, width), height), interpolation=cv2.INTER_AREA)
    x = int((w - width) / 2 + rng.normal(0, 0.05 * w))
    y = int(rng.uniform(top, max(top, bottom - height) + 1))
    paste(img, m, x, y, color)


def emblem_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A small state-outline / logo-like blob used as a group separator."""
    m = np.zeros((h, w), np.uint8)
    kind = rng.random()
    if kind < 0.45:
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.5, 1.0, n)
        pts = np.stack([w / 2 + np.cos(ang) * rad * w / 2, h / 2 + np.sin(ang) * rad * h / 2], 1)
        cv2.fillPoly(m, [pts.astype(np.int32)], 255)
    elif kind < 0.7:
        cv2.ellipse(
            m, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 255, -1
        )
    elif kind < 0.85:
        cv2.rectangle(m, (0, 0), (w - 1, h - 1), 255, -1)
    else:  # a little keystone: state shape or sticker-like outline
        cv2.rectangle(m, (0, 0), (w - 1, h - 1), 255, max(1, min(h, w) // 5))
    return m


def separator(
    rng: np.random.Generator,
    img: np.ndarray,
    kind: str,
    x: float,
    top: int,
    ch: int,
    width: float,
    gap: float,
    ink: Color,
) -> float:
    """Draw the mark between two groups and return the x where the next group starts."""
    cx, cy = x + width / 2 - gap / 2, top + ch * rng.uniform(0.4, 0.6)
    if kind == "dash":
        hw, hh = width * 0.35, max(1.0, ch * rng.uniform(0.04, 0.07))
        cv2.rectangle(img, (int(cx - hw), int(cy - hh)), (int(cx + hw), int(cy + hh)), ink, -1)
    elif kind == "dot":
        cv2.circle(img, (int(cx), int(cy)), max(1, int(ch * rng.uniform(0.05, 0.09))), ink, -1)
    elif kind == "emblem":
        ew, eh = max(3, int(width * 0.8)), max(3, int(ch * rng.uniform(0.25, 0.55)))
        col = ink if rng.random() < 0.5 else jitter(rng, (float(rng.uniform(0, 255)), 120, 200), 60)
        paste(img, emblem_mask(rng, eh, ew), int(cx - ew / 2), int(cy - eh / 2), col)
    return x + width


def stack_letters(
    rng: np.random.Generator, img: np.ndarray, x: float, top: int, ch: int, ink: Color
) -> float:
    """Small stacked characters beside the serial (California "DP", dealer, MTA): unlabelled."""
    word = SMALL_STACKS[int(rng.integers(len(SMALL_STACKS)))][:2]
    fonts, _ = plate_fonts()
    font = fonts[int(rng.integers(len(fonts)))]
    ph = max(3, int(ch * 0.38))
    for i, c in enumerate(word):
        g = glyph_mask(font, c)
        gw = max(2, int(g.shape[1] / g.shape[0] * ph))
        paste(
            img,
            cv2.resize(g, (gw, ph), interpolation=cv2.INTER_AREA),
            round(x),
            top + int(i * ch * 0.55),
            ink,
        )
    return x + 0.5 * ch


def frame(
    rng: np.random.Generator, img: np.ndarray, index_map: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A dealer / vanity frame around the plate, with unlabelled text on its lower bar."""
    h, w = img.shape[:2]
    t, s, b = (
        int(h * rng.uniform(0.04, 0.1)),
        int(w * rng.uniform(0.02, 0.05)),
        int(h * rng.uniform(0.1, 0.2)),
    )
    col = jitter(rng, (25, 25, 25), 20) if rng.random() < 0.7 else jitter(rng, (180, 180, 185), 20)
    out = np.empty((h + t + b, w + 2 * s, 3), np.float32)
    out[:] = col
    out[t : t + h, s : s + w] = img
    idx = np.zeros(out.shape[:2], np.uint8)
    idx[t : t + h, s : s + w] = index_map
    text_col = (235.0, 235.0, 235.0) if col[0] < 100 else (30.0, 30.0, 30.0)
    band = (t + h + max(1, b // 8), t + h + b - max(1, b // 8))
    sub = out[band[0] : band[1]]
    if sub.shape[0] >= 5:
        decor_text(rng, out, DEALER_WORDS, band, jitter(rng, text_col, 20))
    if t >= 6 and rng.random() < 0.4:  # phone numbers / dealer names on the top bar too
        words = ("718-377-3700", "(914) 961-5400", "HONDA.NET", *DEALER_WORDS)
        decor_text(rng, out, words, (1, t - 1), jitter(rng, text_col, 20))
    return out, idx


def side_graphic(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """A many-coloured picture in the serial's row (box: x1, y1, x2, y2): a seal, a skyline, a
    flag or a figure, as the specialty and state-art plates carry. Real detectors otherwise read
    their curves and corners as stray characters ("3", "5", "S")."""
    x1, y1, x2, y2 = box
    gw, gh = x2 - x1, y2 - y1
    if gw < 6 or gh < 6:
        return
    colors = [jitter(rng, (float(rng.uniform(0, 255)), 120, 150), 70) for _ in range(4)]
    thick = max(1, min(gw, gh) // 12)
    kind = rng.random()
    if kind < 0.3:  # a seal: disc, rings, marks inside
        c, r = ((x1 + x2) // 2, (y1 + y2) // 2), max(3, min(gw, gh) // 2 - 1)
        cv2.circle(img, c, r, colors[0], -1)
        cv2.circle(img, c, max(2, int(r * 0.8)), colors[1], thick)
        for _ in range(int(rng.integers(3, 8))):
            p = (
                int(rng.uniform(c[0] - r / 2, c[0] + r / 2)),
                int(rng.uniform(c[1] - r / 2, c[1] + r / 2)),
            )
            q = (p[0] + int(rng.uniform(-r / 2, r / 2)), p[1] + int(rng.uniform(-r / 2, r / 2)))
            cv2.line(img, p, q, colors[2], thick)
    elif kind < 0.55:  # a skyline or barn: blocks with pitched roofs
        x = x1
        while x < x2 - 2:
            bw = int(rng.uniform(0.15, 0.4) * gw) + 2
            top = int(rng.uniform(y1, y1 + gh * 0.6))
            col = colors[int(rng.integers(4))]
            cv2.rectangle(
                img, (x, top), (min(x2, x + bw), y2), col, -1 if rng.random() < 0.6 else thick
            )
            roof = np.array(
                [[x, top], [x + bw // 2, max(y1, top - bw // 2)], [x + bw, top]], np.int32
            )
            cv2.polylines(img, [roof], False, col, thick)
            x += bw + int(rng.uniform(0, 0.1) * gw)
    elif kind < 0.75:  # a flag or shield in quarters, some striped
        mx = int(rng.uniform(x1 + gw / 3, x2 - gw / 3))
        my = int(rng.uniform(y1 + gh / 3, y2 - gh / 3))
        quarters = [(x1, y1, mx, my), (mx, y1, x2, my), (x1, my, mx, y2), (mx, my, x2, y2)]
        for i, (a, b, right, d) in enumerate(quarters):
            cv2.rectangle(img, (a, b), (right, d), colors[i], -1)
            if rng.random() < 0.4:
                for sy in range(b, d, max(2, thick * 3)):
                    cv2.line(img, (a, sy), (right, sy), colors[(i + 1) % 4], 1)
    else:  # a figure: a few thick curved strokes
        for _ in range(int(rng.integers(2, 6))):
            pts = np.stack([rng.uniform(x1, x2, 4), rng.uniform(y1, y2, 4)], 1).astype(np.int32)
            cv2.polylines(img, [pts], False, colors[int(rng.integers(4))], thick * 2)
