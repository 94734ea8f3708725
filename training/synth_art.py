"""Pictures, printed words, sticker boxes and separators of the state plate designs.

Everything here is unlabelled: it paints the plate image only, never the character index map,
so a state name, a skyline or a Texas silhouette between the groups teaches the detector what
is not a character.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth_decor import Color, emblem_mask, paste
from training.synth_decor import jitter as _jitter
from training.synth_fonts import decor_fonts, text_mask
from training.synth_states import Art, Legend

__all__ = ["STATE_SEPARATORS", "legend", "paint", "state_separator", "sticker"]

STATE_SEPARATORS = ("outline", "keystone", "tristar", "oranges", "tx")


def _c(rng: np.random.Generator, color: Color, amount: float = 10.0) -> Color:
    return _jitter(rng, color, amount)


def _poly(w: int, h: int, pts: list[tuple[float, float]]) -> np.ndarray:
    return np.array([[x * w, y * h] for x, y in pts], np.int32)


def _star(cx: float, cy: float, r: float) -> np.ndarray:
    ang = -np.pi / 2 + np.arange(10) * np.pi / 5
    rad = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)


def paint(rng: np.random.Generator, img: np.ndarray, art: Art) -> None:
    """Paint one picture layer in place (its placement jitters a little from plate to plate)."""
    h, w = img.shape[:2]
    cols = [_c(rng, c) for c in art.colors] or [_c(rng, (128.0, 128.0, 128.0))]
    k, a, b = art.kind, art.a, art.b
    if k == "grad":  # vertical fade between rows a and b
        y0, y1 = int(a * h), max(int(a * h) + 1, int(b * h))
        fade = np.linspace(0, 1, y1 - y0, dtype=np.float32)[:, None, None]
        upper, lower = np.array(cols[0], np.float32), np.array(cols[1], np.float32)
        img[y0:y1] = upper * (1 - fade) + lower * fade
    elif k == "band":
        cv2.rectangle(img, (0, int(a * h)), (w, int(b * h)), cols[0], -1)
    elif k == "rule":
        t = max(1, int(b * h))
        cv2.rectangle(
            img, (int(0.04 * w), int(a * h)), (int(0.96 * w), int(a * h) + t), cols[0], -1
        )
    elif k == "border":
        t = max(1, h // 45)
        cv2.rectangle(img, (2 * t, 2 * t), (w - 1 - 2 * t, h - 1 - 2 * t), cols[0], t)
    elif k in ("hills", "waves"):  # a rolling edge along the bottom (a > 0.5) or top
        xs = np.linspace(0, w, 9)
        n = 1 if k == "hills" else 3
        ys = a * h + b * h * np.sin(xs / w * np.pi * n * 2 + rng.uniform(0, 6)) * 0.5
        edge = h if a > 0.5 else 0
        for i, col in enumerate(cols):
            off = i * 0.04 * h * (1 if edge else -1)
            pts = np.vstack([np.stack([xs, ys + off], 1), [[w, edge], [0, edge]]])
            cv2.fillPoly(img, [pts.astype(np.int32)], col)
    elif k == "skyline":  # pale blocks standing on row a+b, at most b tall
        x, base = 0, int((a + b) * h)
        while x < w:
            bw = int(rng.uniform(0.03, 0.08) * w)
            top = base - int(rng.uniform(0.3, 1.0) * b * h)
            cv2.rectangle(img, (x, top), (x + bw, base), cols[0], -1)
            x += bw + int(rng.uniform(0, 0.02) * w)
    elif k == "mountain":  # a large pale peak behind the serial (Mt. Rainier)
        peak = (a + rng.uniform(-0.1, 0.1), b)
        cv2.fillPoly(img, [_poly(w, h, [(0.05, 0.95), peak, (0.95, 0.95)])], cols[0])
    elif k == "sun":  # California's 1987 sunset: a sun behind stripes
        c, r = (w // 2, int(a * h + b * h)), int(b * h)
        cv2.circle(img, c, r, cols[0], -1)
        for i in range(4):
            y = c[1] - r + int((i + 0.5) * r / 2)
            cv2.rectangle(img, (c[0] - 2 * r, y), (c[0] + 2 * r, y + max(1, r // 8)), cols[1], -1)
    elif k == "guilloche":  # Texas's faint wavy security lines
        xs = np.linspace(0, w, 40)
        for i in range(6):
            ys = h * (0.15 + 0.14 * i) + 0.03 * h * np.sin(xs / w * 12 + i)
            cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, cols[0], 1)
    elif k == "star":
        r = a * h
        cv2.fillPoly(img, [_star(0.1 * w, 0.15 * h, r)], cols[0])
    elif k == "barcode":
        x = int(0.84 * w)
        for i in range(int(rng.integers(10, 18))):
            xi = x + i * max(1, w // 180) * 2
            cv2.line(img, (xi, int(0.86 * h)), (xi, int(0.95 * h)), cols[0], max(1, w // 200))
    elif k in ("blob", "seal"):  # a pale state silhouette or seal behind the serial
        m = emblem_mask(rng, int(0.7 * h), int(0.5 * w if k == "blob" else 0.35 * h))
        paste(img, m, int(w / 2 - m.shape[1] / 2), int(0.15 * h), cols[0])
    elif k == "portrait":  # Lincoln at the left edge
        cv2.ellipse(
            img,
            (int(0.07 * w), int(0.45 * h)),
            (int(0.05 * w), int(0.2 * h)),
            0,
            0,
            360,
            cols[0],
            -1,
        )
        cv2.ellipse(
            img,
            (int(0.07 * w), int(0.95 * h)),
            (int(0.08 * w), int(0.25 * h)),
            0,
            180,
            360,
            cols[0],
            -1,
        )
    elif k == "tree":  # Georgia's peach tree at the left edge, peaches at the corners
        cv2.line(img, (int(0.05 * w), h), (int(0.06 * w), int(0.3 * h)), (40.0, 60.0, 90.0), 3)
        for _ in range(12):
            p = (int(rng.uniform(0, 0.14) * w), int(rng.uniform(0.05, 0.5) * h))
            cv2.circle(img, p, max(2, int(0.04 * h)), cols[0], -1)
        for fx in (0.04, 0.96):
            cv2.circle(img, (int(fx * w), int(0.88 * h)), max(3, int(0.07 * h)), cols[1], -1)
    elif k == "panel":  # white rounded panel for Georgia's county name
        cv2.rectangle(img, (int(0.3 * w), int(a * h)), (int(0.7 * w), int(b * h)), cols[0], -1)
    elif k == "grass":  # North Carolina's sea oats along the bottom
        for _ in range(14):
            x = int(rng.uniform(0, w))
            cv2.line(
                img,
                (x, h),
                (x + int(rng.uniform(-0.03, 0.03) * w), int(rng.uniform(0.75, 0.9) * h)),
                cols[0],
                max(1, h // 60),
            )
    elif k == "bridge":  # the Mackinac Bridge: water, two towers, a deck
        cv2.rectangle(img, (0, int(0.82 * h)), (w, h), cols[1], -1)
        cv2.line(img, (0, int(0.75 * h)), (w, int(0.75 * h)), cols[0], max(1, h // 40))
        for fx in (0.03, 0.95):  # at the edges: a tower beside a glyph would look like a 1
            cv2.rectangle(
                img,
                (int(fx * w), int(0.1 * h)),
                (int(fx * w) + max(2, w // 80), int(0.82 * h)),
                cols[0],
                -1,
            )
    elif k == "countybox":  # Indiana's county number at the bottom right
        x, y = int(0.82 * w), int(0.8 * h)
        cv2.rectangle(img, (x, y), (x + int(0.12 * w), int(0.96 * h)), cols[0], -1)
    elif k == "barn":  # Wisconsin's top-right picture: sun, hills, a red barn
        cv2.circle(img, (int(0.8 * w), int(0.1 * h)), int(0.06 * h), cols[0], -1)
        cv2.ellipse(
            img,
            (int(0.85 * w), int(0.2 * h)),
            (int(0.14 * w), int(0.05 * h)),
            0,
            180,
            360,
            cols[1],
            -1,
        )
        cv2.rectangle(
            img, (int(0.88 * w), int(0.08 * h)), (int(0.93 * w), int(0.19 * h)), cols[2], -1
        )
    else:
        raise ValueError(f"unknown art kind {k!r}")


def _shear(m: np.ndarray, slant: float) -> np.ndarray:
    h, w = m.shape
    pad = int(abs(slant) * h) + 1
    mat = np.array([[1, -slant, slant * h], [0, 1, 0]], np.float32)
    return cv2.warpAffine(m, mat, (w + pad, h), flags=cv2.INTER_LINEAR)


def legend(rng: np.random.Generator, img: np.ndarray, item: Legend, band: tuple[int, int]) -> None:
    """Print one of the legend's words inside the band (rows top, bottom) at its place."""
    h, w = img.shape[:2]
    top, bottom = band
    height = int(min(bottom - top, item.size * h * rng.uniform(0.85, 1.1)))
    if height < 4:
        return
    word = item.words[int(rng.integers(len(item.words)))]
    fonts = decor_fonts()
    m = text_mask(fonts[int(rng.integers(len(fonts)))], word, max(12, height * 2))
    if m.size == 0:
        return
    if item.italic:
        m = _shear(m, float(rng.uniform(0.15, 0.3)))
    width = min(int(m.shape[1] * height / m.shape[0] * rng.uniform(0.85, 1.15)), int(w * 0.9))
    m = cv2.resize(m, (max(1, width), height), interpolation=cv2.INTER_AREA)
    if item.where.endswith("left"):
        x = int(w * rng.uniform(0.04, 0.08))
    elif item.where.endswith("right"):
        x = int(w * rng.uniform(0.92, 0.96)) - width
    else:
        x = int((w - width) / 2 + rng.normal(0, 0.02 * w))
    y = int(rng.uniform(top, max(top, bottom - height) + 1))
    paste(img, m, x, y, _c(rng, item.color, 8))


