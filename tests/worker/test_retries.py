"""When the model call fails: a transient failure is retried a bounded number of times, one crop
that breaks the model fails alone, and a job that keeps failing ends as an error reading and in
RQ's failed registry with the reason. The real loop and the real Redis; readers that fail."""

import time
from collections.abc import Sequence
from typing import cast

import numpy as np
import pytest
import redis
from rq.job import Job
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer

from plate_ocr.constants import ATTEMPTS_FIELD, RQ_JOB_KEY_PREFIX
from plate_ocr.settings import Settings
from producer import PlateProducer, encode_png
from schemas import ErrorCode, PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader, NullResult

pytestmark = pytest.mark.redis

POISON_WIDTH = 13  # a crop this wide makes PoisonReader raise, as a crop that trips the model


def crop(width: int = 30) -> bytes:
    return encode_png(np.full((10, width, 3), 50, np.uint8))


class FlakyReader(NullReader):
    """Raises on its first `failures` calls, then reads like the NullReader."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"CUDA out of memory (call {self.calls})")
        return super().read_arrays(images)


class TimedFlakyReader(FlakyReader):
    """A FlakyReader that notes when each call came."""

    def __init__(self, failures: int) -> None:
        super().__init__(failures)
        self.called_at_s: list[float] = []

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
        self.called_at_s.append(time.monotonic())
        return super().read_arrays(images)


class PoisonReader(NullReader):
    """Raises for any batch holding a crop POISON_WIDTH pixels wide."""

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
        self.batches.append(len(images))
        if any(im.shape[1] == POISON_WIDTH for im in images):
            raise ValueError("shape mismatch in the detection head")
        return [NullResult(f"{im.shape[1]}X{im.shape[0]}", 1.0, (), 1) for im in images]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A short backoff: these tests are about what is retried, the backoff has its own test.
    return settings.model_copy(update={"retry_delay_s": 0.02})


def run_burst(settings: Settings, client: redis.Redis, reader: NullReader) -> None:
    BatchWorker(settings, reader=reader, connection=client).work(burst=True)


def readings(client: redis.Redis, settings: Settings) -> dict[str, PlateReading]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(settings.results_stream))
    got = [PlateReading.model_validate_json(fields[b"reading"]) for _, fields in entries]
    assert len({r.job_id for r in got}) == len(got), "a job was published twice"
    return {r.job_id: r for r in got}


def attempts(client: redis.Redis, job_id: str) -> int:
    return int(client.hget(RQ_JOB_KEY_PREFIX + job_id, ATTEMPTS_FIELD) or 0)


@pytest.mark.parametrize("failures", [1, 2])
def test_a_transient_inference_failure_is_retried_and_the_job_read(
    settings: Settings, redis_client: redis.Redis, failures: int
) -> None:
    settings = settings.model_copy(update={"max_attempts": 3})
    job_id = PlateProducer(settings, connection=redis_client).submit(crop())
    reader = FlakyReader(failures)

    run_burst(settings, redis_client, reader)

    (reading,) = readings(redis_client, settings).values()
    assert reading.job_id == job_id and reading.status == "ok" and reading.text == "30X10"
    assert reader.calls == failures + 1
    assert attempts(redis_client, job_id) == failures  # each retry is counted in the job hash
    assert FinishedJobRegistry(settings.queue, connection=redis_client).get_job_ids() == [job_id]
    assert FailedJobRegistry(settings.queue, connection=redis_client).count == 0


def test_a_retry_waits_a_backoff_that_doubles_with_each_attempt(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"max_attempts": 3, "retry_delay_s": 0.3})
    job_id = PlateProducer(settings, connection=redis_client).submit(crop())
    reader = TimedFlakyReader(2)
    scheduled = ScheduledJobRegistry(settings.queue, connection=redis_client)
    run_burst(settings, redis_client, reader)

    first, second, third = reader.called_at_s
    assert second - first >= 0.3 and third - second >= 0.6
    (reading,) = readings(redis_client, settings).values()
    assert reading.job_id == job_id and reading.status == "ok"
    assert scheduled.count == 0


def test_a_failed_job_waits_in_rqs_scheduled_registry_until_due(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"max_attempts": 2, "retry_delay_s": 60.0})
    job_id = PlateProducer(settings, connection=redis_client).submit(crop())
    worker = BatchWorker(settings, reader=FlakyReader(1), connection=redis_client)
    taken = worker.ledger.take(1, block_s=0.0, fill_wait_s=0.0)
    before_s = time.time()
    assert worker.ledger.retry(taken, delay_s=settings.retry_delay_s) == [job_id]

    scheduled = ScheduledJobRegistry(settings.queue, connection=redis_client)
    assert scheduled.get_job_ids() == [job_id]
    assert scheduled.get_scheduled_time(job_id).timestamp() >= int(before_s) + 60
    assert Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).get_status() == (
        "scheduled"
    )
    assert redis_client.llen(f"rq:queue:{settings.queue}") == 0
    assert StartedJobRegistry(settings.queue, connection=redis_client).count == 0
    assert attempts(redis_client, job_id) == 1


def test_a_failure_that_persists_ends_as_an_error_reading_after_max_attempts(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"max_attempts": 3})
    job_id = PlateProducer(settings, connection=redis_client).submit(crop())
    reader = FlakyReader(failures=1_000)

    run_burst(settings, redis_client, reader)

    assert reader.calls == 3, "bounded: one call per attempt, no more"
    (reading,) = readings(redis_client, settings).values()
    assert reading.status == "error" and reading.error is not None
    assert reading.error.code == ErrorCode.INFERENCE_FAILED
    assert "RuntimeError: CUDA out of memory (call 3)" in reading.error.message
    failed = FailedJobRegistry(settings.queue, connection=redis_client)
    assert failed.get_job_ids() == [job_id]
    result = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).latest_result()
    assert result is not None and result.exc_string is not None
    assert result.exc_string.startswith("inference_failed: ")
    assert "CUDA out of memory" in result.exc_string
    assert StartedJobRegistry(settings.queue, connection=redis_client).count == 0
    assert redis_client.llen(f"rq:queue:{settings.queue}") == 0


def test_max_attempts_of_one_means_no_retry(settings: Settings, redis_client: redis.Redis) -> None:
    settings = settings.model_copy(update={"max_attempts": 1})
    PlateProducer(settings, connection=redis_client).submit(crop())
    reader = FlakyReader(failures=1)

    run_burst(settings, redis_client, reader)

    assert reader.calls == 1
    (reading,) = readings(redis_client, settings).values()
    assert reading.error is not None and reading.error.code == ErrorCode.INFERENCE_FAILED


def test_a_crop_that_breaks_the_model_fails_alone_not_its_batch(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"max_attempts": 2, "batch_size": 16})
    producer = PlateProducer(settings, connection=redis_client)
    good = producer.submit_many([crop(20 + i) for i in range(5)])
    poison = producer.submit(crop(POISON_WIDTH))
    good += producer.submit_many([crop(40 + i) for i in range(5)])

    run_burst(settings, redis_client, PoisonReader())

    got = readings(redis_client, settings)
    assert set(got) == {*good, poison}
    assert all(got[j].status == "ok" for j in good), "batch-mates of the poison crop are read"
    bad = got[poison]
    assert bad.error is not None and bad.error.code == ErrorCode.INFERENCE_FAILED
    assert "ValueError: shape mismatch" in bad.error.message
    assert FailedJobRegistry(settings.queue, connection=redis_client).get_job_ids() == [poison]


def test_retries_share_the_attempt_budget_with_recoveries_from_dead_workers(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"max_attempts": 3})
    job_id = PlateProducer(settings, connection=redis_client).submit(crop())
    # Abandoned twice already by workers that died: one attempt is left.
    redis_client.hset(RQ_JOB_KEY_PREFIX + job_id, ATTEMPTS_FIELD, 2)
    reader = FlakyReader(failures=1_000)

    run_burst(settings, redis_client, reader)

    assert reader.calls == 1
    (reading,) = readings(redis_client, settings).values()
    assert reading.error is not None and reading.error.code == ErrorCode.INFERENCE_FAILED
