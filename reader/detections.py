"""`Detections`: what a character detector found on one crop, before any reading is made of it.

Every detector runtime (PyTorch, ONNX Runtime) gives these, so the reading steps after it (row
grouping, the recogniser, fusion) never see which runtime ran. `class_scores` keeps each box's
score for all 36 classes, not only the arg-max, so decoding can weigh the alternatives.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["MERGE_IOU", "Detections", "box_iou", "merge_class_duplicates"]

# Boxes of one character under different classes overlap almost exactly; neighbouring
# characters never do. On the real dev set (detector alone, 2-fold) merging at IoU 0.5 / 0.6 /
# 0.7 / 0.8 read 74.2 / 74.4 / 74.5 / 74.4% exactly, 73.2% without merging.
MERGE_IOU: Final = 0.7


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes on one crop after NMS, in crop pixels.

    `xyxy` (n, 4) float64; `scores` (n,) the winning class's score; `classes` (n,) class ids;
    `class_scores` (n, 36) every class's score (sigmoid outputs, not normalised across classes).
    """

    xyxy: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    classes: npt.NDArray[np.intp]
    class_scores: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.scores)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.classes.shape != (n,) or len(self.class_scores) != n:
            raise ValueError(
                f"detections disagree: xyxy {self.xyxy.shape}, scores ({n},), "
                f"classes {self.classes.shape}, class_scores {self.class_scores.shape}"
            )


def merge_class_duplicates(found: Detections, *, iou_threshold: float = MERGE_IOU) -> Detections:
    """One distribution per character: each box takes, class by class, the best score of the
    boxes overlapping it by more than `iou_threshold`, and its score becomes the sum of those
    (at most 1).

    The detector's NMS is per class, so an uncertain character comes back as several boxes,
    each holding one class's share: New York's narrow W as W 0.24, M 0.20 and N 0.10, every
    one under the 0.25 threshold, though together they are clearly a character.
    """
    if len(found) < 2:
        return found
    b = found.xyxy
    same = (box_iou(b, b) > iou_threshold) | np.eye(len(b), dtype=bool)
    class_scores = np.where(same[:, :, None], found.class_scores[None, :, :], 0.0).max(axis=1)
    return Detections(
        xyxy=b,
        scores=np.minimum(class_scores.sum(axis=1), 1.0),
        classes=class_scores.argmax(axis=1).astype(np.intp),
        class_scores=class_scores,
    )


def box_iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(len(a), len(b)) intersection over union of two sets of xyxy boxes."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return np.asarray(
        inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9), dtype=np.float64
    )
