"""`Detections`: what a character detector found on one crop, before any reading is made of it.

Every detector runtime (PyTorch, ONNX Runtime) gives these, so the reading steps after it (row
grouping, the recogniser, fusion) never see which runtime ran. `class_scores` keeps each box's
score for all 36 classes, not only the arg-max, so decoding can weigh the alternatives.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Detections"]


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
