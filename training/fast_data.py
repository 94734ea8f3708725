"""Whole plate crops for the fast reader (reader.fast_reader): generated, DarkPlate's, distilled.

The fast reader reads the whole crop, as the upstream detector cut it, so its samples are whole
crops with the serial's text and, where known, the serial row's top and bottom (the reader's
character boxes take the row's height from a small head trained on them). Sources:

- `synthetic`: a dataset `training.synth` wrote (`plate-ocr synth DIR --count N`: the Debian-font
  generic renderer and the state-faithful one, half and half, cropped as a detector crops),
  read back with its YOLO character boxes. Rendering costs 15 ms a plate on this CPU, more
  than a training step's share, so the plates are drawn once and jittered anew each time;
- `darkplate`: DarkPlate's real BC crops (../shared/data/train_darkplate, MIT; credit
  "DarkPlate by Stéphane Charette (MIT)"), in the same YOLO form;
- `distilled`: real Open Images crops read by the fused reader, the fast reader's teacher, kept
  where its calibrated confidence is high (training.fast_labels writes that manifest).

Every sample is jittered as a detector's crop varies (each side moved by up to `_CROP_JITTER`
of the crop, a small rotation) and gets training.line_data's photometric damage, since each
is seen many times. Nothing here may read `real_us_dev`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from reader.fast_reader import grey_input
from training.line_data import augment

__all__ = [
    "CropSample",
    "Crops",
    "distilled_crops",
    "jitter",
    "sample_stream",
    "yolo_crops",
]

_CROP_JITTER: Final = 0.06  # each side of the crop moves by up to this share of its size
_MAX_ROTATION_DEG: Final = 3.0

ImageU8 = npt.NDArray[np.uint8]
Row = tuple[float, float]  # the serial row's top and bottom, as shares of the crop's height


@dataclass(frozen=True, slots=True)
class CropSample:
    image: ImageU8  # grey, the reader's input size (reader.fast_reader.INPUT_HW)
    text: str  # 0-9 A-Z
    row: Row | None  # None where the source does not say


@dataclass(frozen=True, slots=True)
class Crops:
    images: tuple[Path, ...]
    texts: tuple[str, ...]
    rows: tuple[Row | None, ...]

    def __len__(self) -> int:
        return len(self.images)


def jitter(rng: np.random.Generator, image: ImageU8, row: Row | None) -> tuple[ImageU8, Row | None]:
    """`image` as another detector might have cut it (sides moved, a little rotated), with the
    row mapped along; replicated edges where the crop grows past the image."""
    h, w = image.shape[:2]
    dx1, dx2 = rng.uniform(-_CROP_JITTER, _CROP_JITTER, 2) * w
    dy1, dy2 = rng.uniform(-_CROP_JITTER, _CROP_JITTER, 2) * h
    x1, y1, x2, y2 = dx1, dy1, w + dx2, h + dy2
    angle = float(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    # Rotate about the centre, then map the jittered crop onto the output's own size.
    scale = np.array(
        [[w / (x2 - x1), 0, -x1 * w / (x2 - x1)], [0, h / (y2 - y1), -y1 * h / (y2 - y1)]]
    )
    matrix = scale @ np.vstack([rotation, [0, 0, 1]])
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if row is None:
        return np.asarray(out, dtype=np.uint8), None
    top, bottom = ((np.array(row) * h - y1) / (y2 - y1)).clip(0, 1)
    return np.asarray(out, dtype=np.uint8), (float(top), float(bottom))


def yolo_crops(root: Path) -> Crops:
    """The crops of a YOLO character-box dataset (`root`/images, `root`/labels, searched below
    them): text and row from the boxes, left to right."""
    images, texts, rows = [], [], []
    for label in sorted((root / "labels").rglob("*.txt")):
        image = root / "images" / label.relative_to(root / "labels").with_suffix(".jpg")
        boxes = [line.split() for line in label.read_text().splitlines() if line.strip()]
        if not boxes or not image.is_file():
            continue
        chars = sorted((float(cx), float(cy), float(bh), int(c)) for c, cx, cy, _, bh in boxes)
        texts.append("".join(CLASS_NAMES[c] for *_, c in chars))
        rows.append(
            (min(cy - bh / 2 for _, cy, bh, _ in chars), max(cy + bh / 2 for _, cy, bh, _ in chars))
        )
        images.append(image)
    return Crops(tuple(images), tuple(texts), tuple(rows))


def distilled_crops(manifest: Path, *, min_confidence: float) -> Crops:
    """The crops of a training.fast_labels manifest the teacher read at `min_confidence` or more."""
    images, texts, rows = [], [], []
    with open(manifest, newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            if not record["text"] or float(record["confidence"]) < min_confidence:
                continue
            images.append(Path(record["file"]))
            texts.append(record["text"])
            rows.append((float(record["row_top"]), float(record["row_bottom"])))
    return Crops(tuple(images), tuple(texts), tuple(rows))


def _crop(rng: np.random.Generator, crops: Crops, index: int) -> CropSample:
    read = cv2.imread(str(crops.images[index]), cv2.IMREAD_COLOR)
    if read is None:
        raise FileNotFoundError(crops.images[index])
    image, row = jitter(rng, np.asarray(read, dtype=np.uint8), crops.rows[index])
    return CropSample(grey_input(augment(rng, image)), crops.texts[index], row)


def sample_stream(
    rng: np.random.Generator, sets: tuple[Crops, ...], shares: tuple[float, ...]
) -> Iterator[CropSample]:
    """Endless samples, from each of `sets` at its share (an empty set gives its share to the
    others)."""
    weights = np.array(
        [share if len(crops) else 0.0 for crops, share in zip(sets, shares, strict=True)]
    )
    if not weights.sum():
        raise ValueError("no training crops")
    weights /= weights.sum()
    while True:
        which = int(rng.choice(len(sets), p=weights))
        yield _crop(rng, sets[which], int(rng.integers(len(sets[which]))))
