"""RapidOCR's own general-purpose pipeline, read as a plate reader: the yardstick we compare with.

PP-OCRv4 text detection, angle classifier and recognition (rapidocr-onnxruntime, Apache-2.0,
models in its wheel; the `bench` extra). The tallest text line it finds is taken as the plate's
serial; with no line found, its recogniser reads the whole crop. Used by `bench/readers.py`
and as the second, independent reader of `training.pseudo_label`.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from plate_ocr.errors import ConfigError

__all__ = ["rapidocr_reader"]


def rapidocr_reader() -> Callable[[npt.NDArray[np.uint8]], str]:
    """A function reading one BGR crop to its raw text (not normalised)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ConfigError("RapidOCR is not installed: pip install 'plate-ocr-stream[bench]'") from e
    engine = RapidOCR()

    def height(found: Any) -> float:
        ys = [point[1] for point in found[0]]
        return float(max(ys) - min(ys))

    def read(image: npt.NDArray[np.uint8]) -> str:
        found, _ = engine(image)
        if found:
            return str(max(found, key=height)[1])
        rec, _ = engine(image, use_det=False, use_cls=False, use_rec=True)
        return str(rec[0][0]) if rec else ""

    return read
