"""Two readers, one plate: the detector's characters and the recogniser's line, fused per character.

The detector gives boxes with a score for each of the 36 classes; the recogniser gives, for the
serial region those boxes bound, a sequence of characters with a distribution each and a
position along the line. The two sequences are aligned by a monotone dynamic programme whose
match cost is how far apart the two characters sit (in character widths) plus how much their
distributions disagree (one minus the Bhattacharyya coefficient), so a recogniser that reads
`5` where the detector saw `S` still pairs the two. Then:

- matched pair: the class is the arg-max of a weighted geometric mean of the two distributions,
  weighted towards the recogniser (it is the better reader: 89% against 68% exact alone on the
  real dev set), and the character keeps the detector's box;
- recogniser only (the detector missed it): kept, with a box placed where the recogniser saw it,
  one median character wide, as tall as the row;
- detector only: dropped. The recogniser reads the region the detector's boxes bound, so what it
  does not see there is mostly a stray box on a bolt, a sticker or a state-name letter. On the dev
  set, keeping detector-only boxes never helped (scores >= 0.9: 89.7% against 89.8% without).

Weights chosen on the real dev set (exact match of the fused text): recogniser weight 0.8
(0.5: 85.3%, 0.7: 88.0%, 0.8: 89.8%, 1.0 = recogniser alone: 89.0%).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from reader.detections import Detections
from reader.postprocess import group_rows, suppress_duplicates
from reader.recogniser import LineRead, RecognisedChar

__all__ = [
    "RECOGNISER_WEIGHT",
    "ROW_HEIGHT_TOLERANCE",
    "FusedChar",
    "PlateLayout",
    "fuse_line",
    "layout",
]

RECOGNISER_WEIGHT: Final = 0.8
# The serial region: the union of a row's boxes, widened by these fractions of the median box
# height (left/right and top/bottom), as measured in issue 9 (86.3% for the recogniser alone).
MARGIN_X: Final = 0.15
MARGIN_Y: Final = 0.12
_GAP_COST: Final = 1.0
# A weak box continues a row only if it is this close to the row's median character height.
ROW_HEIGHT_TOLERANCE: Final = 0.3
_MAX_OFFSET_COST: Final = 2.0  # further apart than two characters is simply "not the same one"
_EPS: Final = 1e-4

Source = Literal["both", "detector", "recogniser"]


@dataclass(frozen=True, slots=True)
class FusedChar:
    """One character of the fused reading, before the plate-level decoding picks the text."""

    probs: npt.NDArray[np.float64]  # (36,), sums to 1
    presence: float  # how sure we are that a character is here at all
    box: tuple[float, float, float, float]
    row: int
    source: Source
    agree: bool  # both readers present and their own arg-max classes are the same


@dataclass(frozen=True, slots=True)
class PlateLayout:
    """The detector's characters of one crop, grouped in rows, and each row's serial region."""

    rows: tuple[npt.NDArray[np.intp], ...]  # indices into the detections, left to right
    lines: tuple[tuple[int, int, int, int], ...]  # one (x1, y1, x2, y2) per row


def layout(
    found: Detections,
    shape: tuple[int, int],
    *,
    confidence: float,
    extend_confidence: float | None = None,
    margin_x: float = MARGIN_X,
) -> PlateLayout:
    """Threshold and de-duplicate the boxes as the detector's own reading does, group them in
    rows (top first), and bound each row's serial region within the crop, widened by
    `margin_x` character heights left and right.

    With `extend_confidence`, weaker boxes (down to that score) that continue a row, at its
    height and within a character's width of its ends, widen the region: the detector often
    sees the first or last character of a serial (a taxi's T and C) but below the threshold.
    """
    confident = np.flatnonzero(found.scores >= confidence)
    kept = confident[suppress_duplicates(found.xyxy[confident], found.scores[confident])]
    if not len(kept):
        return PlateLayout(rows=(), lines=())
    weak = np.zeros(0, np.intp)
    if extend_confidence is not None:
        candidates = np.flatnonzero(found.scores >= extend_confidence)
        survivors = candidates[
            suppress_duplicates(found.xyxy[candidates], found.scores[candidates])
        ]
        weak = survivors[found.scores[survivors] < confidence]
    row_of = group_rows(found.xyxy[kept])
    height, width = shape
    rows, lines = [], []
    for row in range(int(row_of.max()) + 1):
        members = _extend_row(found.xyxy, kept[row_of == row], weak)
        boxes = found.xyxy[members]
        members = members[np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")]
        char_h = float(np.median(boxes[:, 3] - boxes[:, 1]))
        x1 = max(int(boxes[:, 0].min() - margin_x * char_h), 0)
        y1 = max(int(boxes[:, 1].min() - MARGIN_Y * char_h), 0)
        x2 = min(math.ceil(boxes[:, 2].max() + margin_x * char_h), width)
        y2 = min(math.ceil(boxes[:, 3].max() + MARGIN_Y * char_h), height)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        rows.append(members)
        lines.append((x1, y1, x2, y2))
    return PlateLayout(rows=tuple(rows), lines=tuple(lines))


def _extend_row(
    xyxy: npt.NDArray[np.float64], members: npt.NDArray[np.intp], weak: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """`members` plus the weak boxes that continue the row outwards, one at a time."""
    members = members.copy()
    heights = xyxy[members, 3] - xyxy[members, 1]
    char_h = float(np.median(heights))
    char_w = float(np.median(xyxy[members, 2] - xyxy[members, 0]))
    top, bottom = float(np.median(xyxy[members, 1])), float(np.median(xyxy[members, 3]))
    left = weak.copy()
    while len(left):
        lo, hi = xyxy[members, 0].min(), xyxy[members, 2].max()
        box = xyxy[left]
        centre_y = (box[:, 1] + box[:, 3]) / 2
        height = box[:, 3] - box[:, 1]
        gap = np.maximum(lo - box[:, 2], box[:, 0] - hi)
        fits = (
            (centre_y > top)
            & (centre_y < bottom)
            & (np.abs(height / char_h - 1.0) <= ROW_HEIGHT_TOLERANCE)
            & (gap <= char_w)
            & (gap > -char_w / 2)  # outside the row, not on top of one of its characters
        )
        if not fits.any():
            break
        members = np.append(members, left[fits])
        left = left[~fits]
    return members


def fuse_line(
    found: Detections,
    members: npt.NDArray[np.intp],
    line: LineRead,
    *,
    row: int,
    recogniser_weight: float = RECOGNISER_WEIGHT,
) -> list[FusedChar]:
    """Fuse one row: the detector's boxes `members` (left to right) with the recogniser's read
    of that row's serial region."""
    det_probs = found.class_scores[members]
    det_probs = det_probs / np.maximum(det_probs.sum(axis=1, keepdims=True), _EPS)
    boxes = found.xyxy[members]
    det_x = (boxes[:, 0] + boxes[:, 2]) / 2
    char_w = max(float(np.median(boxes[:, 2] - boxes[:, 0])), 1.0)
    rec = line.characters()
    pairs = _align(det_x, det_probs, rec, char_w)
    top, bottom = float(np.median(boxes[:, 1])), float(np.median(boxes[:, 3]))
    fused = []
    for d, r in pairs:
        if d is not None and r is not None:
            log_p = recogniser_weight * np.log(rec[r].probs + _EPS) + (
                1 - recogniser_weight
            ) * np.log(det_probs[d] + _EPS)
            probs = np.exp(log_p - log_p.max())
            fused.append(
                FusedChar(
                    probs=probs / probs.sum(),
                    presence=max(rec[r].presence, float(found.scores[members[d]])),
                    box=_box(boxes[d]),
                    row=row,
                    source="both",
                    agree=int(rec[r].probs.argmax()) == int(det_probs[d].argmax()),
                )
            )
        elif r is not None:
            x = rec[r].x
            fused.append(
                FusedChar(
                    probs=rec[r].probs,
                    presence=rec[r].presence,
                    box=(x - char_w / 2, top, x + char_w / 2, bottom),
                    row=row,
                    source="recogniser",
                    agree=False,
                )
            )
    return fused


def _align(
    det_x: npt.NDArray[np.float64],
    det_probs: npt.NDArray[np.float64],
    rec: Sequence[RecognisedChar],
    char_w: float,
) -> list[tuple[int | None, int | None]]:
    """Monotone alignment (Needleman-Wunsch) of detector boxes and recognised characters."""
    n, m = len(det_x), len(rec)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1) * _GAP_COST
    cost[0, :] = np.arange(m + 1) * _GAP_COST
    move = np.zeros((n + 1, m + 1), np.int8)  # 0 match, 1 detector only, 2 recogniser only
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            offset = min(abs(det_x[i - 1] - rec[j - 1].x) / char_w, _MAX_OFFSET_COST)
            overlap = float(np.sqrt(det_probs[i - 1] * rec[j - 1].probs).sum())
            options = (
                cost[i - 1, j - 1] + offset + (1.0 - overlap),
                cost[i - 1, j] + _GAP_COST,
                cost[i, j - 1] + _GAP_COST,
            )
            move[i, j] = int(np.argmin(options))
            cost[i, j] = options[move[i, j]]
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and move[i, j] == 0:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and (not j or move[i, j] == 1):
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def _box(xyxy: npt.NDArray[np.float64]) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))
