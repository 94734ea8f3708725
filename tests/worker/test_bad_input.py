"""Bad input, one case at a time: each ends as an error reading with its stable code, and the
good crops sharing its batch are still read. The real loop, the real Redis, the NullReader."""

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from plate_ocr.constants import JOB_FUNC_NAME
from plate_ocr.settings import Settings
from producer import PlateProducer, encode_png
from schemas import ErrorCode, PlateJob, PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader

pytestmark = pytest.mark.redis

GOOD_SHAPE = (10, 30)  # (height, width): the NullReader reads it back as "30X10"
GOOD = encode_png(np.full((*GOOD_SHAPE, 3), 90, np.uint8))

Submit = Callable[[PlateProducer], str]


def noise_png(height: int, width: int) -> bytes:
    # Noise does not compress, so the byte size is about height * width * 3.
    return encode_png(np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8))


def jpeg(height: int, width: int) -> bytes:
    import cv2

    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return bytes(buf.tobytes())


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no pixel data behind it."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def enqueue_payload(client: redis.Redis, settings: Settings, payload: dict[str, Any]) -> str:
    """Enqueue our function with a hand-made argument, as a buggy or hostile producer could."""
    job_id = PlateJob(image_b64=b"x").job_id
    queue = Queue(settings.queue, connection=client, serializer=JSONSerializer)
    queue.enqueue(JOB_FUNC_NAME, {**payload, "job_id": job_id}, job_id=job_id)
    return job_id


def read_among_good(
    settings: Settings,
    client: redis.Redis,
    submit_bad: Submit,
    *,
    worker_settings: Settings | None = None,
) -> PlateReading:
    """Submit good, bad, good in one batch, run a burst worker; return the bad job's reading
    after checking every good neighbour was read."""
    producer = PlateProducer(settings, connection=client)
    good = producer.submit_many([GOOD, GOOD])
    bad = submit_bad(producer)
    good += producer.submit_many([GOOD, GOOD])
    reader = NullReader()
    worker_settings = (worker_settings or settings).model_copy(update={"batch_size": 16})

    BatchWorker(worker_settings, reader=reader, connection=client).work(burst=True)

    # One model call: the bad job neither split the batch nor made the worker retry it.
    assert len(reader.batches) == 1 and reader.batches[0] >= 4
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(settings.results_stream))
    got = {
        r.job_id: r
        for r in (PlateReading.model_validate_json(fields[b"reading"]) for _, fields in entries)
    }
    assert set(got) == {*good, bad}
    assert all(got[j].status == "ok" and got[j].text == "30X10" for j in good)
    return got[bad]


def assert_error(reading: PlateReading, code: ErrorCode) -> None:
    assert reading.status == "error"
    assert reading.error is not None, reading
    assert reading.error.code == code, reading.error.message


# -- the image bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"", ErrorCode.EMPTY_IMAGE, id="empty"),
        pytest.param(jpeg(40, 80)[:1500], ErrorCode.UNDECODABLE_IMAGE, id="truncated-jpeg"),
        pytest.param(noise_png(40, 80)[:3000], ErrorCode.UNDECODABLE_IMAGE, id="truncated-png"),
        pytest.param(b"plate.jpg\n" * 30, ErrorCode.UNDECODABLE_IMAGE, id="not-an-image"),
        pytest.param(b"GIF89a\x10\x00", ErrorCode.UNDECODABLE_IMAGE, id="image-magic-only"),
        pytest.param(
            png_claiming(50_000, 50_000), ErrorCode.IMAGE_TOO_MANY_PIXELS, id="50k-by-50k-png"
        ),
        pytest.param(
            png_claiming(5_000, 4_000), ErrorCode.IMAGE_TOO_MANY_PIXELS, id="over-our-own-limit"
        ),
    ],
)
def test_bad_image_bytes_end_as_coded_errors(
    settings: Settings, redis_client: redis.Redis, data: bytes, code: ErrorCode
) -> None:
    reading = read_among_good(settings, redis_client, lambda p: p.submit(data))
    assert_error(reading, code)


