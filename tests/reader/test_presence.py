"""reader.presence: which detector boxes are serial characters, from where they sit."""

import numpy as np
import pytest

from reader.calibration import Calibration
from reader.presence import PRESENCE_FEATURES, PresenceModel, presence_features


def _row(n: int, *, y: float = 10.0) -> list[list[float]]:
    return [[10.0 + 20 * i, y, 26.0 + 20 * i, y + 30.0] for i in range(n)]


def test_a_box_off_the_line_and_short_stands_out_from_its_row() -> None:
    boxes = _row(7)
    boxes.insert(3, [70.0, 22.0, 82.0, 34.0])  # a picture between the groups: squat, low
    x = presence_features(boxes, [0.9] * 3 + [0.4] + [0.9] * 4, [0] * 8)
    height, offset = PRESENCE_FEATURES.index("height"), PRESENCE_FEATURES.index("offset")
    assert x[3, height] > 0.8 and x[3, offset] == pytest.approx(0.1)
    assert np.allclose(np.delete(x[:, [height, offset]], 3, axis=0), 0.0)
    end, excess = PRESENCE_FEATURES.index("end"), PRESENCE_FEATURES.index("end_excess")
    assert x[:, end].tolist() == [1, 0, 0, 0, 0, 0, 0, 1]
    assert x[:, excess].tolist() == [2, 0, 0, 0, 0, 0, 0, 2]


def test_rows_are_measured_each_against_their_own_boxes() -> None:
    # A stacked plate: a short top row and a tall bottom row are both on their own line.
    top = [[10.0 + 12 * i, 5.0, 20.0 + 12 * i, 20.0] for i in range(3)]
    x = presence_features(top + _row(4, y=30.0), [0.9] * 7, [0, 0, 0, 1, 1, 1, 1])
    assert np.allclose(x[:, PRESENCE_FEATURES.index("height")], 0.0)
    assert x[:, PRESENCE_FEATURES.index("end")].tolist() == [1, 0, 1, 1, 0, 0, 1]


def test_the_shipped_model_doubts_the_picture_and_trusts_the_serial() -> None:
    model = Calibration.load().presence
    assert model is not None
    boxes = _row(7)
    boxes.insert(3, [70.0, 22.0, 82.0, 34.0])
    p = model.probabilities(boxes, [0.9] * 3 + [0.4] + [0.9] * 4, [0] * 8)
    assert p[3] < 0.5 < 0.9 < np.delete(p, 3).min()


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        presence_features(_row(3), [0.9] * 3, [0, 0])
    with pytest.raises(ValueError, match="weights"):
        PresenceModel(weights=(1.0,), intercept=0.0)
    assert presence_features(np.zeros((0, 4)), [], []).shape == (0, len(PRESENCE_FEATURES))
