"""`Decoder`: a batch's crops decoded into BGR arrays, on a few threads where the CPUs allow.

Runs in the prefetch thread, off the model's path. A crop that cannot be decoded comes back as
its JobError, in its place, so one bad crop never spoils the rest of the batch.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from reader.image import decode_image

__all__ = ["Decoder", "decode_threads_for"]


def decode_threads_for(setting: int | None) -> int:
    """Decode threads for `settings.decode_threads`; None: one per two CPUs, at most 4."""
    if setting is not None:
        return setting
    return min(4, (os.cpu_count() or 1) // 2) if (os.cpu_count() or 1) > 2 else 0


class Decoder:
    """Decodes a batch in one chunk per thread, not one task per image: a task costs ~15 us of
    Python, more than decoding a small crop. With one thread or none, in the caller's thread."""

    def __init__(self, settings: Settings) -> None:
        self._max_bytes = settings.max_image_bytes
        self._max_pixels = settings.max_image_pixels
        self._chunks = decode_threads_for(settings.decode_threads)
        self._pool = (
            ThreadPoolExecutor(max_workers=self._chunks, thread_name_prefix="decode")
            if self._chunks > 1
            else None
        )

    def decode_all(self, blobs: Sequence[bytes | JobError]) -> list[np.ndarray | JobError]:
        if self._pool is None or len(blobs) < 2 * self._chunks:
            return self._decode_chunk(blobs)
        step = -(-len(blobs) // self._chunks)
        chunks = [blobs[i : i + step] for i in range(0, len(blobs), step)]
        return [image for part in self._pool.map(self._decode_chunk, chunks) for image in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _decode_chunk(self, blobs: Sequence[bytes | JobError]) -> list[np.ndarray | JobError]:
        return [self._decode(blob) for blob in blobs]

    def _decode(self, blob: bytes | JobError) -> np.ndarray | JobError:
        if isinstance(blob, JobError):
            return blob
        try:
            return decode_image(blob, max_bytes=self._max_bytes, max_pixels=self._max_pixels)
        except JobError as e:
            return e
