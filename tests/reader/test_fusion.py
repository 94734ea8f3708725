"""Fusing the detector's boxes with the recogniser's line, on hand-made evidence."""

import numpy as np

from plate_ocr.constants import CLASS_NAMES
from reader.detections import Detections
from reader.fusion import fuse_line, layout
from reader.recogniser import BLANK, OTHER, LineRead

N = len(CLASS_NAMES)
W, STEP = 20.0, 24.0  # box width and pitch, crop pixels


def _detections(text: str, scores: list[float] | None = None, *, skip: str = "") -> Detections:
    """One row of boxes, x = 10 + i * STEP, for each character not at an index in `skip`."""
    idx = [i for i in range(len(text)) if str(i) not in skip]
    xyxy = np.array([[10 + i * STEP, 10, 10 + i * STEP + W, 50] for i in idx], np.float64)
    classes = np.array([CLASS_NAMES.index(text[i]) for i in idx], np.intp)
    s = np.array([0.9 if scores is None else scores[i] for i in idx], np.float64)
    class_scores = np.full((len(idx), N), 0.01)
    class_scores[np.arange(len(idx)), classes] = s
    return Detections(
        xyxy=xyxy.reshape(-1, 4), scores=s, classes=classes, class_scores=class_scores
    )


def _line(text: str, box: tuple[int, int, int, int]) -> LineRead:
    """A CTC read of `text`: each character two steps wide, centred where its box is."""
    px_per_step = STEP / 4  # four steps per character pitch
    steps = int((box[2] - box[0]) / px_per_step) + 1
    probs = np.zeros((steps, OTHER + 1), np.float32)
    probs[:, BLANK] = 1.0
    for i, ch in enumerate(text):
        centre = 10 + i * STEP + W / 2 - box[0]
        first = int(centre / px_per_step) - 1
        for t in (first, first + 1):
            probs[t] = 0.0
            probs[t, 1 + CLASS_NAMES.index(ch)] = 0.97
            probs[t, OTHER] = 0.03
    return LineRead(probs=probs, box=box, px_per_step=px_per_step)


def _fused(found: Detections, rec_text: str) -> tuple[str, list[str]]:
    lay = layout(found, (60, 400), confidence=0.25)
    chars = fuse_line(found, lay.rows[0], _line(rec_text, lay.lines[0]), row=0)
    return "".join(CLASS_NAMES[int(c.probs.argmax())] for c in chars), [c.source for c in chars]


def test_where_both_read_a_character_the_recogniser_weighs_more() -> None:
    text, sources = _fused(_detections("ABS123"), "AB5123")
    assert text == "AB5123"
    assert sources == ["both"] * 6


def test_a_character_the_detector_missed_is_kept_with_a_box_where_it_was_read() -> None:
    found = _detections("7ABC123", skip="3")
    lay = layout(found, (60, 400), confidence=0.25)
    chars = fuse_line(found, lay.rows[0], _line("7ABC123", lay.lines[0]), row=0)
    assert "".join(CLASS_NAMES[int(c.probs.argmax())] for c in chars) == "7ABC123"
    missed = chars[3]
    assert missed.source == "recogniser"
    assert chars[2].box[2] <= missed.box[0] + W / 2 and missed.box[2] - W / 2 <= chars[4].box[0]


def test_a_box_the_recogniser_does_not_see_is_dropped() -> None:
    text, sources = _fused(_detections("AB1234"), "AB234")
    assert text == "AB234"
    assert "detector" not in sources


def test_a_weak_box_continuing_the_row_widens_the_serial_region() -> None:
    found = _detections("T123456C", scores=[0.1, *[0.9] * 6, 0.12])
    narrow = layout(found, (60, 400), confidence=0.25)
    wide = layout(found, (60, 400), confidence=0.25, extend_confidence=0.05)
    assert len(narrow.rows[0]) == 6 and len(wide.rows[0]) == 8
    assert wide.lines[0][0] < narrow.lines[0][0] and wide.lines[0][2] > narrow.lines[0][2]


def test_a_weak_box_off_the_row_does_not() -> None:
    found = _detections("123456")
    stray = Detections(
        xyxy=np.vstack([found.xyxy, [[170, 52, 190, 60]]]),  # small, below the row: a sticker
        scores=np.append(found.scores, 0.2),
        classes=np.append(found.classes, 5),
        class_scores=np.vstack([found.class_scores, np.full((1, N), 0.01)]),
    )
    assert len(layout(stray, (60, 400), confidence=0.25, extend_confidence=0.05).rows[0]) == 6


def test_nothing_detected_gives_no_rows() -> None:
    empty = Detections(
        xyxy=np.zeros((0, 4)),
        scores=np.zeros(0),
        classes=np.zeros(0, np.intp),
        class_scores=np.zeros((0, N)),
    )
    assert layout(empty, (60, 400), confidence=0.25).rows == ()
