"""From raw character detections to a plate reading: threshold, de-duplicate, order by rows.

Pure numpy, no torch: the model gives boxes, scores and class ids, and everything after that is
plain geometry that can be unit-tested with hand-made boxes.

Why more than a left-to-right sort (the seed's `naive_order`):
- The detector's NMS is per class, so one character can come back twice under two classes, or a
  weak second box can sit inside the real one. The seed read plate 6LNE878 as `6LNE8784` that
  way. `suppress_duplicates` drops such boxes whatever their class, keeping the more confident.
- Stacked plates have two rows; sorting every box by x interleaves them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from schemas.reading import CharacterReading, ModelInfo

if TYPE_CHECKING:
    from reader.calibration import PlateFeatures

__all__ = [
    "CONTAINMENT_THRESHOLD",
    "IOU_THRESHOLD",
    "ROW_GAP_RATIO",
    "OcrResult",
    "group_rows",
    "naive_order",
    "order_characters",
    "suppress_duplicates",
]

# Two boxes on one character overlap far more than neighbouring characters ever do.
IOU_THRESHOLD: Final = 0.5
# A box this much inside another (intersection / smaller area) is a fragment or duplicate of it.
CONTAINMENT_THRESHOLD: Final = 0.7
# Rows are split only across a vertical gap between box centres of at least this many median
# character heights, so small stacked characters within one row (California "DP") stay in it.
ROW_GAP_RATIO: Final = 0.6

_EPS: Final = 1e-9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class OcrResult:
    """One plate's reading. Field for field what `PlateReading` carries about the text.

    `confidence` is the plate confidence: here the lowest character confidence (0.0 when
    nothing was read); the reading steps (reader.two_stage) replace it with a calibrated one.
    `rows` is 0 when nothing was read, else 1 or 2; `characters` are in reading order.
    `candidates` are the top plate strings with their probabilities, best first; `features`
    what the calibration saw (for fitting it; not part of the published reading). `models`
    names the models that read this crop (the character model, the line recogniser or None)
    where a reader's crops are not all read by the same ones (the fused reader's cascade);
    None: the reader's own.
    """

    text: str
    confidence: float
    characters: tuple[CharacterReading, ...]
    rows: int
    candidates: tuple[tuple[str, float], ...] = ()
    features: "PlateFeatures | None" = None
    models: tuple[ModelInfo, ModelInfo | None] | None = None


def order_characters(
    xyxy: npt.ArrayLike,
    conf: npt.ArrayLike,
    cls: npt.ArrayLike,
    *,
    confidence: float,
    names: Sequence[str] = CLASS_NAMES,
) -> OcrResult:
    """Threshold, drop duplicate boxes of one character, then read the top row and the bottom
    row, each left to right."""
    boxes, scores, classes = _as_arrays(xyxy, conf, cls)
    confident = np.flatnonzero(scores >= confidence)
    kept = confident[suppress_duplicates(boxes[confident], scores[confident])]
    rows = group_rows(boxes[kept])
    centre_x = (boxes[kept, 0] + boxes[kept, 2]) / 2
    order = np.lexsort((centre_x, rows))  # last key sorts first: row, then x
    return _result(boxes, scores, classes, kept[order], rows[order], names)


def naive_order(
    xyxy: npt.ArrayLike,
    conf: npt.ArrayLike,
    cls: npt.ArrayLike,
    *,
    confidence: float,
    names: Sequence[str] = CLASS_NAMES,
) -> OcrResult:
    """The seed's reading: every box over the threshold, sorted by its left edge. For comparison."""
    boxes, scores, classes = _as_arrays(xyxy, conf, cls)
    confident = np.flatnonzero(scores >= confidence)
    order = confident[np.argsort(boxes[confident, 0], kind="stable")]
    return _result(boxes, scores, classes, order, np.zeros(len(order), np.intp), names)


def suppress_duplicates(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    iou_threshold: float = IOU_THRESHOLD,
    containment_threshold: float = CONTAINMENT_THRESHOLD,
) -> IntArray:
    """Class-agnostic suppression: indices of the boxes kept, most confident first.

    A box is dropped when it overlaps a more confident kept box by IoU or lies mostly inside
    it, or it inside the box (intersection over the smaller of the two areas).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    kept: list[int] = []
    for i in np.argsort(-s, kind="stable"):
        if kept:
            k = np.asarray(kept)
            width = np.minimum(b[i, 2], b[k, 2]) - np.maximum(b[i, 0], b[k, 0])
            height = np.minimum(b[i, 3], b[k, 3]) - np.maximum(b[i, 1], b[k, 1])
            inter = np.clip(width, 0, None) * np.clip(height, 0, None)
            iou = inter / np.maximum(areas[i] + areas[k] - inter, _EPS)
            inside = inter / np.maximum(np.minimum(areas[i], areas[k]), _EPS)
            if np.any((iou >= iou_threshold) | (inside >= containment_threshold)):
                continue
        kept.append(int(i))
    return np.asarray(kept, dtype=np.intp)


def group_rows(boxes: npt.ArrayLike, *, gap_ratio: float = ROW_GAP_RATIO) -> IntArray:
    """Row index per box: 0 for the top (or only) row, 1 for the bottom row.

    Splits at the widest vertical gap between box centres, and only when that gap is clear
    relative to the median character height; otherwise everything is one row.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rows = np.zeros(len(b), dtype=np.intp)
    if len(b) < 2:
        return rows
    centre_y = (b[:, 1] + b[:, 3]) / 2
    by_y = np.argsort(centre_y, kind="stable")
    gaps = np.diff(centre_y[by_y])
    widest = int(np.argmax(gaps))
    if gaps[widest] >= gap_ratio * float(np.median(b[:, 3] - b[:, 1])):
        rows[by_y[widest + 1 :]] = 1
    return rows


def _as_arrays(
    xyxy: npt.ArrayLike, conf: npt.ArrayLike, cls: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, IntArray]:
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(conf, dtype=np.float64).reshape(-1)
    classes = np.asarray(cls, dtype=np.float64).reshape(-1).astype(np.intp)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"{len(boxes)} boxes, {len(scores)} scores and {len(classes)} classes do not match"
        )
    return boxes, scores, classes


def _result(
    boxes: FloatArray,
    scores: FloatArray,
    classes: IntArray,
    order: npt.NDArray[Any],
    rows: npt.NDArray[Any],
    names: Sequence[str],
) -> OcrResult:
    characters = tuple(
        CharacterReading(
            char=names[int(classes[i])],
            # float32 scores can land a hair outside [0, 1]; the schema is strict about it.
            confidence=min(max(float(scores[i]), 0.0), 1.0),
            box=(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
            row=int(row),
        )
        for i, row in zip(order, rows, strict=True)
    )
    return OcrResult(
        text="".join(c.char for c in characters),
        confidence=min((c.confidence for c in characters), default=0.0),
        characters=characters,
        rows=int(rows.max()) + 1 if len(characters) else 0,
    )
