"""The model call, made robust: one call per batch, and a crop that breaks the model fails alone."""

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from schemas import ModelInfo
from worker.readings import Recognition

__all__ = ["Reader", "read_each"]

log = logging.getLogger("plate_ocr.worker.inference")


class Reader(Protocol):
    """The OCR engine as the worker sees it: pure functions of decoded images.

    `preprocess` (resize, letterbox, to tensor) runs in the prefetch thread, off the model's
    path; `infer` is the model call; `read_arrays` is both, for one crop at a time."""

    @property
    def model_info(self) -> ModelInfo: ...
    @property
    def device(self) -> str: ...
    def preprocess(self, images: Sequence[np.ndarray]) -> Any: ...
    def infer(self, batch: Any) -> Sequence[Recognition]: ...
    def read_arrays(self, images: Sequence[np.ndarray]) -> Sequence[Recognition]: ...


def read_each(
    reader: Reader, batch: Any, images: Sequence[np.ndarray]
) -> list[Recognition | Exception]:
    """Each image's recognition, or the exception reading it raised. One model call for the
    preprocessed `batch`; should it fail, one call per image, so that a crop that breaks the
    model fails alone instead of taking its batch-mates down with it."""
    try:
        return list(reader.infer(batch))
    except Exception as e:  # the model failing must not take the worker down
        if len(images) == 1:
            return [e]
        log.exception("inference failed for a batch of %d; reading one by one", len(images))
    results: list[Recognition | Exception] = []
    for image in images:
        try:
            results.extend(reader.read_arrays([image]))
        except Exception as e:
            results.append(e)
    return results
