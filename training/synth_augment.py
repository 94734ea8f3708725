"""Camera effects for a flat plate: surroundings, perspective, detector-like crop, image damage.

Geometry warps the plate and its character index map with the same homography, so the boxes
read from the warped map are the warped ink, not a loose box around rotated corners.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth_serial import FlatPlate

Box = tuple[int, float, float, float, float]  # character index, x1, y1, x2, y2 (pixels)


def _surround(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Car body / bumper around the plate: a dull colour with a gradient and some structure."""
    base = rng.uniform(10, 220, 3).astype(np.float32)
    # Real surroundings are mostly black/grey/silver bumpers; car colours come muted.
    base = base.mean() + (0.0 if rng.random() < 0.6 else 0.5) * (base - base.mean())
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += np.linspace(-1, 1, h, dtype=np.float32)[:, None, None] * float(rng.uniform(-40, 40))
    for _ in range(int(rng.integers(0, 4))):  # bumper edges, lights, shadows
        y = int(rng.uniform(0, h))
        stripe = (float(rng.uniform(0, 255)) + rng.normal(0, 20, 3)).clip(0, 255).tolist()
        cv2.rectangle(img, (0, y), (w, y + int(rng.uniform(2, h / 6))), stripe, -1)
    img += rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return img


def _light_effects(rng: np.random.Generator, img: np.ndarray) -> None:
    """Glare blobs and cast shadows, in place, before the camera blurs and samples the scene."""
    h, w = img.shape[:2]
    if rng.random() < 0.2:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.1, 0.5) * w
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * float(rng.uniform(20, 80))
    if rng.random() < 0.2:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        d = (xx - w / 2) * np.cos(ang) + (yy - h / 2) * np.sin(ang) - rng.uniform(-0.3, 0.3) * w
        soft = 1 / (1 + np.exp(-d / max(1.0, rng.uniform(1, 0.08 * w))))
        img *= (1 - soft * float(rng.uniform(0.3, 0.65)))[..., None]


def _occlude(rng: np.random.Generator, img: np.ndarray, boxes: list[Box]) -> None:
    """A tow hitch / leaf / finger over an edge, kept off most of every character."""
    if rng.random() > 0.1 or not boxes:
        return
    h, w = img.shape[:2]
    bx1 = min(b[1] for b in boxes)
    by2 = max(b[4] for b in boxes)
    bh = by2 - min(b[2] for b in boxes)
    col = rng.uniform(0, 120, 3).tolist()
    if rng.random() < 0.5:  # from below, over at most a fifth of the character height
        x1 = int(rng.uniform(0, w * 0.7))
        cv2.rectangle(
            img,
            (x1, int(by2 - bh * rng.uniform(0, 0.2))),
            (x1 + int(rng.uniform(0.1, 0.3) * w), h),
            col,
            -1,
        )
    else:  # from the left side, up to the first character's edge
        cv2.rectangle(img, (0, int(rng.uniform(0, h / 2))), (int(bx1 - 1), h), col, -1)


