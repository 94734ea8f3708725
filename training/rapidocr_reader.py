"""RapidOCR's own general-purpose pipeline, read as a plate reader: the yardstick we compare with.

PP-OCRv4 text detection, angle classifier and recognition (rapidocr-onnxruntime, Apache-2.0,
models in its wheel; the `bench` extra). The tallest text line it finds is taken as the plate's
serial: the tallest box, and the boxes beside it on its line (centre within 0.4 of its height,
at least 0.6 as tall), joined left to right, because its detector often splits a serial at a
dash, a gap or a state emblem. With no box found, its recogniser reads the whole crop. On 300
dev plates the tallest box alone read 70.0% exactly, the line 77.3% (thresholds from 0.25 to
0.5 and from 0.5 to 0.75: 76.7-77.3%). Used by `bench/readers.py` and as the second,
independent reader of `training.pseudo_label`.
"""

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from plate_ocr.errors import ConfigError

__all__ = ["rapidocr_reader", "tallest_line"]

_SAME_LINE_DY: Final = 0.4  # centre offset, in heights of the tallest box
_SAME_LINE_HEIGHT: Final = 0.6  # least height, as a share of the tallest box's


def _span(found: Any, axis: int) -> tuple[float, float]:
    values = [float(point[axis]) for point in found[0]]
    return min(values), max(values)


def tallest_line(found: Sequence[Any]) -> list[Any]:
    """RapidOCR's boxes ([corners, text, score]) on the tallest box's line, left to right."""

    def height(box: Any) -> float:
        low, high = _span(box, 1)
        return high - low

    def centre(box: Any) -> float:
        return sum(_span(box, 1)) / 2

    tallest = max(found, key=height)
    top = height(tallest)
    line = [
        box
        for box in found
        if abs(centre(box) - centre(tallest)) < _SAME_LINE_DY * top
        and height(box) > _SAME_LINE_HEIGHT * top
    ]
    return sorted(line, key=lambda box: _span(box, 0)[0])


def rapidocr_reader() -> Callable[[npt.NDArray[np.uint8]], str]:
    """A function reading one BGR crop to its raw text (not normalised)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ConfigError("RapidOCR is not installed: pip install 'plate-ocr-stream[bench]'") from e
    engine = RapidOCR()

    def read(image: npt.NDArray[np.uint8]) -> str:
        found, _ = engine(image)
        if found:
            return "".join(str(box[1]) for box in tallest_line(found))
        rec, _ = engine(image, use_det=False, use_cls=False, use_rec=True)
        return str(rec[0][0]) if rec else ""

    return read
