"""Serial lines for fine-tuning the line recogniser: generated, DarkPlate's, and pseudo-labelled.

Each sample is the region the fused reader hands the recogniser (reader.fusion.layout: the
characters' boxes widened by MARGIN_X / MARGIN_Y of the median character height), with those
margins jittered, since the detector's boxes never sit exactly on the ink, and the text. Sources:

- `synthetic`: `training.synth`'s plates, mixing the free generic renderer (Debian fonts,
  `render_generic`) and the state-faithful one (`render_state`) half and half: the state designs
  alone hurt the detector, and the recogniser should not learn only their dies;
- `darkplate`: DarkPlate's real BC crops (../shared/data/train_darkplate, MIT; credit
  "DarkPlate by Stéphane Charette (MIT)"), their YOLO character boxes giving text and line;
- `pseudo`: real Open Images crops labelled by `training.line_labels` (three readers agree).

Real crops are seen again and again, so they get photometric damage (blur, noise, contrast,
JPEG) as well as the box jitter. Nothing here may read `real_us_dev`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from reader.fusion import MARGIN_X, MARGIN_Y
from training.line_labels import read_manifest

__all__ = [
    "GENERIC_SHARE",
    "LineSample",
    "RealLines",
    "augment",
    "crop_line",
    "darkplate_lines",
    "pseudo_lines",
    "real_line",
    "sample_stream",
    "synthetic_line",
]

GENERIC_SHARE: Final = 0.5  # generated plates from the free renderer; the rest state designs
_JITTER: Final = 0.6  # margins drawn from (1 +- this) x the reader's
_ROW_SPREAD: Final = 0.6  # box centres further apart than this many heights: not one row

ImageU8 = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class LineSample:
    line: ImageU8  # BGR, the line region only
    text: str  # 0-9 A-Z


@dataclass(frozen=True, slots=True)
class RealLines:
    """Real crops with their serial's character boxes (or just the line box) and text."""

    images: tuple[Path, ...]
    boxes: tuple[tuple[Box, ...], ...]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)


def crop_line(
    rng: np.random.Generator, image: ImageU8, boxes: Sequence[Box], *, jitter: bool = True
) -> ImageU8 | None:
    """The line region around `boxes` (x1, y1, x2, y2), margins as the reader's, jittered;
    None if the boxes do not make one row."""
    array = np.asarray(boxes, dtype=np.float64)
    char_h = float(np.median(array[:, 3] - array[:, 1]))
    centres = (array[:, 1] + array[:, 3]) / 2
    if char_h <= 1 or centres.max() - centres.min() > _ROW_SPREAD * char_h:
        return None
    margins = [MARGIN_X, MARGIN_Y, MARGIN_X, MARGIN_Y]
    if jitter:
        margins = [m * float(rng.uniform(1 - _JITTER, 1 + _JITTER)) for m in margins]
        # The detector misplaces the ends by a fraction of a character too.
        margins = [m + float(rng.normal(0, 0.05)) for m in margins]
    height, width = image.shape[:2]
    x1 = max(int(array[:, 0].min() - margins[0] * char_h), 0)
    y1 = max(int(array[:, 1].min() - margins[1] * char_h), 0)
    x2 = min(math.ceil(array[:, 2].max() + margins[2] * char_h), width)
    y2 = min(math.ceil(array[:, 3].max() + margins[3] * char_h), height)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    return image[y1:y2, x1:x2]


def augment(rng: np.random.Generator, line: ImageU8) -> ImageU8:
    """Photometric damage for the real lines, which are few and seen many times."""
    out: npt.NDArray[Any] = line.astype(np.float32)
    if rng.random() < 0.5:
        out = (out - out.mean()) * float(rng.uniform(0.6, 1.3)) + out.mean()
        out += float(rng.uniform(-30, 30))
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if rng.random() < 0.3:
        out += rng.normal(0, float(rng.uniform(2, 10)), out.shape).astype(np.float32)
    if rng.random() < 0.3:  # resolution: down and back up, as a distant plate
        h, w = out.shape[:2]
        f = float(rng.uniform(0.35, 0.8))
        small = cv2.resize(out, (max(int(w * f), 4), max(int(h * f), 4)))
        out = cv2.resize(small, (w, h))
    result: ImageU8 = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(25, 80))
        ok, buf = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            result = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8)
    return result


