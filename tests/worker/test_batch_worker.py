"""The batching worker against the real Redis, with the instant NullReader in place of the model."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from plate_ocr.constants import ATTEMPTS_FIELD, JOB_FUNC_NAME, RQ_JOB_KEY_PREFIX
from plate_ocr.settings import Settings
from producer import PlateProducer
from schemas import PlateJob, PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader

pytestmark = pytest.mark.redis


def png(width: int, height: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def readings(client: redis.Redis, settings: Settings) -> list[PlateReading]:
    return [
        PlateReading.model_validate_json(fields[b"reading"])
        for _, fields in client.xrange(settings.results_stream)
    ]


def enqueue_raw(client: redis.Redis, settings: Settings, func: str, *args: object) -> str:
    queue = Queue(settings.queue, connection=client, serializer=JSONSerializer)
    return str(queue.enqueue(func, *args).id)


def run_burst(settings: Settings, client: redis.Redis, reader: NullReader | None = None) -> int:
    worker = BatchWorker(settings, reader=reader or NullReader(), connection=client)
    assert worker.work(burst=True) == 0
    return worker.jobs_done


def test_every_job_ends_as_exactly_one_reading_and_corrupt_ones_as_errors(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"batch_size": 32})
    producer = PlateProducer(settings, connection=redis_client)
    good = producer.submit_many([png(40 + i % 7, 20) for i in range(190)], camera_id="cam-1")
    corrupt = [b"not an image", b"\xff\xd8\xff\xe0truncated", b"GIF89a", *[b"x" * 10] * 7]
    bad = producer.submit_many(corrupt, camera_id="cam-1")

    assert run_burst(settings, redis_client) == 200

    got = readings(redis_client, settings)
    assert sorted(r.job_id for r in got) == sorted(good + bad)
    by_id = {r.job_id: r for r in got}
    assert all(by_id[j].status == "ok" and by_id[j].text.endswith("X20") for j in good)
    errors = [by_id[j] for j in bad]
    assert all(r.status == "error" and r.error is not None for r in errors)
    assert {r.error.code for r in errors if r.error} == {"undecodable_image"}
    assert all(r.camera_id == "cam-1" for r in got)
    # RQ's registries agree, so `rq info` and rq-dashboard tell the same story.
    assert FinishedJobRegistry(settings.queue, connection=redis_client).count == 190
    assert FailedJobRegistry(settings.queue, connection=redis_client).count == 10
    assert StartedJobRegistry(settings.queue, connection=redis_client).count == 0


def test_a_job_naming_another_function_is_never_executed(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    job_id = enqueue_raw(redis_client, settings, "os.mkdir", str(target))

    run_burst(settings, redis_client)

    assert not target.exists()
    (reading,) = readings(redis_client, settings)
    assert reading.job_id == job_id
    assert reading.error is not None and reading.error.code == "foreign_function"
    assert job_id in FailedJobRegistry(settings.queue, connection=redis_client).get_job_ids()


class _Exploit:
    path = ""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.mkdir, (self.path,))


def test_a_pickled_payload_is_never_unpickled(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    target = tmp_path / "unpickled"
    _Exploit.path = str(target)
    queue = Queue(settings.queue, connection=redis_client)  # RQ's default: pickle
    job = queue.enqueue(JOB_FUNC_NAME, _Exploit())
    assert b"unpickled" in pickle.dumps(_Exploit())

    run_burst(settings, redis_client)

    assert not target.exists()
    (reading,) = readings(redis_client, settings)
    assert reading.job_id == job.id
    assert reading.error is not None and reading.error.code == "undecodable_payload"


def test_invalid_jobs_get_error_readings_with_the_reason(
    settings: Settings, redis_client: redis.Redis
) -> None:
    base = PlateJob(image_b64=png(30, 10)).model_dump(mode="json")
    cases = {
        "invalid_base64": {**base, "image_b64": "@@not base64@@"},
        "invalid_job": {**base, "unknown_field": 1},
        "metadata_too_large": {**base, "metadata": {"k": "v" * (settings.max_metadata_bytes + 1)}},
    }
    ids = {}
    for code, payload in cases.items():
        job_id = PlateJob(image_b64=b"x").job_id
        payload = {**payload, "job_id": job_id}
        queue = Queue(settings.queue, connection=redis_client, serializer=JSONSerializer)
        queue.enqueue(JOB_FUNC_NAME, payload, job_id=job_id)
        ids[job_id] = code

    run_burst(settings, redis_client)

    got = {r.job_id: r for r in readings(redis_client, settings)}
    assert {job_id: got[job_id].error.code for job_id in ids if got[job_id].error} == ids


def test_redis_references_are_read_and_missing_keys_reported(
    settings: Settings, redis_client: redis.Redis
) -> None:
    redis_client.set("plate-ocr:image:present", png(64, 32))
    producer = PlateProducer(settings, connection=redis_client)
    present = producer.submit("redis://plate-ocr:image:present")
    missing = producer.submit("redis://plate-ocr:image:missing")

    run_burst(settings, redis_client)

    got = {r.job_id: r for r in readings(redis_client, settings)}
    assert got[present].status == "ok" and got[present].text == "64X32"
    assert got[missing].error is not None and got[missing].error.code == "image_key_missing"


def test_a_job_abandoned_too_often_ends_as_an_error_not_a_loop(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    job_id = producer.submit(png(20, 10))
    redis_client.hset(RQ_JOB_KEY_PREFIX + job_id, ATTEMPTS_FIELD, settings.max_attempts)

    run_burst(settings, redis_client)

    (reading,) = readings(redis_client, settings)
    assert reading.error is not None and reading.error.code == "retries_exhausted"


def test_a_reading_is_published_once_even_if_its_job_is_read_twice(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    job_id = producer.submit(png(20, 10))
    run_burst(settings, redis_client)
    # The same job back on the queue, as after a recovery from a worker that was only slow.
    Queue(settings.queue, connection=redis_client, serializer=JSONSerializer).push_job_id(job_id)
    redis_client.hset(RQ_JOB_KEY_PREFIX + job_id, "status", "queued")

    run_burst(settings, redis_client)

    (reading,) = readings(redis_client, settings)
    assert reading.job_id == job_id


def test_batches_are_filled_up_to_the_batch_size(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"batch_size": 8})
    PlateProducer(settings, connection=redis_client).submit_many([png(20, 10)] * 20)
    reader = NullReader()

    run_burst(settings, redis_client, reader)

    assert reader.batches == [8, 8, 4]
    entry = redis_client.xrange(settings.results_stream, count=1)[0][1]
    assert json.loads(entry[b"reading"])["job_id"] == entry[b"job_id"].decode()


def test_rq_sees_finished_and_failed_jobs_with_their_results(
    settings: Settings, redis_client: redis.Redis
) -> None:
    from rq.job import Job, JobStatus

    producer = PlateProducer(settings, connection=redis_client)
    good, bad = producer.submit_many([png(30, 10), b"garbage"])

    run_burst(settings, redis_client)

    ok_job = Job.fetch(good, connection=redis_client, serializer=JSONSerializer)
    assert ok_job.get_status() == JobStatus.FINISHED
    result = ok_job.latest_result()
    assert result is not None
    (reading,) = [r for r in readings(redis_client, settings) if r.job_id == good]
    assert result.return_value == reading.reading_id
    bad_job = Job.fetch(bad, connection=redis_client, serializer=JSONSerializer)
    assert bad_job.get_status() == JobStatus.FAILED
    assert bad_job.exc_info is not None and bad_job.exc_info.startswith("undecodable_image: ")
    failed_result = bad_job.latest_result()
    assert failed_result is not None and "undecodable_image" in (failed_result.exc_string or "")


def test_a_reading_carries_its_jobs_track(settings: Settings, redis_client: redis.Redis) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    tracked = producer.submit_many([png(40, 20)] * 3, camera_id="cam-1", track_id="car-17")
    untracked = producer.submit(png(40, 20), camera_id="cam-1")
    invalid = producer.submit(b"not an image", camera_id="cam-1", track_id="car-18")
    assert run_burst(settings, redis_client) == 5
    by_id = {r.job_id: r for r in readings(redis_client, settings)}
    assert {by_id[j].track_id for j in tracked} == {"car-17"}
    assert by_id[untracked].track_id is None
    assert (by_id[invalid].status, by_id[invalid].track_id) == ("error", "car-18")


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_decoding_in_chunks_keeps_every_image_with_its_job(
    settings: Settings, redis_client: redis.Redis, threads: int
) -> None:
    # 0 and 1: in the prefetch thread; 3: three chunks on a pool. Either way each reading is of
    # its own crop, and a corrupt crop in the middle of a chunk fails alone.
    settings = settings.model_copy(update={"batch_size": 16, "decode_threads": threads})
    producer = PlateProducer(settings, connection=redis_client)
    crops = [png(30 + i, 10 + i % 3) for i in range(15)]
    crops.insert(7, b"not an image")
    ids = producer.submit_many(crops)

    assert run_burst(settings, redis_client) == 16

    by_id = {r.job_id: r for r in readings(redis_client, settings)}
    for i, job_id in enumerate(ids):
        if i == 7:
            assert by_id[job_id].status == "error"
            continue
        k = i if i < 7 else i - 1
        assert by_id[job_id].text == f"{30 + k}X{10 + k % 3}"


@pytest.mark.parametrize("prefetch", [1, 2])
def test_a_worker_holds_the_batch_it_reads_and_prefetch_batches_more(
    settings: Settings, redis_client: redis.Redis, prefetch: int
) -> None:
    import threading
    import time
    from collections.abc import Sequence

    from worker.null_reader import NullResult

    class Gated(NullReader):
        def __init__(self) -> None:
            super().__init__()
            self.inside, self.release = threading.Event(), threading.Event()

        def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
            self.inside.set()
            assert self.release.wait(timeout=30)
            return super().read_arrays(images)

    settings = settings.model_copy(update={"batch_size": 4, "prefetch_batches": prefetch})
    PlateProducer(settings, connection=redis_client).submit_many([png(32, 16)] * 20)
    started = StartedJobRegistry(settings.queue, connection=redis_client)
    queue = Queue(settings.queue, connection=redis_client, serializer=JSONSerializer)
    reader = Gated()
    worker = BatchWorker(settings, reader=reader, connection=redis_client)
    thread = threading.Thread(target=worker.work, kwargs={"burst": True}, daemon=True)
    thread.start()
    try:
        assert reader.inside.wait(timeout=10)
        deadline = time.monotonic() + 10
        while started.count < 4 * (1 + prefetch) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling Redis for a state, with a deadline
        # One batch in the reader, `prefetch` taken behind it, the rest left in the queue.
        assert started.count == 4 * (1 + prefetch)
        assert queue.count == 20 - 4 * (1 + prefetch)
    finally:
        reader.release.set()
        thread.join(timeout=30)
    assert len(readings(redis_client, settings)) == 20