def _boxes_from_map(index_map: np.ndarray, n: int) -> list[Box]:
    out: list[Box] = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(index_map == k)
        if len(xs) == 0:
            continue
        out.append(
            (k - 1, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        )
    return out


def _target_height(rng: np.random.Generator) -> int:
    """Output crop height, matched to the real dev crops (5th/25th/50th/75th percentile heights
    50/84/115/154 px); a few smaller ones (down to ~28 px) for distant traffic-camera plates."""
    r = rng.random()
    if r < 0.08:
        return int(rng.uniform(28, 50))
    if r < 0.33:
        return int(rng.uniform(50, 90))
    return int(rng.uniform(90, 200))


def legibility(img: np.ndarray, ink: np.ndarray) -> float:
    """Grey-level gap between the serial's ink and the plate around it (0 when unknown).

    Stacked effects (glare + fog + blur + tiny size) can erase a serial entirely; such a crop
    would teach the model to hallucinate, so callers re-draw the camera when this is low.
    """
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return 0.0
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    inside, region = grey[box], ink[box]
    if region.all() or not region.any():
        return 0.0
    return float(abs(np.median(inside[region]) - np.median(inside[~region])))


def camera(rng: np.random.Generator, flat: FlatPlate) -> tuple[np.ndarray, list[Box], float]:
    """Place, warp, crop and degrade a flat plate: BGR uint8 crop, char boxes, legibility."""
    ph, pw = flat.image.shape[:2]
    n = len(flat.text)
    pad = int(0.35 * pw)
    canvas = _surround(rng, ph + 2 * pad, pw + 2 * pad)
    canvas[pad : pad + ph, pad : pad + pw] = flat.image
    idx = np.zeros(canvas.shape[:2], np.uint8)
    idx[pad : pad + ph, pad : pad + pw] = flat.index_map

    src = np.array([[pad, pad], [pad + pw, pad], [pad + pw, pad + ph], [pad, pad + ph]], np.float32)
    c = src.mean(0)
    ang = np.deg2rad(np.clip(rng.normal(0, 3.0), -10, 10))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]], np.float32)
    dst = (src - c) @ rot.T + c
    dst += rng.uniform(-1, 1, (4, 2)).astype(np.float32) * np.array([pw, ph], np.float32) * 0.05
    shear = rng.normal(0, 0.06) * ph  # horizontal shear from cameras off to one side
    dst[:2, 0] += shear / 2
    dst[2:, 0] -= shear / 2
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpPerspective(
        canvas, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    widx = cv2.warpPerspective(idx, m, size, flags=cv2.INTER_NEAREST, borderValue=0)
    boxes = _boxes_from_map(widx, n)
    _light_effects(rng, warped)
    _occlude(rng, warped, boxes)

    # Detector-like crop: the plate quad plus 0-15 % margins, sometimes slightly cut, but never
    # through a character (a cut character would make its label wrong).
    qx1, qy1 = dst.min(0)
    qx2, qy2 = dst.max(0)
    qw, qh = qx2 - qx1, qy2 - qy1
    x1 = qx1 - rng.uniform(-0.03, 0.15) * qw
    x2 = qx2 + rng.uniform(-0.03, 0.15) * qw
    y1 = qy1 - rng.uniform(-0.06, 0.15) * qh
    y2 = qy2 + rng.uniform(-0.06, 0.15) * qh
    if boxes:
        x1 = min(x1, min(b[1] for b in boxes) - 1)
        y1 = min(y1, min(b[2] for b in boxes) - 1)
        x2 = max(x2, max(b[3] for b in boxes) + 1)
        y2 = max(y2, max(b[4] for b in boxes) + 1)
    x1i, y1i = max(0, int(x1)), max(0, int(y1))
    x2i, y2i = min(size[0], int(np.ceil(x2))), min(size[1], int(np.ceil(y2)))
    crop = warped[y1i:y2i, x1i:x2i]
    ink = widx[y1i:y2i, x1i:x2i] > 0
    boxes = [(k, a - x1i, b - y1i, cc - x1i, d - y1i) for k, a, b, cc, d in boxes]

    if rng.random() < 0.4:
        crop = cv2.GaussianBlur(crop, (0, 0), float(rng.uniform(0.5, 1.6)))
    elif rng.random() < 0.15:
        k = int(rng.integers(3, 8))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2] = 1.0 / k
        rot_m = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        kern = cv2.warpAffine(kern, rot_m, (k, k)).astype(np.float32)
        crop = cv2.filter2D(crop, -1, kern / max(kern.sum(), 1e-6))

    # Global colour: exposure, contrast, colour cast, sometimes monochrome (IR traffic cameras).
    crop = crop * float(rng.uniform(0.7, 1.2)) + float(rng.uniform(-30, 20))
    crop *= rng.uniform(0.92, 1.08, 3).astype(np.float32)
    if rng.random() < 0.12:
        crop[:] = crop.mean(2, keepdims=True)
    crop = np.clip(crop, 0, 255)
    if rng.random() < 0.3:
        gamma = float(rng.uniform(0.6, 1.6))
        crop = (255.0 * (crop / 255.0) ** gamma).astype(np.float32)

    ch, cw = crop.shape[:2]
    th = _target_height(rng)
    tw = max(8, round(cw * th / ch))
    out = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_AREA)
    if th >= 36 and rng.random() < 0.25:  # a smaller sensor image, upscaled by the camera
        # never below ~18 px of plate height: smaller than that the serial is unreadable
        f = float(rng.uniform(max(0.4, 18 / th), 0.8))
        small = cv2.resize(
            out, (max(4, int(tw * f)), max(4, int(th * f))), interpolation=cv2.INTER_AREA
        )
        out = cv2.resize(small, (tw, th), interpolation=cv2.INTER_LINEAR)
    sx, sy = tw / cw, th / ch
    boxes = [(k, a * sx, b * sy, c2 * sx, d * sy) for k, a, b, c2, d in boxes]
    out = out + rng.normal(0, float(rng.uniform(0, 7)), out.shape).astype(np.float32)
    img = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        q = int(rng.integers(15 if th >= 40 else 35, 70))  # tiny crops cannot take q15
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    boxes = [
        (k, max(0.0, a), max(0.0, b), min(float(tw), c2), min(float(th), d))
        for k, a, b, c2, d in boxes
    ]
    ink_small = cv2.resize(ink.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST) > 0
    return img, boxes, legibility(img, ink_small)
