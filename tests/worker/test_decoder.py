"""The decode pool: a batch's crops in order, each bad crop its own error, on threads or not."""

import cv2
import numpy as np
import pytest

from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from schemas import ErrorCode
from worker.decoder import Decoder, decode_threads_for


def test_decode_threads_default_to_none_on_two_cores_and_one_per_two_cpus_above(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for cpus, expected in [(1, 0), (2, 0), (4, 2), (8, 4), (64, 4)]:
        monkeypatch.setattr("os.cpu_count", lambda cpus=cpus: cpus)
        assert decode_threads_for(None) == expected
    assert decode_threads_for(3) == 3


@pytest.mark.parametrize("threads", [0, 3])
def test_a_batch_comes_back_in_order_with_each_bad_crop_as_its_error(threads: int) -> None:
    crops: list[bytes | JobError] = [
        cv2.imencode(".png", np.full((10, 20 + i, 3), i, np.uint8))[1].tobytes() for i in range(9)
    ]
    crops[4] = b"not an image"
    crops[7] = JobError(ErrorCode.IMAGE_NOT_FOUND, "gone")
    decoder = Decoder(Settings(decode_threads=threads))
    try:
        out = decoder.decode_all(crops)
    finally:
        decoder.close()
    assert len(out) == 9
    assert isinstance(out[4], JobError) and out[4].code == ErrorCode.UNDECODABLE_IMAGE
    assert out[7] is crops[7]
    for i in (0, 1, 2, 3, 5, 6, 8):
        image = out[i]
        assert isinstance(image, np.ndarray) and image.shape == (10, 20 + i, 3)
