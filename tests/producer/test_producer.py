import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
import redis
import rq
from rq.serializers import JSONSerializer

from plate_ocr.connection import RedisUnavailable
from plate_ocr.constants import JOB_FUNC_NAME, REDIS_IMAGE_KEY_PREFIX
from plate_ocr.errors import JobError, QueueFull, ReadingTimeout
from plate_ocr.settings import Settings
from producer import (
    ImageNotFound,
    ImageTooLarge,
    InvalidJob,
    MetadataTooLarge,
    PlateProducer,
    encode_png,
)
from schemas import DetectorBox, ErrorCode, PlateJob, PlateReading

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]


def queued_job(client: redis.Redis, settings: Settings, job_id: str) -> rq.job.Job:
    queue = rq.Queue(settings.queue, connection=client, serializer=JSONSerializer)
    job = queue.fetch_job(job_id)
    assert job is not None, f"no RQ job {job_id}"
    return job


def queued_plate_job(client: redis.Redis, settings: Settings, job_id: str) -> PlateJob:
    return PlateJob.model_validate(queued_job(client, settings, job_id).args[0])


@pytest.fixture
def producer(settings: Settings, redis_client: redis.Redis) -> PlateProducer:
    return PlateProducer(settings, connection=redis_client)


# --- the job as RQ stores it -------------------------------------------------------------------


