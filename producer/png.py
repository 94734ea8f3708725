"""`encode_png`: numpy image arrays to PNG bytes without OpenCV or Pillow.

The producer runs on edge boxes that must not need the model stack; a lossless PNG written with
numpy and zlib is all it takes to ship an array to the worker, which decodes it like any crop.
"""

import struct
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["encode_png"]


def encode_png(array: npt.NDArray[np.uint8], *, bgr: bool = True) -> bytes:
    """A lossless PNG of a uint8 image, written with numpy and zlib only (no OpenCV, no Pillow).

    Accepts (H, W) grey, (H, W, 1), (H, W, 3) or (H, W, 4). Colour arrays are taken in OpenCV's
    BGR(A) order, which is what cv2 and ultralytics hand out; pass `bgr=False` for RGB(A) arrays
    (Pillow, imageio).
    """
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        color_type = 0  # greyscale
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        color_type = 2 if array.shape[2] == 3 else 6  # RGB, RGBA
        if bgr:
            array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    else:
        raise ValueError(f"expected an (H, W[, 1|3|4]) image array, got shape {array.shape}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image array is empty: shape {array.shape}")
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = np.ascontiguousarray(array).reshape(height, width * channels)
    # PNG filter 1 ("Sub": each byte minus the same channel of the pixel to its left, mod 256)
    # makes smooth crops compress about twice as well as no filter, at numpy speed.
    filtered = rows.copy()
    filtered[:, channels:] -= rows[:, :-channels]
    scanlines = np.hstack([np.ones((height, 1), np.uint8), filtered]).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines))
        + chunk(b"IEND", b"")
    )
