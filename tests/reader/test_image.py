"""Decoding and file references: every refusal carries the code its error reading will show."""

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from plate_ocr.errors import JobError
from reader.image import decode_image, ensure_bgr, load_file_ref
from schemas.codes import ErrorCode

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1_000_000}


def _encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _plate(h: int = 40, w: int = 120) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _code(excinfo: pytest.ExceptionInfo[JobError]) -> ErrorCode:
    return excinfo.value.code


def test_png_round_trips_exactly() -> None:
    image = _plate()
    decoded = decode_image(_encode(image), **LIMITS)
    assert decoded.dtype == np.uint8 and decoded.shape == (40, 120, 3)
    assert np.array_equal(decoded, image)


def test_jpeg_decodes_to_bgr() -> None:
    image = np.zeros((40, 120, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    decoded = decode_image(_encode(image, ".jpg"), **LIMITS)
    assert decoded.shape == (40, 120, 3)
    assert decoded[20, 60, 2] > 240 and decoded[20, 60, 0] < 15


def test_grayscale_is_read_as_three_equal_channels() -> None:
    gray = _plate()[:, :, 0]
    decoded = decode_image(_encode(gray), **LIMITS)
    assert decoded.shape == (40, 120, 3)
    assert all(np.array_equal(decoded[:, :, c], gray) for c in range(3))


def test_alpha_channel_is_dropped() -> None:
    bgra = np.dstack([_plate(), np.full((40, 120), 7, np.uint8)])
    decoded = decode_image(_encode(bgra), **LIMITS)
    assert np.array_equal(decoded, bgra[:, :, :3])


def test_sixteen_bit_is_scaled_to_eight_bit() -> None:
    deep = np.full((40, 120, 3), 0xAB12, dtype=np.uint16)
    decoded = decode_image(_encode(deep), **LIMITS)
    assert decoded.dtype == np.uint8
    assert int(decoded[0, 0, 0]) == 0xAB


def test_empty_bytes() -> None:
    with pytest.raises(JobError) as e:
        decode_image(b"", **LIMITS)
    assert _code(e) is ErrorCode.EMPTY_IMAGE


def test_too_many_bytes() -> None:
    data = _encode(_plate())
    with pytest.raises(JobError) as e:
        decode_image(data, max_bytes=len(data) - 1, max_pixels=10**6)
    assert _code(e) is ErrorCode.IMAGE_TOO_LARGE


@pytest.mark.parametrize("size", [(5000, 5000), (10_000, 10_000), (50_000, 50_000)])
def test_huge_dimensions_are_refused_from_the_header(size: tuple[int, int]) -> None:
    # These files hold no pixel data at all: refusing them proves nothing was decoded.
    with pytest.raises(JobError) as e:
        decode_image(_png_header_only(*size), max_bytes=1 << 20, max_pixels=16_000_000)
    assert _code(e) is ErrorCode.IMAGE_TOO_MANY_PIXELS


def test_pixel_limit_applies_to_real_images() -> None:
    with pytest.raises(JobError) as e:
        decode_image(_encode(_plate()), max_bytes=1 << 20, max_pixels=40 * 120 - 1)
    assert _code(e) is ErrorCode.IMAGE_TOO_MANY_PIXELS


@pytest.mark.parametrize("data", [b"not an image at all", b"\xff\xd8\xff\xe0garbage", b"\x00" * 64])
def test_garbage_is_undecodable(data: bytes) -> None:
    with pytest.raises(JobError) as e:
        decode_image(data, **LIMITS)
    assert _code(e) is ErrorCode.UNDECODABLE_IMAGE


@pytest.mark.parametrize("keep", [0.5, 0.95, -2])
def test_truncated_jpeg_is_undecodable(keep: float) -> None:
    data = _encode(cv2.resize(_plate(), (600, 200)), ".jpg")
    cut = data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)]
    with pytest.raises(JobError) as e:
        decode_image(cut, **LIMITS)
    assert _code(e) is ErrorCode.UNDECODABLE_IMAGE