def test_a_job_is_an_rq_job_in_rqs_own_layout(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    job_id = producer.submit(b"\x89PNG...", camera_id="gate-3", metadata={"lane": 2})
    job = queued_job(redis_client, settings, job_id)
    assert job.id == job_id
    assert job.func_name == JOB_FUNC_NAME
    assert job.origin == settings.queue
    assert (job.result_ttl, job.failure_ttl, job.timeout) == (
        settings.result_ttl_s,
        settings.failure_ttl_s,
        settings.lease_s,
    )
    assert rq.Queue(settings.queue, connection=redis_client).job_ids == [job_id]
    plate_job = queued_plate_job(redis_client, settings, job_id)
    assert (plate_job.job_id, plate_job.image_b64) == (job_id, b"\x89PNG...")
    assert (plate_job.camera_id, plate_job.metadata) == ("gate-3", {"lane": 2})


def test_a_job_is_stored_as_json_never_pickle(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    job_id = producer.submit(b"img")
    data = redis_client.hget(f"rq:job:{job_id}", "data")
    assert isinstance(data, bytes)
    func, _instance, args, _kwargs = json.loads(zlib.decompress(data))
    assert func == JOB_FUNC_NAME
    assert args[0]["job_id"] == job_id


def test_submit_passes_every_job_field_through(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    box = DetectorBox(x1=1, y1=2, x2=30, y2=12, confidence=0.8)
    job_id = producer.submit(b"img", job_id="cam3_000123", box=box, track_id="t-9")
    assert job_id == "cam3_000123"
    plate_job = queued_plate_job(redis_client, settings, job_id)
    assert (plate_job.box, plate_job.track_id) == (box, "t-9")


# --- images ------------------------------------------------------------------------------------


def test_submit_reads_a_file_given_as_path_or_str(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    image = tmp_path / "crop.jpg"
    image.write_bytes(b"jpeg bytes")
    for given in (image, str(image)):
        job_id = producer.submit(given)
        assert queued_plate_job(redis_client, settings, job_id).image_b64 == b"jpeg bytes"


def test_a_missing_file_is_an_image_not_found_error(
    producer: PlateProducer, tmp_path: Path
) -> None:
    with pytest.raises(ImageNotFound) as info:
        producer.submit(tmp_path / "nope.jpg")
    assert info.value.code is ErrorCode.IMAGE_NOT_FOUND
    assert isinstance(info.value, JobError)


def test_references_are_sent_as_they_are(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    by_ref = producer.submit_ref("file:///data/crops/a.jpg")
    by_str = producer.submit("redis://plate-ocr:image:abc")
    assert queued_plate_job(redis_client, settings, by_ref).image_ref == "file:///data/crops/a.jpg"
    by_str_job = queued_plate_job(redis_client, settings, by_str)
    assert (by_str_job.image_ref, by_str_job.image_b64) == ("redis://plate-ocr:image:abc", None)


def test_submit_ref_refuses_anything_but_file_and_redis_urls(producer: PlateProducer) -> None:
    with pytest.raises(InvalidJob):
        producer.submit_ref("/data/crops/a.jpg")


def test_put_image_stores_bytes_that_expire_and_returns_their_reference(
    producer: PlateProducer, redis_client: redis.Redis
) -> None:
    ref = producer.put_image(b"jpeg bytes")
    key = ref.removeprefix("redis://")
    assert key.startswith(REDIS_IMAGE_KEY_PREFIX)
    assert redis_client.get(key) == b"jpeg bytes"
    assert redis_client.ttl(key) > 0


def test_an_image_over_the_byte_limit_is_refused_before_it_is_read(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    producer = PlateProducer(
        settings.model_copy(update={"max_image_bytes": 10}), connection=redis_client
    )
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 11)
    for image in (b"x" * 11, big):
        with pytest.raises(ImageTooLarge, match="over the 10-byte limit"):
            producer.submit(image)
    with pytest.raises(ImageTooLarge):
        producer.submit_many([PlateJob(image_b64=b"x" * 11)])
    assert producer.depth() == 0
    producer.submit(b"x" * 10)


def test_metadata_over_its_limit_is_refused(settings: Settings, redis_client: redis.Redis) -> None:
    producer = PlateProducer(
        settings.model_copy(update={"max_metadata_bytes": 20}), connection=redis_client
    )
    with pytest.raises(MetadataTooLarge) as info:
        producer.submit(b"img", metadata={"note": "x" * 20})
    assert info.value.code is ErrorCode.METADATA_TOO_LARGE
    assert producer.depth() == 0


def test_an_invalid_job_id_is_an_invalid_job_error(producer: PlateProducer) -> None:
    with pytest.raises(InvalidJob, match="job_id"):
        producer.submit(b"img", job_id="has spaces/and:colons")


# --- numpy arrays ------------------------------------------------------------------------------


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """A reference decoder for what encode_png writes (8-bit, one IDAT, filter 1 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color_type = (
        int.from_bytes(data[16:20]),
        int.from_bytes(data[20:24]),
        data[24],
        data[25],
    )
    assert depth == 8
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    idat_len = int.from_bytes(data[33:37])
    assert data[37:41] == b"IDAT"
    raw = np.frombuffer(zlib.decompress(data[41 : 41 + idat_len]), np.uint8).reshape(height, -1)
    assert (raw[:, 0] == 1).all()
    pixels = raw[:, 1:].reshape(height, width, channels).astype(np.int64)
    return (np.cumsum(pixels, axis=1) % 256).astype(np.uint8)


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 1), (7, 5, 3), (7, 5, 4)])
def test_encode_png_is_lossless_and_turns_bgr_into_rgb(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    decoded = decode_png(encode_png(array))
    if len(shape) == 3 and shape[2] in (3, 4):
        expected = array[:, :, [2, 1, 0, 3][: shape[2]]]
    else:
        expected = array.reshape(7, 5, 1)
    assert np.array_equal(decoded, expected)
    assert np.array_equal(decode_png(encode_png(array, bgr=False)), array.reshape(decoded.shape))


def test_encode_png_is_readable_by_pillow() -> None:
    image_module = pytest.importorskip("PIL.Image")
    import io

    array = np.random.default_rng(1).integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    with image_module.open(io.BytesIO(encode_png(array))) as image:
        assert np.array_equal(np.asarray(image), array[:, :, ::-1])


def test_encode_png_refuses_what_it_cannot_write_losslessly() -> None:
    with pytest.raises(TypeError):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((0, 4), np.uint8))


def test_submit_encodes_an_array_to_png(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    array = np.full((20, 60, 3), 200, np.uint8)
    job_id = producer.submit(array)
    assert queued_plate_job(redis_client, settings, job_id).image_b64 == encode_png(array)


# --- batches and backpressure ------------------------------------------------------------------


def test_submit_many_is_one_round_trip_after_the_depth_check(
    producer: PlateProducer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer.submit(b"warm-up")  # the first enqueue also asks the server's version, once
    commands: list[Any] = []
    pipelines: list[int] = []
    real_execute, real_pipeline = redis_client.execute_command, redis_client.pipeline

    def counting_execute(*args: Any, **options: Any) -> Any:
        commands.append(args[0])
        return real_execute(*args, **options)  # type: ignore[no-untyped-call]

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipelines.append(1)
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(redis_client, "execute_command", counting_execute)
    monkeypatch.setattr(redis_client, "pipeline", counting_pipeline)
    job_ids = producer.submit_many([b"a", b"b", b"c"] * 10)
    assert len(set(job_ids)) == 30
    assert commands == ["LLEN"]
    assert len(pipelines) == 1
    assert producer.depth() == 31


def test_submit_many_sends_plate_jobs_as_they_are(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    job = PlateJob(image_b64=b"img", camera_id="own-camera")
    job_ids = producer.submit_many([job, b"other"], camera_id="batch-camera")
    assert job_ids[0] == job.job_id
    assert queued_plate_job(redis_client, settings, job_ids[0]).camera_id == "own-camera"
    assert queued_plate_job(redis_client, settings, job_ids[1]).camera_id == "batch-camera"


def test_a_full_queue_refuses_more_jobs_and_enqueues_none_of_them(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = PlateProducer(
        settings.model_copy(update={"max_queue_depth": 3}), connection=redis_client
    )
    with pytest.raises(QueueFull) as info:
        producer.submit_many([b"a", b"b", b"c", b"d"])
    assert producer.depth() == 0
    producer.submit_many([b"a", b"b", b"c"])
    with pytest.raises(QueueFull, match="holds 3 jobs, at its maximum of 3") as info:
        producer.submit(b"d")
    assert (info.value.depth, info.value.max_depth) == (3, 3)
    assert producer.depth() == 3


def test_a_producer_gives_up_on_a_dead_redis_after_its_deadline(settings: Settings) -> None:
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with PlateProducer(dead, reconnect_deadline_s=0.3) as producer, pytest.raises(RedisUnavailable):
        producer.submit(b"img")


@pytest.mark.redis
def test_a_producer_survives_its_connection_being_killed(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer_client = redis.Redis.from_url(settings.redis_url)
    with PlateProducer(settings, connection=producer_client) as producer:
        producer.submit(b"before")
        # Only this producer's connection: other suites may be using the same server.
        redis_client.client_kill_filter(_id=str(producer_client.client_id()))
        producer.submit(b"after")
        assert producer.depth() == 2


# --- waiting for readings ----------------------------------------------------------------------


@pytest.mark.redis
def test_wait_returns_the_reading_of_its_own_job(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    publish(redis_client, make_reading("published-before"))
    job_id = producer.submit(b"img")
    publish(redis_client, make_reading("someone-else"))
    publish(redis_client, make_reading(job_id, text="7ABC123"))
    assert producer.wait(job_id, timeout_s=2).text == "7ABC123"


@pytest.mark.redis
def test_wait_blocks_until_the_reading_is_published(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    job_id = producer.submit(b"img")

    # A worker-like thread: takes the job off the queue (blocking) and publishes its reading.
    def fake_worker() -> None:
        worker_client = redis.Redis.from_url(settings.redis_url)
        popped = worker_client.blpop([f"rq:queue:{settings.queue}"], timeout=5)
        assert popped is not None
        publish(worker_client, make_reading(cast(bytes, popped[1]).decode()))
        worker_client.close()

    thread = threading.Thread(target=fake_worker)
    thread.start()
    reading = producer.wait(job_id, timeout_s=5)
    thread.join()
    assert reading.job_id == job_id


@pytest.mark.redis
def test_wait_raises_reading_timeout_when_nothing_comes(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    job_id = producer.submit(b"img")
    with pytest.raises(ReadingTimeout, match=job_id):
        producer.wait(job_id, timeout_s=0.2)


@pytest.mark.redis
def test_wait_finds_the_reading_of_a_job_another_producer_submitted(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    job_id = PlateProducer(settings, connection=redis_client).submit(b"img")
    publish(redis_client, make_reading(job_id))
    assert (
        PlateProducer(settings, connection=redis_client).wait(job_id, timeout_s=2).job_id == job_id
    )


@pytest.mark.redis
def test_wait_finds_an_earlier_reading_of_a_resubmitted_job(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    first = PlateProducer(settings, connection=redis_client)
    job_id = first.submit(b"img", job_id="cam3_000123")
    # What the worker does, atomically: publish the reading and end the RQ job.
    publish(redis_client, make_reading(job_id))
    redis_client.hset(f"rq:job:{job_id}", "status", "finished")
    publish(redis_client, make_reading("later-job"))
    # The worker publishes one reading per job, so the re-submitted id gets no second one.
    again = PlateProducer(settings, connection=redis_client)
    assert again.submit(b"img", job_id=job_id) == job_id
    assert again.wait(job_id, timeout_s=2).job_id == job_id


# --- staying light -----------------------------------------------------------------------------


def test_importing_the_producer_and_schemas_loads_no_model_stack() -> None:
    code = (
        "import sys, producer, producer.cli, schemas, plate_ocr.stream, plate_ocr.connection\n"
        "heavy = {'torch', 'ultralytics', 'cv2'}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_submit_many_marks_every_crop_with_the_track(
    producer: PlateProducer, settings: Settings, redis_client: redis.Redis
) -> None:
    ids = producer.submit_many([b"a", b"b"], camera_id="gate-3", track_id="car-17")
    jobs = [queued_plate_job(redis_client, settings, job_id) for job_id in ids]
    assert {(job.camera_id, job.track_id) for job in jobs} == {("gate-3", "car-17")}
