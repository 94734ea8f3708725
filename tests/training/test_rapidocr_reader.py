"""training.rapidocr_reader: which of RapidOCR's boxes make the plate's serial line."""

from training.rapidocr_reader import tallest_line


def _box(x1: float, y1: float, x2: float, y2: float, text: str) -> list[object]:
    return [[[x1, y1], [x2, y1], [x2, y2], [x1, y2]], text, 0.9]


def test_a_serial_split_at_a_dash_is_joined_left_to_right() -> None:
    found = [
        _box(120, 20, 200, 60, "1234"),  # right half of the serial, found first
        _box(10, 2, 190, 14, "NEW YORK"),  # the state name above it: short
        _box(20, 21, 100, 61, "ABC"),
        _box(60, 66, 150, 76, "EMPIRE STATE"),  # the slogan below
    ]
    assert [box[1] for box in tallest_line(found)] == ["ABC", "1234"]


def test_a_small_sticker_beside_the_serial_is_left_out() -> None:
    found = [_box(20, 20, 180, 60, "ABC1234"), _box(185, 30, 200, 40, "23")]
    assert [box[1] for box in tallest_line(found)] == ["ABC1234"]