def test_truncated_png_is_undecodable() -> None:
    data = _encode(_plate())
    with pytest.raises(JobError) as e:
        decode_image(data[: len(data) // 2], **LIMITS)
    assert _code(e) is ErrorCode.UNDECODABLE_IMAGE


def test_ensure_bgr_refuses_what_is_not_an_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ensure_bgr(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="channels"):
        ensure_bgr(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        ensure_bgr(np.zeros((0, 4, 3), dtype=np.uint8))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    allowed = tmp_path / "crops"
    allowed.mkdir()
    (allowed / "plate one.png").write_bytes(b"PNGDATA")
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    return allowed


def _ref_code(ref: str, roots: list[Path], max_bytes: int = 1024) -> ErrorCode:
    with pytest.raises(JobError) as e:
        load_file_ref(ref, allowed_roots=roots, max_bytes=max_bytes)
    return _code(e)


def test_file_under_a_root_is_read(root: Path) -> None:
    ref = f"file://{root}/plate%20one.png"
    assert load_file_ref(ref, allowed_roots=[root], max_bytes=1024) == b"PNGDATA"


def test_dot_dot_cannot_leave_the_root(root: Path) -> None:
    assert _ref_code(f"file://{root}/../secret.txt", [root]) is ErrorCode.PATH_NOT_ALLOWED


def test_symlink_out_of_the_root_is_refused(root: Path) -> None:
    (root / "link.png").symlink_to(root.parent / "secret.txt")
    assert _ref_code(f"file://{root}/link.png", [root]) is ErrorCode.PATH_NOT_ALLOWED


def test_symlink_into_the_root_is_followed(root: Path) -> None:
    (root.parent / "outside.png").symlink_to(root / "plate one.png")
    ref = f"file://{root.parent}/outside.png"
    assert load_file_ref(ref, allowed_roots=[root], max_bytes=1024) == b"PNGDATA"


def test_missing_file_under_a_root_is_not_found(root: Path) -> None:
    assert _ref_code(f"file://{root}/gone.png", [root]) is ErrorCode.IMAGE_NOT_FOUND


def test_missing_file_outside_the_roots_does_not_reveal_it_is_missing(root: Path) -> None:
    assert _ref_code("file:///nonexistent/gone.png", [root]) is ErrorCode.PATH_NOT_ALLOWED


def test_no_roots_means_file_references_are_off(root: Path) -> None:
    with pytest.raises(JobError) as e:
        load_file_ref(f"file://{root}/plate%20one.png", allowed_roots=[], max_bytes=1024)
    assert _code(e) is ErrorCode.PATH_NOT_ALLOWED
    assert "PLATE_OCR_ALLOWED_ROOTS" in e.value.message


def test_file_over_the_byte_limit_is_refused(root: Path) -> None:
    ref = f"file://{root}/plate%20one.png"
    assert _ref_code(ref, [root], max_bytes=6) is ErrorCode.IMAGE_TOO_LARGE


def test_a_directory_is_not_an_image(root: Path) -> None:
    (root / "sub").mkdir()
    assert _ref_code(f"file://{root}/sub", [root]) is ErrorCode.IMAGE_NOT_FOUND


@pytest.mark.parametrize(
    "ref",
    [
        "redis://plate-ocr:image:1",
        "http://example.com/a.png",
        "file://host/a.png",
        "/abs/no/scheme.png",
    ],
)
def test_other_references_are_unsupported(root: Path, ref: str) -> None:
    assert _ref_code(ref, [root]) is ErrorCode.UNSUPPORTED_REFERENCE


def test_importing_image_does_not_load_torch() -> None:
    code = "import sys, reader.image; sys.exit(bool({'torch', 'ultralytics'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_garbage_never_triggers_ultralytics_plugin_install(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import ultralytics  # noqa: F401 - its import patches PIL.Image.open

    with pytest.raises(JobError) as e:
        decode_image(b"definitely not an image", **LIMITS)
    assert _code(e) is ErrorCode.UNDECODABLE_IMAGE
    assert "pi-heif" not in caplog.text


def _pillow_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size


@pytest.mark.parametrize(
    "params",
    [
        (".png", []),
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".jpg", [cv2.IMWRITE_JPEG_OPTIMIZE, 1, cv2.IMWRITE_JPEG_QUALITY, 40]),
    ],
)
@pytest.mark.parametrize("shape", [(1, 1), (37, 91), (480, 17)])
def test_the_fast_header_reader_agrees_with_pillow(
    params: tuple[str, list[int]], shape: tuple[int, int]
) -> None:
    from reader.image import _header_size

    ext, flags = params
    ok, buf = cv2.imencode(ext, np.zeros((*shape, 3), np.uint8), flags)
    assert ok
    data = buf.tobytes()
    assert _header_size(data) == _pillow_size(data) == (shape[1], shape[0])


def test_a_jpeg_header_claiming_huge_dimensions_is_refused_before_decoding() -> None:
    data = _encode(_plate(), ".jpg")
    sof = data.index(b"\xff\xc0")
    huge = data[: sof + 5] + struct.pack(">HH", 30_000, 30_000) + data[sof + 9 :]
    with pytest.raises(JobError) as e:
        decode_image(huge, max_bytes=1 << 20, max_pixels=16_000_000)
    assert _code(e) is ErrorCode.IMAGE_TOO_MANY_PIXELS


def test_a_jpeg_with_a_broken_segment_chain_is_left_to_pillow() -> None:
    from reader.image import _jpeg_size

    data = _encode(_plate(), ".jpg")
    broken = data[:2] + b"\x00\x00" + data[4:]  # no marker where the first segment should be
    assert _jpeg_size(broken) is None
    with pytest.raises(JobError) as e:
        decode_image(broken, **LIMITS)
    assert _code(e) is ErrorCode.UNDECODABLE_IMAGE
