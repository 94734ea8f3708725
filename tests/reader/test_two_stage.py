"""reader.two_stage: the detector's own reading, decoded with the format prior."""

import numpy as np
import pytest

from plate_ocr.constants import CLASS_NAMES
from reader.calibration import Calibration
from reader.detections import Detections, merge_class_duplicates
from reader.two_stage import ReadingSteps


def _detections(text: str, *, second: dict[int, tuple[str, float]]) -> Detections:
    """One row of boxes reading `text`; at position i, `second[i]` is a runner-up class."""
    n = len(text)
    xyxy = np.array([[10.0 + 20 * i, 10.0, 28.0 + 20 * i, 40.0] for i in range(n)])
    class_scores = np.full((n, len(CLASS_NAMES)), 0.001)
    for i, char in enumerate(text):
        class_scores[i, CLASS_NAMES.index(char)] = 0.9
        if i in second:
            other, score = second[i]
            class_scores[i, CLASS_NAMES.index(other)] = score
    classes = class_scores.argmax(axis=1)
    return Detections(
        xyxy=xyxy, scores=class_scores.max(axis=1), classes=classes, class_scores=class_scores
    )


def _read(found: Detections) -> tuple[str, str]:
    crop = np.zeros((50, 20 * len(found) + 40, 3), np.uint8)
    (result,) = ReadingSteps("detector").read([crop], [found], confidence=0.25)
    return result.text, "".join(c.char for c in result.characters)


def test_a_near_tie_is_turned_by_the_serial_format() -> None:
    # ABC1Z34 has no US serial shape; ABC1234 has, and 2 scored nearly as high as Z.
    text, chars = _read(_detections("ABC1Z34", second={4: ("2", 0.7)}))
    assert text == chars == "ABC1234"


def test_clear_evidence_wins_over_the_format() -> None:
    # A vanity-like reading stays as read when the runner-up is far behind.
    text, chars = _read(_detections("ABC1Z34", second={4: ("2", 0.05)}))
    assert text == chars == "ABC1Z34"


def _with_picture() -> Detections:
    """LPB 635 with Louisiana's compass between the groups, read weakly as S."""
    found = _detections("LPBS635", second={})
    xyxy, scores = found.xyxy.copy(), found.scores.copy()
    xyxy[3] = [72.0, 20.0, 84.0, 32.0]
    scores[3] = 0.4
    class_scores = found.class_scores.copy()
    class_scores[3] *= 0.4 / 0.9
    return Detections(xyxy=xyxy, scores=scores, classes=found.classes, class_scores=class_scores)


def test_a_picture_between_the_groups_is_left_out_with_its_box() -> None:
    crop = np.zeros((50, 180, 3), np.uint8)
    (result,) = ReadingSteps("detector", calibration=Calibration.load()).read(
        [crop], [_with_picture()], confidence=0.25
    )
    assert result.text == "".join(c.char for c in result.characters) == "LPB635"
    assert all(c.box[0] != 72.0 for c in result.characters)


def test_without_a_presence_model_every_confident_box_is_read() -> None:
    crop = np.zeros((50, 180, 3), np.uint8)
    (result,) = ReadingSteps("detector", calibration=Calibration(models={})).read(
        [crop], [_with_picture()], confidence=0.25
    )
    assert result.text == "LPBS635"


def _split_w() -> Detections:
    """D S W: the W came back as three boxes (per-class NMS), each under the threshold."""
    xyxy = np.array(
        [[10, 10, 28, 40], [30, 10, 48, 40], [50, 10, 68, 40], [50, 11, 68, 40], [51, 10, 68, 41]],
        dtype=np.float64,
    )
    class_scores = np.full((5, len(CLASS_NAMES)), 0.0)
    for i, (char, score) in enumerate(
        [("D", 0.9), ("S", 0.9), ("W", 0.24), ("M", 0.2), ("N", 0.1)]
    ):
        class_scores[i, CLASS_NAMES.index(char)] = score
    return Detections(
        xyxy=xyxy,
        scores=class_scores.max(axis=1),
        classes=class_scores.argmax(axis=1),
        class_scores=class_scores,
    )


def test_a_characters_boxes_of_several_classes_merge_into_one_distribution() -> None:
    merged = merge_class_duplicates(_split_w())
    assert merged.scores[:2].tolist() == [0.9, 0.9]  # neighbours stay apart
    assert merged.scores[2:] == pytest.approx([0.54] * 3)
    assert [CLASS_NAMES[c] for c in merged.classes] == ["D", "S", "W", "W", "W"]
    w, m = CLASS_NAMES.index("W"), CLASS_NAMES.index("M")
    assert merged.class_scores[3, [w, m]].tolist() == [0.24, 0.2]


def test_the_detector_reads_a_character_no_single_box_of_it_passes() -> None:
    crop = np.zeros((50, 80, 3), np.uint8)
    (result,) = ReadingSteps("detector", calibration=Calibration(models={})).read(
        [crop], [_split_w()], confidence=0.25
    )
    assert result.text == "DSW"


def test_only_the_detectors_own_reading_looks_at_several_views() -> None:
    from reader.recogniser import LineRecogniser
    from reader.views import IDENTITY, View

    calibration = Calibration(models={}, views=(IDENTITY, View(stretch=1.4)))
    assert ReadingSteps("detector", calibration=calibration).views == calibration.views
    assert ReadingSteps("detector", calibration=calibration, naive=True).views == (IDENTITY,)
    recogniser = LineRecogniser.__new__(LineRecogniser)  # never called: views only
    fused = ReadingSteps("fused", recogniser=recogniser, calibration=calibration)
    assert fused.views == (IDENTITY,)
