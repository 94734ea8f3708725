"""The numpy NMS keeps what ultralytics' keeps, on hand-made boxes and on random heads."""

import numpy as np
import pytest

from reader.nms import detections_from_head, nms, scale_boxes

NC = 36


def _head(boxes_xywh: list[list[float]], classes: list[int], scores: list[float]) -> np.ndarray:
    """A (1, 4 + NC, anchors) head with one box per anchor."""
    head = np.zeros((1, 4 + NC, len(boxes_xywh)), dtype=np.float32)
    for a, (box, c, s) in enumerate(zip(boxes_xywh, classes, scores, strict=True)):
        head[0, :4, a] = box
        head[0, 4 + c, a] = s
    return head


def _detect(head: np.ndarray, confidence: float = 0.25, shape: tuple[int, int] = (128, 256)):
    (found,) = detections_from_head(
        head, input_hw=(128, 256), shapes=(shape,), confidence=confidence, iou=0.7, max_det=300
    )
    return found


def test_an_overlapping_box_of_the_same_class_is_suppressed() -> None:
    found = _detect(_head([[50, 60, 20, 40], [51, 60, 20, 40]], [7, 7], [0.6, 0.9]))
    assert found.classes.tolist() == [7]
    assert found.scores.tolist() == pytest.approx([0.9])


def test_boxes_of_different_classes_never_suppress_each_other() -> None:
    found = _detect(_head([[50, 60, 20, 40], [51, 60, 20, 40]], [7, 1], [0.6, 0.9]))
    assert found.classes.tolist() == [1, 7]  # most confident first


def test_the_threshold_is_strict_and_all_class_scores_are_kept() -> None:
    head = _head([[50, 60, 20, 40], [150, 60, 20, 40]], [3, 4], [0.25, 0.5])
    head[0, 4 + 9, 1] = 0.2  # a runner-up class on the kept box
    found = _detect(head)
    assert found.classes.tolist() == [4]
    assert found.class_scores.shape == (1, NC)
    assert found.class_scores[0, 9] == pytest.approx(0.2)
    assert found.class_scores[0, 4] == pytest.approx(0.5)


def test_boxes_come_back_in_crop_pixels() -> None:
    # A 64x256 crop letterboxed to 128x256 sits 32 px down: y shifts back by 32, x is unscaled.
    found = _detect(_head([[50, 64, 20, 40]], [0], [0.9]), shape=(64, 256))
    assert found.xyxy[0].tolist() == pytest.approx([40, 12, 60, 52])
    assert scale_boxes((128, 256), np.array([[0, 0, 256, 128]]), (64, 256)).tolist() == [
        [0, 0, 256, 64]
    ]


def test_nothing_found_is_an_empty_detections() -> None:
    found = _detect(_head([[50, 60, 20, 40]], [0], [0.1]))
    assert len(found) == 0 and found.class_scores.shape == (0, NC)
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.intp), iou=0.7).tolist() == []


@pytest.mark.parametrize("seed", range(5))
def test_random_heads_give_what_ultralytics_gives(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(seed)
    anchors = 672  # 128x256 at strides 8, 16, 32
    head = np.zeros((2, 4 + NC, anchors), dtype=np.float32)
    head[:, 0] = rng.uniform(0, 256, (2, anchors))
    head[:, 1] = rng.uniform(0, 128, (2, anchors))
    head[:, 2:4] = rng.uniform(4, 40, (2, 2, anchors))
    head[:, 4:] = rng.uniform(0, 1, (2, NC, anchors)) ** 8  # mostly low, some confident
    ours = detections_from_head(
        head, input_hw=(128, 256), shapes=((128, 256),) * 2, confidence=0.25, iou=0.7, max_det=300
    )
    theirs, kept = non_max_suppression(
        torch.from_numpy(head), 0.25, 0.7, max_det=300, return_idxs=True
    )
    for mine, rows, idx, image in zip(ours, theirs, kept, head, strict=True):
        assert len(mine) == len(rows) > 0
        boxes = rows[:, :4].numpy()  # ultralytics clips later, in scale_boxes; ours clips too
        boxes = np.clip(boxes, 0, [256, 128, 256, 128])
        np.testing.assert_allclose(mine.xyxy, boxes, atol=1e-4)
        np.testing.assert_array_equal(mine.classes, rows[:, 5].numpy().astype(int))
        np.testing.assert_allclose(mine.class_scores, image[4:, idx.numpy()].T, atol=0)
