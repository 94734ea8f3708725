"""Ordering and de-duplication of character boxes, with hand-made detections."""

import numpy as np
import pytest

from plate_ocr.constants import CLASS_NAMES
from reader.postprocess import (
    group_rows,
    naive_order,
    order_characters,
    suppress_duplicates,
)

Det = tuple[str, float, tuple[float, float, float, float]]


def _arrays(dets: list[Det]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xyxy = np.array([box for _, _, box in dets], dtype=np.float32).reshape(-1, 4)
    conf = np.array([c for _, c, _ in dets], dtype=np.float32)
    cls = np.array([CLASS_NAMES.index(ch) for ch, _, _ in dets], dtype=np.float32)
    return xyxy, conf, cls


def _row(text: str, *, y1: float = 10, h: float = 40, w: float = 20, step: float = 24) -> list[Det]:
    return [(ch, 0.9, (5 + i * step, y1, 5 + i * step + w, y1 + h)) for i, ch in enumerate(text)]


def _read(dets: list[Det], confidence: float = 0.25) -> str:
    return order_characters(*_arrays(dets), confidence=confidence).text


def test_one_row_reads_left_to_right_whatever_the_detection_order() -> None:
    dets = _row("ABC1234")
    assert _read(dets[::-1]) == "ABC1234"
    assert _read([dets[3], dets[0], dets[6], dets[1], dets[5], dets[2], dets[4]]) == "ABC1234"


def test_boxes_under_the_threshold_are_dropped() -> None:
    dets = _row("ABC")
    dets[1] = ("B", 0.2, dets[1][2])
    assert _read(dets, confidence=0.25) == "AC"
    assert _read(dets, confidence=0.1) == "ABC"


def test_seed_misread_6lne8784_loses_its_duplicate_4() -> None:
    # The seed read plate 6LNE878 as 6LNE8784: a weak '4' lying mostly inside the last '8',
    # its left edge a little to the right so a sort by x put it last.
    dets = _row("6LNE878")
    x1, y1, x2, y2 = dets[-1][2]
    dets.append(("4", 0.49, (x1 + 3, y1 + 2, x2 + 1, y2 - 2)))
    assert naive_order(*_arrays(dets), confidence=0.25).text == "6LNE8784"
    result = order_characters(*_arrays(dets), confidence=0.25)
    assert result.text == "6LNE878"
    assert result.confidence == pytest.approx(0.9)


def test_two_classes_on_one_character_keep_the_more_confident() -> None:
    dets = _row("A8C")
    dets.append(("B", 0.6, (30, 11, 49, 49)))  # near-identical box to the '8'
    assert _read(dets) == "A8C"
    dets[1] = ("8", 0.5, dets[1][2])
    assert _read(dets) == "ABC"


def test_touching_neighbours_are_both_kept() -> None:
    # Tight kerning: each box overlaps its neighbour by a quarter of its width.
    dets = _row("W1W", w=20, step=15)
    assert _read(dets) == "W1W"


def test_suppression_keeps_indices_most_confident_first() -> None:
    boxes = [(0, 0, 10, 20), (1, 1, 10, 19), (30, 0, 40, 20)]
    kept = suppress_duplicates(boxes, [0.3, 0.8, 0.5])
    assert kept.tolist() == [1, 2]


def test_two_row_plate_reads_the_top_row_first() -> None:
    top = _row("ABC", y1=5, h=20, w=12, step=16)
    bottom = _row("1234", y1=35, h=40)
    dets = [bottom[2], top[1], bottom[0], top[2], bottom[3], top[0], bottom[1]]
    result = order_characters(*_arrays(dets), confidence=0.25)
    assert result.text == "ABC1234"
    assert result.rows == 2
    assert [c.row for c in result.characters] == [0, 0, 0, 1, 1, 1, 1]
    # The seed's sort by x interleaves the rows.
    assert naive_order(*_arrays(dets), confidence=0.25).text != "ABC1234"


def test_small_stacked_characters_stay_in_their_row() -> None:
    # A California dealer-style "DP" stacked in one slot between main characters.
    dets = _row("7AB", h=40)
    dets += [("D", 0.8, (80, 8, 92, 26)), ("P", 0.8, (80, 28, 92, 46))]
    dets += [(ch, 0.9, (100 + i * 24, 10, 120 + i * 24, 50)) for i, ch in enumerate("123")]
    result = order_characters(*_arrays(dets), confidence=0.25)
    assert result.rows == 1
    assert result.text.startswith("7AB") and result.text.endswith("123")


def test_a_slanted_single_row_stays_one_row() -> None:
    dets: list[Det] = [
        (ch, 0.9, (5.0 + i * 24, 10.0 + i * 4, 25.0 + i * 24, 50.0 + i * 4))
        for i, ch in enumerate("ABC1234")
    ]
    assert group_rows([box for _, _, box in dets]).tolist() == [0] * 7
    assert _read(dets) == "ABC1234"


def test_nothing_read_has_no_rows_and_zero_confidence() -> None:
    result = order_characters(np.zeros((0, 4)), np.zeros(0), np.zeros(0), confidence=0.25)
    assert (result.text, result.confidence, result.characters, result.rows) == ("", 0.0, (), 0)
    assert naive_order(np.zeros((0, 4)), [], [], confidence=0.25).rows == 0


def test_plate_confidence_is_the_least_confident_character() -> None:
    dets = _row("ABC")
    dets[2] = ("C", 0.4, dets[2][2])
    result = order_characters(*_arrays(dets), confidence=0.25)
    assert result.confidence == pytest.approx(0.4)
    assert result.rows == 1
    assert result.characters[0].box == pytest.approx(dets[0][2])


def test_naive_order_keeps_duplicates_and_sorts_by_left_edge() -> None:
    dets = _row("AB")
    dets.append(("8", 0.3, (30, 11, 49, 49)))
    result = naive_order(*_arrays(dets), confidence=0.25)
    assert result.text == "AB8"
    assert [c.row for c in result.characters] == [0, 0, 0]


def test_mismatched_array_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        order_characters(np.zeros((2, 4)), [0.5], [1, 2], confidence=0.25)