def sticker(
    rng: np.random.Generator, img: np.ndarray, corner: str, limit: tuple[int, int], ink: Color
) -> None:
    """A registration sticker box in a corner, kept between rows limit (clear of the serial)."""
    h, w = img.shape[:2]
    sw, sh = int(w * rng.uniform(0.1, 0.15)), int(h * rng.uniform(0.12, 0.18))
    x = int(w * 0.04) if corner[1] == "l" else int(w * 0.96) - sw
    y = limit[0] if corner[0] == "t" else limit[1] - sh
    if sh < 3 or y < 0 or y + sh > h or (corner[0] == "t" and y + sh > limit[1]):
        return
    if rng.random() < 0.7:  # a sticker, in this year's colour
        col = _jitter(rng, (float(rng.uniform(0, 255)), 160, 200), 70)
        cv2.rectangle(img, (x, y), (x + sw, y + sh), col, -1)
    else:  # the empty box printed on the plate
        cv2.rectangle(img, (x, y), (x + sw, y + sh), _c(rng, ink, 20), max(1, h // 70))


def state_separator(
    rng: np.random.Generator,
    img: np.ndarray,
    kind: str,
    box: tuple[float, float, float, float],
    ink: Color,
) -> None:
    """The state's mark between the serial's groups, inside box (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    bw, bh = max(3, int(x2 - x1)), max(3, int(y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if kind in ("outline", "tx", "keystone"):
        if kind == "keystone":
            pts = [(0.1, 0.0), (0.9, 0.0), (0.75, 0.75), (0.5, 1.0), (0.25, 0.75)]
        elif kind == "tx":  # panhandle, Gulf coast, Rio Grande: a Texas-ish outline
            pts = [
                (0.2, 0),
                (0.4, 0),
                (0.4, 0.3),
                (1, 0.4),
                (1, 0.65),
                (0.7, 0.85),
                (0.6, 1),
                (0.45, 0.75),
                (0.3, 0.55),
                (0, 0.5),
                (0.2, 0.35),
            ]
        else:  # a state outline with a ragged edge
            n = 9
            ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)
            rad = rng.uniform(0.6, 1.0, n)
            pts = list(
                zip(0.5 + 0.5 * rad * np.cos(ang), 0.5 + 0.5 * rad * np.sin(ang), strict=True)
            )
        poly = np.array([[x1 + px * bw, y1 + py * bh] for px, py in pts], np.int32)
        cv2.fillPoly(img, [poly], ink, cv2.LINE_AA)
    elif kind == "tristar":  # Tennessee: red ring, blue disc, three white stars
        r = max(2, int(min(bw, bh) / 2))
        cv2.circle(img, (int(cx), int(cy)), r, _c(rng, (40.0, 30.0, 200.0)), -1)
        cv2.circle(img, (int(cx), int(cy)), max(1, int(r * 0.8)), _c(rng, (140.0, 60.0, 20.0)), -1)
        for deg in (-90, 30, 150):
            sx = cx + 0.4 * r * float(np.cos(np.deg2rad(deg)))
            sy = cy + 0.4 * r * float(np.sin(np.deg2rad(deg)))
            cv2.fillPoly(img, [_star(sx, sy, 0.3 * r)], (245.0, 245.0, 245.0))
    elif kind == "oranges":  # Florida: two oranges and their leaves between the groups
        r = max(2, int(min(bw / 2, bh) / 2))
        for dx in (-0.5, 0.5):
            c = (int(cx + dx * r), int(cy + 0.15 * bh))
            cv2.circle(img, c, r, _c(rng, (30.0, 140.0, 245.0)), -1)
        cv2.ellipse(
            img,
            (int(cx), int(cy - 0.35 * bh)),
            (max(1, r), max(1, r // 3)),
            -20,
            0,
            360,
            _c(rng, (40.0, 120.0, 30.0)),
            -1,
        )
    else:
        raise ValueError(f"unknown state separator {kind!r}")
