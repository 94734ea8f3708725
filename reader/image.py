"""Turning job input into pixels: bytes to a BGR array, and `file://` references to bytes.

Pure functions with no Redis and no torch, so they can be tested and reused anywhere. Every
refusal is a `JobError` carrying the `ErrorCode` that the error reading will show.
"""

import io
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from plate_ocr.errors import JobError
from schemas.codes import ErrorCode

__all__ = ["BgrImage", "decode_image", "ensure_bgr", "load_file_ref", "load_path"]

BgrImage = npt.NDArray[np.uint8]
"""An HxWx3 uint8 array in OpenCV's BGR channel order."""

_JPEG_SOI = b"\xff\xd8"
_JPEG_SOS = b"\xff\xda"
_JPEG_EOI = b"\xff\xd9"


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> BgrImage:
    """Decode image bytes to an HxWx3 BGR uint8 array.

    Grayscale, alpha and 16-bit images are converted, not refused. The pixel count is read from
    the header before anything is decoded, so a small file claiming huge dimensions costs nothing.
    """
    if not data:
        raise JobError(ErrorCode.EMPTY_IMAGE, "the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise JobError(
            ErrorCode.IMAGE_TOO_LARGE, f"the image is {len(data)} bytes, over the {max_bytes} limit"
        )
    width, height = _header_size(data)
    if width * height > max_pixels:
        raise JobError(
            ErrorCode.IMAGE_TOO_MANY_PIXELS,
            f"the image is {width}x{height} pixels, over the {max_pixels} pixel limit",
        )
    if _is_truncated_jpeg(data):
        # OpenCV 4.x decodes a truncated JPEG to a partly grey image with only a warning.
        raise JobError(ErrorCode.UNDECODABLE_IMAGE, "the JPEG data is truncated (no end marker)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise JobError(ErrorCode.UNDECODABLE_IMAGE, "the image data is corrupt or truncated")
    return ensure_bgr(image)


def ensure_bgr(image: npt.NDArray[Any]) -> BgrImage:
    """Return `image` as a contiguous HxWx3 BGR uint8 array (gray, BGRA and 16-bit are converted).

    Raises ValueError for arrays that are not an image at all; callers handing in arrays own them.
    """
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # as cv2.imread does for 16-bit files
    elif image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or uint16 image, got {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(image, dtype=np.uint8)


def load_file_ref(ref: str, *, allowed_roots: Sequence[Path], max_bytes: int) -> bytes:
    """Read the bytes behind a `file:///abs/path` reference, only from under `allowed_roots`.

    Symlinks and `..` are resolved before the check, so neither can escape a root. A path
    outside the roots is refused before its existence is looked at, so a job cannot probe the
    worker's file system.
    """
    parts = urlsplit(ref)
    if parts.scheme != "file":
        raise JobError(ErrorCode.UNSUPPORTED_REFERENCE, f"{_short(ref)} is not a file:// reference")
    if parts.netloc not in ("", "localhost"):
        raise JobError(
            ErrorCode.UNSUPPORTED_REFERENCE,
            f"{_short(ref)} names the host {parts.netloc!r}; only local files can be read",
        )
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise JobError(ErrorCode.UNSUPPORTED_REFERENCE, f"{_short(ref)} is not an absolute path")
    if not allowed_roots:
        raise JobError(
            ErrorCode.PATH_NOT_ALLOWED,
            "file:// references are disabled: set PLATE_OCR_ALLOWED_ROOTS to the folders "
            "the worker may read from",
        )
    roots = [root.resolve() for root in allowed_roots]
    try:
        if not _is_under(path.resolve(strict=False), roots):
            raise JobError(ErrorCode.PATH_NOT_ALLOWED, f"{path} is outside the allowed roots")
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on Python 3.11
        raise JobError(ErrorCode.IMAGE_NOT_FOUND, f"{path} does not exist") from e
    if not _is_under(resolved, roots):  # a link created between the two resolves
        raise JobError(ErrorCode.PATH_NOT_ALLOWED, f"{path} is outside the allowed roots")
    return load_path(resolved, max_bytes=max_bytes)


def load_path(path: Path, *, max_bytes: int) -> bytes:
    """Read a whole file, refusing one over `max_bytes` before reading any of it."""
    try:
        with open(path, "rb") as f:
            # fstat on the open file, not stat on the name, so a swapped file cannot slip by.
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise JobError(ErrorCode.IMAGE_NOT_FOUND, f"{path} is not a regular file")
            if info.st_size > max_bytes:
                raise JobError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"{path} is {info.st_size} bytes, over the {max_bytes} limit",
                )
            data = f.read(max_bytes + 1)  # +1: notice a file that grew after the fstat
    except FileNotFoundError as e:
        raise JobError(ErrorCode.IMAGE_NOT_FOUND, f"{path} does not exist") from e
    except IsADirectoryError as e:
        raise JobError(ErrorCode.IMAGE_NOT_FOUND, f"{path} is a directory") from e
    except PermissionError as e:
        raise JobError(ErrorCode.IMAGE_NOT_FOUND, f"{path} is not readable by the worker") from e
    if len(data) > max_bytes:
        raise JobError(ErrorCode.IMAGE_TOO_LARGE, f"{path} is over the {max_bytes} byte limit")
    return data


def _header_size(data: bytes) -> tuple[int, int]:
    # PNG and baseline JPEG headers are read here, a few us instead of Pillow's ~20; anything
    # else, or anything odd about them, goes to Pillow, which has the last word.
    fast = _png_size(data) or _jpeg_size(data)
    if fast is not None:
        return fast
    try:
        with _pil_open()(io.BytesIO(data)) as img:  # lazy: reads the header only
            width, height = img.size
    # Pillow's own bomb guard, above our usual limit; its warning is an error where warnings
    # are (as under pytest). Not silenced with catch_warnings: that is not thread-safe.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise JobError(ErrorCode.IMAGE_TOO_MANY_PIXELS, str(e)) from e
    except UnidentifiedImageError as e:
        raise JobError(ErrorCode.UNDECODABLE_IMAGE, "not an image in any known format") from e
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's plugins raise all three
        raise JobError(ErrorCode.UNDECODABLE_IMAGE, f"unreadable image header: {e}") from e
    if width <= 0 or height <= 0:
        raise JobError(ErrorCode.UNDECODABLE_IMAGE, f"the image claims a size of {width}x{height}")
    return width, height


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"
# Start-of-frame markers (they carry the size): C0-CF less DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG_MAGIC):
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(_JPEG_SOI):
        return None
    i, end = 2, len(data)
    while i + 9 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in _JPEG_SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return (width, height) if width > 0 and height > 0 else None
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _pil_open() -> Callable[[io.BytesIO], Image.Image]:
    # Importing ultralytics swaps PIL.Image.open for a wrapper that tries to pip-install pi-heif
    # the first time Pillow cannot identify a file. Sniffing an untrusted job's header must not
    # do that, so use the Pillow original that the wrapper keeps.
    opener = Image.open
    original = getattr(sys.modules.get(opener.__module__ or ""), "_image_open", None)
    return original if callable(original) else opener


def _is_truncated_jpeg(data: bytes) -> bool:
    # Entropy-coded data stuffs every 0xFF byte, so an end marker after the last start-of-scan
    # can only be the real one; an EXIF thumbnail's markers all come before the main scan.
    if not data.startswith(_JPEG_SOI):
        return False
    return data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS)


def _is_under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _short(ref: str, limit: int = 200) -> str:
    return repr(ref if len(ref) <= limit else ref[:limit] + "...")
