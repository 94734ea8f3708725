"""RQ's bookkeeping as RQ's own tools see it: a person's `rq requeue` is a new attempt with a new
reading, our own retries and recoveries never publish twice, and the worker statistics `rq info`
shows are true. The real loop, the real Redis, RQ's real command line."""

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import redis
from rq import Worker
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from plate_ocr.constants import WORKER_TTL_S
from plate_ocr.errors import ReadingTimeout
from plate_ocr.settings import Settings
from producer import PlateProducer, encode_png
from schemas import ErrorCode, PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader, NullResult
from worker.recovery import Recovery

pytestmark = pytest.mark.redis

RqCli = Callable[..., list[str]]


def crop(width: int = 30) -> bytes:
    return encode_png(np.full((10, width, 3), 50, np.uint8))


def readings_of(client: redis.Redis, settings: Settings, job_id: str) -> list[PlateReading]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(settings.results_stream))
    got = [PlateReading.model_validate_json(fields[b"reading"]) for _, fields in entries]
    return [r for r in got if r.job_id == job_id]


def run_burst(settings: Settings, client: redis.Redis, reader: NullReader | None = None) -> None:
    BatchWorker(settings, reader=reader or NullReader(), connection=client).work(burst=True)


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


@pytest.fixture
def failed_job(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> tuple[str, Path]:
    """A job by reference to a folder the worker is not allowed to read: it fails."""
    path = tmp_path / "crop.png"
    path.write_bytes(crop())
    job_id = PlateProducer(settings, connection=redis_client).submit_ref(f"file://{path}")
    run_burst(settings, redis_client)
    (reading,) = readings_of(redis_client, settings, job_id)
    assert reading.error is not None and reading.error.code == ErrorCode.PATH_NOT_ALLOWED
    assert reading.supersedes is None
    return job_id, tmp_path


def test_a_person_requeueing_a_fixed_job_gets_a_new_reading_naming_the_one_it_supersedes(
    settings: Settings,
    redis_client: redis.Redis,
    failed_job: tuple[str, Path],
    rq_cli: RqCli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id, root = failed_job
    producer = PlateProducer(settings, connection=redis_client)
    (error,) = readings_of(redis_client, settings, job_id)
    assert producer.wait(job_id, timeout_s=2) == error
    requeue = rq_cli("requeue", "--all", "--queue", settings.queue)

    # A first requeue, before the cause is fixed: a second error, naming the first.
    subprocess.run(requeue, check=True, capture_output=True)
    run_burst(settings, redis_client)
    _, again = readings_of(redis_client, settings, job_id)
    assert again.error is not None and again.error.code == ErrorCode.PATH_NOT_ALLOWED
    assert again.supersedes == error.reading_id and again.reading_id != error.reading_id

    # The operator adds the folder to the allowed roots, restarts, and requeues.
    fixed = settings.model_copy(update={"allowed_roots": (root,)})
    subprocess.run(requeue, check=True, capture_output=True)
    with caplog.at_level(logging.INFO, logger="plate_ocr"):
        run_burst(fixed, redis_client)

    first, second, third = readings_of(redis_client, settings, job_id)
    assert (first, second) == (error, again)
    assert third.status == "ok" and third.text == "30X10"
    assert third.supersedes == again.reading_id
    assert len({error.reading_id, again.reading_id, third.reading_id}) == 3
    assert producer.wait(job_id, timeout_s=2) == third
    assert PlateProducer(settings, connection=redis_client).wait(job_id, timeout_s=2) == third
    assert FinishedJobRegistry(settings.queue, connection=redis_client).get_job_ids() == [job_id]
    assert FailedJobRegistry(settings.queue, connection=redis_client).count == 0
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "recovered" in m], messages
    assert [m for m in messages if "requeued by hand" in m], messages


def test_producer_wait_gets_the_new_reading_of_a_requeued_job_not_yet_read(
    settings: Settings, redis_client: redis.Redis, failed_job: tuple[str, Path], rq_cli: RqCli
) -> None:
    job_id, root = failed_job
    subprocess.run(
        rq_cli("requeue", "--all", "--queue", settings.queue), check=True, capture_output=True
    )
    producer = PlateProducer(settings, connection=redis_client)
    # Not read yet: the old error must not be taken for the answer.
    with pytest.raises(ReadingTimeout):
        producer.wait(job_id, timeout_s=0.3)
    run_burst(settings.model_copy(update={"allowed_roots": (root,)}), redis_client)
    assert producer.wait(job_id, timeout_s=2).status == "ok"


def test_a_requeued_attempt_recovered_from_a_dead_worker_and_retried_publishes_once(
    settings: Settings, redis_client: redis.Redis, failed_job: tuple[str, Path], rq_cli: RqCli
) -> None:
    job_id, root = failed_job
    fixed = settings.model_copy(
        update={"allowed_roots": (root,), "lease_s": 2, "retry_delay_s": 0.02, "max_attempts": 3}
    )
    subprocess.run(
        rq_cli("requeue", "--all", "--queue", settings.queue), check=True, capture_output=True
    )
    # The requeued attempt is taken by a worker that dies with it ...
    dead = BatchWorker(
        fixed.model_copy(update={"worker_id": "dead"}), reader=NullReader(), connection=redis_client
    )
    (taken,) = dead.ledger.take(1, block_s=0.0, fill_wait_s=0.0)
    wait_for(lambda: time.time() > taken.started_at + fixed.lease_s + 0.1)
    assert Recovery(dead.ledger.queue, redis_client, lease_s=2, interval_s=0.1).sweep() == [job_id]

    # ... and read by another whose first model call fails and is retried.
    class FlakyOnce(NullReader):
        calls = 0

        def read_arrays(self, images: Sequence[np.ndarray]) -> list[NullResult]:
            FlakyOnce.calls += 1
            if FlakyOnce.calls == 1:
                raise RuntimeError("CUDA out of memory")
            return super().read_arrays(images)

    run_burst(fixed, redis_client, FlakyOnce())
    run_burst(fixed, redis_client)  # nothing left: publishes nothing

    assert FlakyOnce.calls == 2
    error, new = readings_of(redis_client, settings, job_id)
    assert new.status == "ok" and new.supersedes == error.reading_id


def test_a_resubmitted_job_id_is_still_not_a_new_attempt(
    settings: Settings, redis_client: redis.Redis, failed_job: tuple[str, Path]
) -> None:
    job_id, root = failed_job
    producer = PlateProducer(settings, connection=redis_client)
    # A producer that re-sends a job id it already sent (after a lost reply, say).
    producer.submit_ref(f"file://{root / 'crop.png'}", job_id=job_id)
    run_burst(settings.model_copy(update={"allowed_roots": (root,)}), redis_client)

    (error,) = readings_of(redis_client, settings, job_id)
    assert producer.wait(job_id, timeout_s=2) == error


def test_total_working_time_is_the_time_spent_reading_not_each_jobs_wait(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"batch_size": 8})
    PlateProducer(settings, connection=redis_client).submit_many([crop() for _ in range(32)])
    worker = BatchWorker(settings, reader=NullReader(delay_s=0.1), connection=redis_client)

    began = time.monotonic()
    worker.work(burst=True)
    wall_s = time.monotonic() - began

    stats = Worker.find_by_key(worker.ledger.rq_worker.key, connection=redis_client)
    assert stats is not None and stats.successful_job_count == 32
    # Four model calls of 0.1 s; never more than the worker was alive.
    assert 0.4 <= stats.total_working_time <= wall_s


def test_a_heartbeat_after_the_worker_key_expired_lists_the_worker_again(
    settings: Settings, redis_client: redis.Redis
) -> None:
    worker = BatchWorker(settings, reader=NullReader(), connection=redis_client)
    worker.ledger.register_birth()
    key = worker.ledger.rq_worker.key
    assert 0 < cast(int, redis_client.ttl(key)) <= WORKER_TTL_S
    redis_client.delete(key)  # Redis was away for longer than the worker TTL
    assert Worker.all(connection=redis_client) == []

    worker.ledger.heartbeat()

    (listed,) = Worker.all(connection=redis_client)
    assert listed.name == worker.ledger.name and listed.birth_date is not None
    assert 0 < cast(int, redis_client.ttl(key)) <= WORKER_TTL_S
