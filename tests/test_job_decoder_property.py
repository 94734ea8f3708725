"""Property tests of the two doors untrusted input comes through: the image decoder and the job
intake. Whatever comes in, the answer is a valid value or a JobError, never another exception
(which the worker would report as an inference failure, or worse, crash on)."""

import json
import struct
import zlib
from typing import Any

import fakeredis
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.job import Job
from rq.serializers import JSONSerializer

from plate_ocr.constants import JOB_FUNC_NAME
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from producer import encode_png
from reader.image import decode_image
from schemas import PlateJob
from worker.intake import admit
from worker.ledger import Taken

pytest.importorskip("cv2")

MAX_BYTES = 1 << 20
MAX_PIXELS = 1 << 20
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- images ----------------------------------------------------------------------------------------


def _jpeg(array: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", array)
    assert ok
    return bytes(buf.tobytes())


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    )


_pixels = st.builds(
    lambda h, w, c, seed: (
        np.random.default_rng(seed)
        .integers(0, 256, (h, w, c) if c > 1 else (h, w), np.uint8)
        .astype(np.uint8)
    ),
    st.integers(1, 24),
    st.integers(1, 24),
    st.sampled_from([1, 3, 4]),
    st.integers(0, 2**32 - 1),
)
_valid_images = st.one_of(
    _pixels.map(encode_png),
    _pixels.filter(lambda a: a.ndim == 2 or a.shape[2] == 3).map(_jpeg),
)


@st.composite
def _mutated(draw: st.DrawFn, images: st.SearchStrategy[bytes]) -> bytes:
    """A valid image with some bytes flipped, cut short, or grown: the corruptions that reach
    the header parsers and the decoders rather than bouncing off the magic number."""
    data = bytearray(draw(images))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    return bytes(data) + draw(st.binary(max_size=16))


_image_bytes = st.one_of(
    st.binary(max_size=256),
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00"]).flatmap(
        lambda magic: st.binary(max_size=128).map(lambda tail: magic + tail)
    ),
    st.builds(
        _png_header,
        st.integers(0, 2**31 - 1),
        st.integers(0, 2**31 - 1),
        st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
        st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    ).flatmap(lambda head: st.binary(max_size=64).map(lambda tail: head + tail)),
    _mutated(_valid_images),
)


# Pillow warns (UserWarning) about some corrupt headers, e.g. a TIFF with broken EXIF; the
# suite turns warnings into errors, but for the worker they are noise, not a failure mode.
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@PROPERTY
@given(_image_bytes)
def test_any_bytes_decode_to_an_hxwx3_uint8_image_or_a_job_error(data: bytes) -> None:
    try:
        image = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    except JobError:
        return
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 1 and image.shape[1] >= 1
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS


@PROPERTY
@given(_valid_images)
def test_every_valid_png_and_jpeg_decodes(data: bytes) -> None:
    image = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


# -- jobs ------------------------------------------------------------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_b64 = st.binary(max_size=48).map(lambda b: __import__("base64").b64encode(b).decode())

# Values that look like a PlateJob field by field, so that the validators themselves get exercised
# (a purely random dict almost never gets past "unknown field").
_plate_job_like = st.fixed_dictionaries(
    {},
    optional={
        "image_b64": st.one_of(_b64, st.text(max_size=20), _json),
        "image_ref": st.one_of(
            st.sampled_from(["file:///etc/passwd", "redis://k", "file://", "redis://"]),
            st.text(max_size=20),
            _json,
        ),
        "camera_id": st.one_of(st.text(max_size=20), _json),
        "captured_at": st.one_of(
            st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-45", "", "0"]), _json
        ),
        "box": st.one_of(
            st.fixed_dictionaries(
                {"x1": _json_scalars, "y1": _json_scalars, "x2": _json_scalars, "y2": _json_scalars}
            ),
            _json,
        ),
        "track_id": st.one_of(st.text(max_size=20), _json),
        "metadata": _json,
        "enqueued_at": st.one_of(st.sampled_from(["2024-01-01T00:00:00+00:00"]), _json),
        "schema_version": st.one_of(st.sampled_from(["1.0", "1.9", "2.0", "", "1"]), _json),
        "extra": _json,
    },
)

JOB_ID = "property-job"
SETTINGS = Settings(max_metadata_bytes=256)


@pytest.fixture(scope="module")
def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()  # Job.create wants a connection; nothing is written to it


def _taken(data: bytes) -> Taken:
    return Taken(job_id=JOB_ID, execution_id="e", data=data, attempts=0, started_at=0.0)


def _payload(fake: fakeredis.FakeRedis, func: str, args: list[Any]) -> bytes:
    """The job's payload exactly as RQ stores it in the job hash (JSON, zlib-compressed)."""
    job = Job.create(func, args=args, id=JOB_ID, connection=fake, serializer=JSONSerializer)
    return bytes(job.data)


def _admit_or_job_error(data: bytes) -> PlateJob | None:
    try:
        plate_job = admit(_taken(data), SETTINGS)
    except JobError:
        return None
    assert isinstance(plate_job, PlateJob)
    return plate_job


@PROPERTY
@given(
    value=st.one_of(_json, _plate_job_like, _plate_job_like.map(lambda d: {**d, "job_id": JOB_ID}))
)
def test_any_json_argument_is_admitted_as_a_plate_job_or_refused_with_a_job_error(
    fake: fakeredis.FakeRedis, value: Any
) -> None:
    plate_job = _admit_or_job_error(_payload(fake, JOB_FUNC_NAME, [value]))
    if plate_job is not None:
        assert plate_job.job_id == JOB_ID
        assert (plate_job.image_b64 is None) != (plate_job.image_ref is None)
        assert plate_job.metadata_bytes() <= SETTINGS.max_metadata_bytes


@PROPERTY
@given(func=st.text(min_size=1, max_size=40), args=st.lists(_json, max_size=3))
def test_any_function_name_and_arguments_are_admitted_or_refused_with_a_job_error(
    fake: fakeredis.FakeRedis, func: str, args: list[Any]
) -> None:
    _admit_or_job_error(_payload(fake, func, args))


@PROPERTY
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda v: json.dumps(v).encode()),
        _json.map(lambda v: zlib.compress(json.dumps(v).encode())),
    )
)
def test_any_raw_payload_is_admitted_or_refused_with_a_job_error(payload: bytes) -> None:
    # A foreign producer's bytes in the job hash: pickle, garbage, or JSON of the wrong shape.
    _admit_or_job_error(payload)