def synthetic_line(rng: np.random.Generator) -> LineSample:
    """One generated plate's serial line."""
    from training.synth_augment import camera
    from training.synth_render import render_generic
    from training.synth_state_plate import render_state
    from training.synth_states import pick_design

    while True:
        flat = render_generic(rng) if rng.random() < GENERIC_SHARE else None
        if flat is None:
            flat = render_state(rng, pick_design(rng))
        for _ in range(4):  # as training.synth.render_plate: redraw an unreadable camera
            image, boxes, contrast = camera(rng, flat)
            if contrast >= 18.0:
                break
        ordered = sorted(boxes, key=lambda b: b[0])
        text = "".join(flat.text[k] for k, *_ in ordered)
        line = crop_line(rng, image, [(x1, y1, x2, y2) for _, x1, y1, x2, y2 in ordered])
        if line is not None and text:
            return LineSample(line, text)


def darkplate_lines(root: Path) -> RealLines:
    """DarkPlate's crops (`root`/images, `root`/labels in YOLO form) as lines."""
    images, all_boxes, texts = [], [], []
    for label in sorted((root / "labels").glob("*.txt")):
        image = root / "images" / f"{label.stem}.jpg"
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        if not rows or not image.is_file():
            continue
        chars = sorted(
            (float(cx), float(cy), float(w), float(h), int(c)) for c, cx, cy, w, h in rows
        )
        # Normalised boxes; scaled to pixels when the image is read.
        all_boxes.append(
            tuple((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for cx, cy, w, h, _ in chars)
        )
        texts.append("".join(CLASS_NAMES[c] for *_, c in chars))
        images.append(image)
    return RealLines(tuple(images), tuple(all_boxes), tuple(texts))


def pseudo_lines(manifest: Path) -> RealLines:
    """The kept crops of a `training.line_labels` manifest: one box, the line's (in pixels,
    made relative when read), so its margins are the reader's already."""
    kept = read_manifest(manifest)
    return RealLines(
        tuple(Path(k.file) for k in kept),
        tuple((tuple(float(v) for v in k.box),) for k in kept),  # type: ignore[misc]
        tuple(k.text for k in kept),
    )


def real_line(
    rng: np.random.Generator, lines: RealLines, index: int, *, normalised: bool
) -> LineSample | None:
    """Sample `index` of `lines`, cropped (boxes `normalised` to 0..1, else the line box in
    pixels, jittered by a few percent) and damaged."""
    read = cv2.imread(str(lines.images[index]), cv2.IMREAD_COLOR)
    if read is None:
        raise FileNotFoundError(lines.images[index])
    image: ImageU8 = np.asarray(read, dtype=np.uint8)
    height, width = image.shape[:2]
    if normalised:
        boxes = [
            (x1 * width, y1 * height, x2 * width, y2 * height)
            for x1, y1, x2, y2 in lines.boxes[index]
        ]
        line = crop_line(rng, image, boxes)
    else:
        x1, y1, x2, y2 = lines.boxes[index][0]
        dx, dy = 0.08 * (x2 - x1) / max(len(lines.texts[index]), 1), 0.06 * (y2 - y1)
        jx1, jx2 = (float(rng.normal(0, dx)) for _ in range(2))
        jy1, jy2 = (float(rng.normal(0, dy)) for _ in range(2))
        box = (
            int(np.clip(x1 + jx1, 0, width - 4)),
            int(np.clip(y1 + jy1, 0, height - 4)),
            int(np.clip(x2 + jx2, 0, width)),
            int(np.clip(y2 + jy2, 0, height)),
        )
        line = (
            image[box[1] : box[3], box[0] : box[2]]
            if box[2] - box[0] >= 4 and box[3] - box[1] >= 4
            else None
        )
    if line is None or line.size == 0:
        return None
    return LineSample(augment(rng, np.ascontiguousarray(line)), lines.texts[index])


def sample_stream(
    rng: np.random.Generator,
    *,
    darkplate: RealLines | None,
    pseudo: RealLines | None,
    weights: tuple[float, float, float],
) -> Iterator[LineSample]:
    """Endless samples: synthetic, DarkPlate and pseudo-labelled lines at `weights` (a source
    that is absent gives its share to the synthetic lines)."""
    shares = np.array(
        [
            weights[0],
            weights[1] if darkplate is not None and len(darkplate) else 0.0,
            weights[2] if pseudo is not None and len(pseudo) else 0.0,
        ]
    )
    shares = shares / shares.sum()
    while True:
        source = int(rng.choice(3, p=shares))
        if source == 0:
            yield synthetic_line(rng)
            continue
        lines = darkplate if source == 1 else pseudo
        assert lines is not None
        sample = real_line(rng, lines, int(rng.integers(len(lines))), normalised=source == 1)
        if sample is not None:
            yield sample
