"""The model call, made robust: one call per batch, and a crop that breaks the model fails alone."""

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from schemas import ModelInfo
from worker.readings import Recognition

__all__ = ["Reader", "read_each"]

log = logging.getLogger("plate_ocr.worker.inference")


class Reader(Protocol):
    """The OCR engine as the worker sees it: a pure function of decoded images."""

    @property
    def model_info(self) -> ModelInfo: ...
    @property
    def device(self) -> str: ...
    def read_arrays(self, images: Sequence[np.ndarray]) -> Sequence[Recognition]: ...


def read_each(reader: Reader, images: Sequence[np.ndarray]) -> list[Recognition | Exception]:
    """Each image's recognition, or the exception reading it raised. One model call for the
    batch; should it fail, one call per image, so that a crop that breaks the model fails alone
    instead of taking its batch-mates down with it."""
    try:
        return list(reader.read_arrays(images))
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
