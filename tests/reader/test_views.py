"""reader.views: test-time views of a crop, mapped back to crop pixels and combined."""

import numpy as np
import numpy.typing as npt
import pytest

from reader.detections import Detections
from reader.views import DETECTOR_VIEWS, IDENTITY, View, combine


def _found(boxes: list[list[float]], classes: list[int], scores: list[float]) -> Detections:
    class_scores = np.zeros((len(boxes), 36))
    class_scores[np.arange(len(boxes)), classes] = scores
    return Detections(
        xyxy=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float64),
        classes=np.asarray(classes, dtype=np.intp),
        class_scores=class_scores,
    )


def _bright_box(image: npt.NDArray[np.uint8]) -> list[float]:
    ys, xs = np.nonzero(image[..., 0] > 127)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_the_identity_view_is_the_crop_itself() -> None:
    crop = np.zeros((20, 100, 3), np.uint8)
    assert IDENTITY.apply(crop) is crop
    found = _found([[1, 2, 3, 4]], [0], [0.9])
    assert IDENTITY.to_crop(found, (20, 100)) is found


@pytest.mark.parametrize("view", [View(stretch=1.4), View(margin=0.04), View(1.4, 0.04)])
def test_boxes_found_on_a_view_map_back_onto_the_crop(view: View) -> None:
    crop = np.zeros((40, 200, 3), np.uint8)
    crop[10:30, 50:70] = 255
    shown = view.apply(crop)
    assert shown.shape[1] > crop.shape[1] and shown.shape[0] >= crop.shape[0]
    back = view.to_crop(_found([_bright_box(shown)], [7], [0.8]), (40, 200))
    assert back.xyxy[0] == pytest.approx([50, 10, 70, 30], abs=1.0)
    assert back.class_scores[0, 7] == 0.8


def test_a_box_in_the_margin_is_clipped_to_the_crop() -> None:
    view = View(margin=0.1)
    back = view.to_crop(_found([[0, 0, 30, 10]], [3], [0.5]), (40, 200))
    assert back.xyxy[0].tolist() == [0.0, 0.0, 10.0, 4.0]


def test_a_view_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="stretch"):
        View(stretch=0.0)
    with pytest.raises(ValueError, match="margin"):
        View(margin=-0.1)


def test_the_same_character_in_two_views_becomes_one_box_with_the_mean_scores() -> None:
    first = _found([[10, 5, 20, 25], [30, 5, 40, 25]], [1, 2], [0.9, 0.6])
    second = _found([[11, 5, 21, 25]], [1], [0.7])  # the second character missed here
    out = combine([first, second])
    assert len(out) == 2
    order = np.argsort(out.xyxy[:, 0])
    assert out.class_scores[order[0], 1] == pytest.approx(0.8)
    assert out.class_scores[order[1], 2] == pytest.approx(0.3)
    # The box is the score-weighted mean: nearer the more confident view's.
    assert out.xyxy[order[0], 0] == pytest.approx((10 * 0.9 + 11 * 0.7) / 1.6)


def test_two_characters_of_one_view_never_join_one_group() -> None:
    # Overlapping neighbours (a tight 1 beside a wide 0) of one view stay two characters.
    one = _found([[10, 5, 20, 25], [13, 5, 22, 25]], [1, 0], [0.9, 0.8])  # IoU 0.58
    assert len(combine([one, _found([], [], [])])) == 2


def test_views_that_found_nothing_combine_to_nothing() -> None:
    assert len(combine([_found([], [], []), _found([], [], [])])) == 0


def test_the_detector_views_start_with_the_crop_as_it_is() -> None:
    assert DETECTOR_VIEWS[0] == IDENTITY and len(set(DETECTOR_VIEWS)) == len(DETECTOR_VIEWS)