def test_the_pixel_bomb_is_refused_from_a_tiny_file() -> None:
    # What makes it a bomb: a few dozen bytes claiming 2.5 billion pixels.
    assert len(png_claiming(50_000, 50_000)) < 100


def test_an_image_over_the_byte_limit_is_refused_inline_by_file_and_by_key(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    big = noise_png(40, 40)
    assert len(big) > 4000 > len(GOOD)
    (tmp_path / "big.png").write_bytes(big)
    redis_client.set("plate-ocr:image:big", big)
    # The producer's limit is the default; the worker's is smaller, as after a config change.
    strict = settings.model_copy(update={"max_image_bytes": 4000, "allowed_roots": (tmp_path,)})

    for submit in (
        lambda p: p.submit(big),
        lambda p: p.submit_ref(f"file://{tmp_path}/big.png"),
        lambda p: p.submit_ref("redis://plate-ocr:image:big"),
    ):
        redis_client.delete(settings.results_stream)
        reading = read_among_good(settings, redis_client, submit, worker_settings=strict)
        assert_error(reading, ErrorCode.IMAGE_TOO_LARGE)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.full(GOOD_SHAPE, 200, np.uint8), id="grayscale"),
        pytest.param(np.full((*GOOD_SHAPE, 4), 200, np.uint8), id="rgba"),
    ],
)
def test_grayscale_and_rgba_pngs_are_read(
    settings: Settings, redis_client: redis.Redis, image: np.ndarray
) -> None:
    data = encode_png(image)
    assert data[25] == (0 if image.ndim == 2 else 6)  # the IHDR colour type really is grey/RGBA

    reading = read_among_good(settings, redis_client, lambda p: p.submit(data))

    assert reading.status == "ok" and reading.text == "30X10"


# -- the job envelope -----------------------------------------------------------------------------


def test_invalid_base64_is_an_invalid_base64_error(
    settings: Settings, redis_client: redis.Redis
) -> None:
    payload = {"image_b64": "not*base64!"}
    reading = read_among_good(
        settings, redis_client, lambda p: enqueue_payload(redis_client, settings, payload)
    )
    assert_error(reading, ErrorCode.INVALID_BASE64)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"image_b64": "aGk=", "colour": "red"}, id="unknown-field"),
        pytest.param({"image_b64": "aGk=", "image_ref": "redis://k"}, id="two-images"),
        pytest.param({}, id="no-image"),
        pytest.param({"image_b64": "aGk=", "schema_version": "2.0"}, id="future-major-version"),
        pytest.param({"image_b64": "aGk=", "captured_at": "yesterday"}, id="bad-timestamp"),
        pytest.param({"image_ref": "http://example.com/p.png"}, id="http-reference"),
    ],
)
def test_a_job_failing_schema_validation_is_an_invalid_job_error(
    settings: Settings, redis_client: redis.Redis, payload: dict[str, Any]
) -> None:
    reading = read_among_good(
        settings, redis_client, lambda p: enqueue_payload(redis_client, settings, payload)
    )
    assert_error(reading, ErrorCode.INVALID_JOB)


def test_metadata_over_the_workers_limit_is_refused(
    settings: Settings, redis_client: redis.Redis
) -> None:
    metadata = {"note": "n" * 500}
    strict = settings.model_copy(update={"max_metadata_bytes": 100})

    reading = read_among_good(
        settings, redis_client, lambda p: p.submit(GOOD, metadata=metadata), worker_settings=strict
    )

    assert_error(reading, ErrorCode.METADATA_TOO_LARGE)
    assert reading.metadata == metadata  # still echoed, so the consumer can tell which crop it was


def test_metadata_over_the_schema_ceiling_is_refused(
    settings: Settings, redis_client: redis.Redis
) -> None:
    payload = {"image_b64": "aGk=", "metadata": {"blob": "b" * 70_000}}
    reading = read_among_good(
        settings, redis_client, lambda p: enqueue_payload(redis_client, settings, payload)
    )
    assert_error(reading, ErrorCode.METADATA_TOO_LARGE)


