"""`NullReader`: a reader that reads nothing, instantly.

It measures what the queue path costs without a model (the bookkeeping ceiling in `bench/`) and
lets the worker's tests run without weights. Its text is the image's shape, so a test can tell
which crop a reading came from. Optionally slow, to hold a batch in hand for shutdown tests.
"""

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas import CharacterReading, ModelInfo

__all__ = ["GatedReader", "NullReader", "NullResult"]


@dataclass(frozen=True)
class NullResult:
    text: str
    confidence: float
    characters: tuple[CharacterReading, ...]
    rows: int
    candidates: tuple[tuple[str, float], ...] = ()


class NullReader:
    def __init__(self, *, delay_s: float = 0.0, device: str = "cpu") -> None:
        self._delay_s = delay_s
        self._device = device
        self.batches: list[int] = []

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(name="null", sha256=hashlib.sha256(b"null-reader").hexdigest())

    @property
    def device(self) -> str:
        return self._device

    def preprocess(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(images)

    def infer(self, batch: list[np.ndarray]) -> list[NullResult]:
        return self.read_arrays(batch)

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
        self.batches.append(len(images))
        if self._delay_s:
            time.sleep(self._delay_s)  # stands in for model time, not a wait for work
        return [NullResult(f"{im.shape[1]}X{im.shape[0]}", 1.0, (), 1) for im in images]


class GatedReader(NullReader):
    """Holds its first batch until `release` is set, so that a test can pull Redis away (or fail
    it over, or fill it) while a batch is in the worker's hands."""

    def __init__(self, *, release_timeout_s: float = 60.0) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.release = threading.Event()
        self._release_timeout_s = release_timeout_s

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
        if not self.inside.is_set():
            self.inside.set()
            if not self.release.wait(timeout=self._release_timeout_s):
                raise TimeoutError("the test never released the reader")
        return super().read_arrays(images)
