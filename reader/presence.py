"""Is a detector box a character of the serial? A logistic model of where it sits and how it scored.

Reading with the detector alone, every confident box used to become a character. On the real dev
set 151 of them were not characters of the plate number. Most were pictures between the serial's
groups, read as S, 3, K or B: Louisiana's compass, Maryland's shield, Mississippi's lighthouse,
Oregon's tree. The rest were screws, frame edges and sticker digits at the ends. Such boxes
tend to score lower than the characters beside them, to be shorter or narrower, to sit off the
row's line, and to come first or last on plates with more characters than a serial has.

`PresenceModel.probabilities` maps those features of each box to the probability that it is a
serial character. Decoding (reader.decoding) may then leave out a box below 0.9 wherever the
text without it scores better there, the format prior included. Its coefficients are fitted by
`python -m training.calibrate`; they live in `reader/models/calibration.json` beside the plate
confidence models (reader.calibration).

Features, per box, against the median box of its row:
    score       the box's score (log-odds)
    height      |log(height / median height)|
    width       log(width / median width)
    offset      |centre y - median centre y| / median height
    end         1 for the first or last box of its row
    end_excess  `end` times how many characters the row has over 6
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["PRESENCE_FEATURES", "PresenceModel", "presence_features"]

PRESENCE_FEATURES: Final = ("score", "height", "width", "offset", "end", "end_excess")
_SERIAL_CHARS: Final = 6
_EPS: Final = 1e-6


def presence_features(
    xyxy: npt.ArrayLike, scores: npt.ArrayLike, rows: Sequence[int]
) -> npt.NDArray[np.float64]:
    """(n, 6) features of n boxes in reading order (`rows[i]` the row of box i)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    score = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), _EPS, 1 - _EPS)
    row_of = np.asarray(rows, dtype=np.intp).reshape(-1)
    if not len(boxes) == len(score) == len(row_of):
        raise ValueError(f"{len(boxes)} boxes, {len(score)} scores and {len(row_of)} rows")
    out = np.zeros((len(boxes), len(PRESENCE_FEATURES)))
    for row in np.unique(row_of):
        at = np.flatnonzero(row_of == row)
        b = boxes[at]
        height = np.maximum(b[:, 3] - b[:, 1], _EPS)
        width = np.maximum(b[:, 2] - b[:, 0], _EPS)
        centre_y = (b[:, 1] + b[:, 3]) / 2
        median_h = float(np.median(height))
        end = np.zeros(len(at))
        end[[0, -1]] = 1.0
        out[at] = np.column_stack(
            [
                np.log(score[at] / (1 - score[at])),
                np.abs(np.log(height / median_h)),
                np.log(width / float(np.median(width))),
                np.abs(centre_y - float(np.median(centre_y))) / median_h,
                end,
                end * max(len(at) - _SERIAL_CHARS, 0),
            ]
        )
    return out


@dataclass(frozen=True, slots=True)
class PresenceModel:
    """Logistic coefficients over `PRESENCE_FEATURES`."""

    weights: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        if len(self.weights) != len(PRESENCE_FEATURES):
            raise ValueError(
                f"a presence model has {len(PRESENCE_FEATURES)} weights, not {len(self.weights)}"
            )

    def probabilities(
        self, xyxy: npt.ArrayLike, scores: npt.ArrayLike, rows: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """P(serial character) for each box (reading order, as `presence_features` takes them)."""
        z = self.intercept + presence_features(xyxy, scores, rows) @ np.asarray(self.weights)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)