def test_the_failed_registry_holds_the_job_with_its_code(
    settings: Settings, redis_client: redis.Redis
) -> None:
    reading = read_among_good(settings, redis_client, lambda p: p.submit(b""))

    failed = FailedJobRegistry(settings.queue, connection=redis_client)
    assert failed.get_job_ids() == [reading.job_id]
    job = Job.fetch(reading.job_id, connection=redis_client, serializer=JSONSerializer)
    result = job.latest_result()
    assert result is not None and result.exc_string is not None
    assert result.exc_string.startswith("empty_image: ")


# -- image references -----------------------------------------------------------------------------


def test_a_file_under_an_allowed_root_is_read(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "ok.png").write_bytes(encode_png(np.zeros((7, 9, 3), np.uint8)))
    allowed = settings.model_copy(update={"allowed_roots": (tmp_path,)})

    reading = read_among_good(
        settings,
        redis_client,
        lambda p: p.submit_ref(f"file://{tmp_path}/ok.png"),
        worker_settings=allowed,
    )

    assert reading.status == "ok" and reading.text == "9X7"


def test_a_missing_file_is_image_not_found(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    allowed = settings.model_copy(update={"allowed_roots": (tmp_path,)})
    reading = read_among_good(
        settings,
        redis_client,
        lambda p: p.submit_ref(f"file://{tmp_path}/nowhere.png"),
        worker_settings=allowed,
    )
    assert_error(reading, ErrorCode.IMAGE_NOT_FOUND)


def _escape_refs(root: Path) -> dict[str, str]:
    (root / "inner").mkdir()
    (root / "link.png").symlink_to("/etc/passwd")
    (root / "inner" / "dirlink").symlink_to("/etc")
    return {
        "absolute": "file:///etc/passwd",
        "dot-dot": f"file://{root}/../../../../etc/passwd",
        "dot-dot-after-a-subfolder": f"file://{root}/inner/../../etc/passwd",
        "percent-encoded-dot-dot": f"file://{root}/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "symlink-to-a-file": f"file://{root}/link.png",
        "symlink-to-a-folder": f"file://{root}/inner/dirlink/passwd",
        "sibling-with-the-root-as-prefix": f"file://{root}-evil/x.png",
    }


@pytest.mark.parametrize(
    "case",
    [
        "absolute",
        "dot-dot",
        "dot-dot-after-a-subfolder",
        "percent-encoded-dot-dot",
        "symlink-to-a-file",
        "symlink-to-a-folder",
        "sibling-with-the-root-as-prefix",
    ],
)
def test_paths_outside_the_allowed_roots_are_refused(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, case: str
) -> None:
    root = tmp_path / "crops"
    root.mkdir()
    ref = _escape_refs(root)[case]
    allowed = settings.model_copy(update={"allowed_roots": (root,)})

    reading = read_among_good(
        settings, redis_client, lambda p: p.submit_ref(ref), worker_settings=allowed
    )

    assert_error(reading, ErrorCode.PATH_NOT_ALLOWED)
    assert reading.error is not None and "root:" not in reading.error.message  # nothing leaked


def test_file_references_are_refused_when_no_root_is_configured(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "ok.png").write_bytes(GOOD)
    assert settings.allowed_roots == ()
    reading = read_among_good(
        settings, redis_client, lambda p: p.submit_ref(f"file://{tmp_path}/ok.png")
    )
    assert_error(reading, ErrorCode.PATH_NOT_ALLOWED)


def test_a_missing_redis_key_is_image_key_missing(
    settings: Settings, redis_client: redis.Redis
) -> None:
    reading = read_among_good(
        settings, redis_client, lambda p: p.submit_ref("redis://plate-ocr:image:never-stored")
    )
    assert_error(reading, ErrorCode.IMAGE_KEY_MISSING)
