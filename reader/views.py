"""Test-time views: the detector's own reading looks at each crop several ways and pools the boxes.

One look at a crop leaves the detector's doubts where they fall: a character it half-sees at
one scale it sees well at another. Its own reading (`--reader detector`) therefore reads every
crop under a few `View`s, maps each view's boxes back to crop pixels, and combines them
(`combine`): boxes of the same character in different views, found by overlap, become one box
whose class scores are the views' mean, a view that missed it counting zero. A character seen in
one view of four keeps a quarter of its score; the presence model and the threshold decide.

Two things vary, each for a reason found on real plates:
    stretch  the crop's width scale. The detector learnt its glyphs on synthetic plates drawn
             in fonts a little wider than real plate dies; stretched 1.3-1.4x, real crops read
             better (one view on the real dev set, 5-fold cross-validated corrections:
             1.0 / 1.1 / 1.2 / 1.3 / 1.4 / 1.5 / 1.7 read 74.0 / 75.0 / 75.1 / 75.6 / 75.7 /
             75.4 / 73.8% exactly; bench/views.py).
    margin   edge-replicated border, as a fraction of the width on each side (1.5 times that
             fraction of the height above and below): the detector-like margins it was trained
             with, and a different place for every character on the input grid.

The views belong to the corrections fitted with them (reader.calibration): the presence model and
the class bias are fitted on the combined boxes, so the calibration file names its views.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from reader.detections import Detections, box_iou, merge_class_duplicates

__all__ = ["COMBINE_IOU", "DETECTOR_VIEWS", "IDENTITY", "View", "combine", "detect_in_views"]

# Boxes of one character in two views overlap at 0.8 and more; neighbours at under 0.3. On the
# dev set (four views) 0.45 / 0.55 / 0.65 read 80.4 / 80.2 / 80.4% exactly.
COMBINE_IOU: Final = 0.55
_MARGIN_HEIGHT_RATIO: Final = 1.5


@dataclass(frozen=True, slots=True)
class View:
    """A crop scaled `stretch` times in width, then padded by `margin` (edge pixels)."""

    stretch: float = 1.0
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not 0.25 <= self.stretch <= 4.0 or not 0.0 <= self.margin <= 0.5:
            raise ValueError(f"a view needs stretch in [0.25, 4] and margin in [0, 0.5]: {self}")

    def apply(self, crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The crop as this view shows it."""
        if self == IDENTITY:
            return crop
        if self.stretch != 1.0:
            height, width = crop.shape[:2]
            crop = np.asarray(cv2.resize(crop, (self._width(width), height)))
        pad_x, pad_y = self._pads(crop.shape[:2])
        return np.asarray(
            cv2.copyMakeBorder(crop, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        )

    def to_crop(self, found: Detections, shape: tuple[int, int]) -> Detections:
        """Boxes found on this view, in pixels of the (height, width) `shape` crop."""
        if self == IDENTITY or not len(found):
            return found
        height, width = shape
        pad_x, pad_y = self._pads((height, self._width(width)))
        xyxy = found.xyxy - np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float64)
        xyxy[:, [0, 2]] *= width / self._width(width)
        xyxy = np.clip(xyxy, 0.0, [width, height, width, height])
        return Detections(
            xyxy=xyxy, scores=found.scores, classes=found.classes, class_scores=found.class_scores
        )

    def _width(self, width: int) -> int:
        return max(round(width * self.stretch), 1)

    def _pads(self, shape: tuple[int, ...]) -> tuple[int, int]:
        height, width = shape[:2]
        return round(width * self.margin), round(height * self.margin * _MARGIN_HEIGHT_RATIO)


IDENTITY: Final = View()
# Picked on the real dev set, 5-fold cross-validated corrections (bench/views.py): one view
# 74.0%; these four 80.6%; stretch 1.3 instead of 1.4 80.2%; six views (1.0 / 1.2 / 1.4, each
# with and without the margin) about the same.
DETECTOR_VIEWS: Final = (IDENTITY, View(stretch=1.4), View(margin=0.04), View(1.4, 0.04))


def combine(views: Sequence[Detections], *, iou_threshold: float = COMBINE_IOU) -> Detections:
    """One set of boxes from the same crop's boxes in several views (all in crop pixels).

    Each view's boxes of one character are merged first (merge_class_duplicates). Then, from
    the most confident box down, a box joins the best-overlapping group that has no box of its
    view yet, or starts a group. A group's box is the score-weighted mean of its boxes; its
    class scores are the sum over its boxes divided by the number of views.
    """
    if len(views) == 1:
        return views[0]
    merged = [merge_class_duplicates(v) for v in views]
    if not sum(len(m) for m in merged):
        return merged[0]
    boxes = np.vstack([m.xyxy for m in merged]).reshape(-1, 4)
    scores = np.vstack([m.class_scores for m in merged]).reshape(len(boxes), -1)
    view_of = np.concatenate([np.full(len(m), k) for k, m in enumerate(merged)])
    groups: list[list[int]] = []
    centres = np.zeros((0, 4))
    for i in np.argsort(-scores.max(axis=1), kind="stable"):
        overlap = box_iou(boxes[i : i + 1], centres)[0] if len(groups) else np.zeros(0)
        taken = np.array([view_of[i] in view_of[g] for g in groups], dtype=bool)
        overlap[taken] = 0.0
        if len(groups) and overlap.max() > iou_threshold:
            best = int(overlap.argmax())
            groups[best].append(int(i))
            weight = scores[groups[best]].max(axis=1)
            centres[best] = weight @ boxes[groups[best]] / weight.sum()
        else:
            groups.append([int(i)])
            centres = np.vstack([centres, boxes[i]])
    class_scores = np.array([scores[g].sum(axis=0) for g in groups]) / len(views)
    return Detections(
        xyxy=centres,
        scores=class_scores.max(axis=1),
        classes=class_scores.argmax(axis=1).astype(np.intp),
        class_scores=class_scores,
    )


def detect_in_views(
    views: Sequence[View],
    crops: Sequence[npt.NDArray[np.uint8]],
    detect: Callable[[list[npt.NDArray[np.uint8]]], list[Detections]],
) -> list[Detections]:
    """Each crop's boxes under every view, combined: `detect` runs once on all the views of all
    the crops (one batch: on a GPU about one view's time) and returns their boxes in order."""
    found = detect([view.apply(crop) for view in views for crop in crops])
    n = len(crops)
    return [
        combine([view.to_crop(found[k * n + i], crop.shape[:2]) for k, view in enumerate(views)])
        for i, crop in enumerate(crops)
    ]
