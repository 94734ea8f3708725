"""Signals and crashes: a real worker process, the real Redis, nothing lost, nothing doubled."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from plate_ocr.constants import WORKER_TTL_S
from plate_ocr.settings import Settings
from producer import PlateProducer
from schemas import PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader
from worker.recovery import Recovery

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MAIN = Path(__file__).with_name("null_worker_main.py")
ROOT = Path(__file__).parents[2]


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def png_crops(n: int) -> list[bytes]:
    import cv2

    return [
        cv2.imencode(".png", np.zeros((10, 20 + i % 5, 3), np.uint8))[1].tobytes() for i in range(n)
    ]


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
    # This checkout's code, not whichever one the venv has installed in editable mode.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(settings.as_env())
    return env


@pytest.fixture
def spawn(settings: Settings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(delay_s: float, **overrides: object) -> subprocess.Popen[bytes]:
        s = settings.model_copy(update=overrides)
        proc = subprocess.Popen(
            [sys.executable, str(MAIN), str(delay_s)], env=env_for(s), stderr=subprocess.PIPE
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def stream_readings(client: redis.Redis, settings: Settings) -> list[PlateReading]:
    return [
        PlateReading.model_validate_json(f[b"reading"])
        for _, f in client.xrange(settings.results_stream)
    ]


def test_sigterm_finishes_and_publishes_the_batches_in_hand_then_exits_0(
    settings: Settings, redis_client: redis.Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    ids = PlateProducer(settings, connection=redis_client).submit_many(png_crops(12))
    started = StartedJobRegistry(settings.queue, connection=redis_client)
    queue_key = f"rq:queue:{settings.queue}"
    proc = spawn(2.0, batch_size=4)
    # One batch in the model and, at most, prefetch_batches (2) prefetched behind it.
    wait_for(lambda: started.count >= 4)

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr.decode()
    assert b"finishing the batch in hand" in stderr
    done = stream_readings(redis_client, settings)
    assert len(done) in (4, 8, 12), stderr.decode()[-3000:]
    assert all(r.status == "ok" for r in done)
    assert started.count == 0
    # The rest were never taken: still queued, for the next worker.
    assert redis_client.llen(queue_key) == 12 - len(done)
    assert {r.job_id for r in done} <= set(ids)


def test_a_second_signal_stops_at_once_and_loses_nothing(
    settings: Settings, redis_client: redis.Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    PlateProducer(settings, connection=redis_client).submit_many(png_crops(4))
    started = StartedJobRegistry(settings.queue, connection=redis_client)
    proc = spawn(30.0, batch_size=4)
    wait_for(lambda: started.count == 4)

    proc.send_signal(signal.SIGTERM)
    # Signals of one kind do not queue: send the second only once the first was handled.
    assert proc.stderr is not None
    for line in proc.stderr:  # ends at EOF, should the worker die instead
        if b"finishing the batch in hand" in line:
            break
    else:
        raise AssertionError("the worker never acknowledged the first signal")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    assert proc.returncode != 0
    assert stream_readings(redis_client, settings) == []
    assert started.count == 4  # left for recovery, not dropped


def test_jobs_of_a_killed_worker_are_read_by_another_with_one_reading_each(
    settings: Settings, redis_client: redis.Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    settings = settings.model_copy(update={"lease_s": 2, "batch_size": 8})
    ids = PlateProducer(settings, connection=redis_client).submit_many(png_crops(20))
    started = StartedJobRegistry(settings.queue, connection=redis_client)
    victim = spawn(30.0, lease_s=2, batch_size=8)
    wait_for(lambda: started.count >= 8)

    victim.kill()  # SIGKILL mid-batch: no clean-up of any kind
    victim.wait()
    killed_at = time.monotonic()
    recovery = Recovery(
        Queue(settings.queue, connection=redis_client, serializer=JSONSerializer),
        redis_client,
        lease_s=settings.lease_s,
        interval_s=0.1,
    )

    def all_requeued() -> bool:
        recovery.sweep()
        return started.count == 0

    # Every started job comes back once its lease runs out (prefetched batches included).
    wait_for(all_requeued)
    BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)

    assert time.monotonic() - killed_at < 30
    got = stream_readings(redis_client, settings)
    assert sorted(r.job_id for r in got) == sorted(ids)
    assert len({r.reading_id for r in got}) == len(ids)


def test_an_rq_info_loop_during_a_kill_turns_no_job_into_a_failure_without_reading(
    settings: Settings,
    redis_client: redis.Redis,
    rq_cli: Callable[..., list[str]],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    settings = settings.model_copy(update={"lease_s": 2, "batch_size": 8})
    ids = PlateProducer(settings, connection=redis_client).submit_many(png_crops(20))
    started = StartedJobRegistry(settings.queue, connection=redis_client)
    victim = spawn(30.0, lease_s=2, batch_size=8)
    wait_for(lambda: redis_client.zcard(started.key) >= 8)  # zcard: no RQ clean-up here
    # An operator watching the queue: every poll counts the started registry, which runs RQ's
    # own clean-up of abandoned jobs.
    monitor = subprocess.Popen(
        rq_cli("info", "--interval", "0.1", settings.queue),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        victim.kill()  # SIGKILL with a batch in hand
        victim.wait()
        lease_over_at = time.monotonic() + settings.lease_s
        # The replacement starts only once the lease has run out, and the monitor has polled
        # a dozen times since.
        wait_for(lambda: time.monotonic() > lease_over_at + 1.5)
        assert monitor.poll() is None, monitor.stderr and monitor.stderr.read()
        BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)
    finally:
        monitor.terminate()
        monitor.wait()

    got = stream_readings(redis_client, settings)
    assert sorted(r.job_id for r in got) == sorted(ids)
    assert len({r.reading_id for r in got}) == len(ids)
    assert all(r.status == "ok" for r in got)
    assert FailedJobRegistry(settings.queue, connection=redis_client).count == 0


def test_jobs_rqs_own_clean_up_failed_as_abandoned_are_still_read_once_each(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"lease_s": 2})
    ids = PlateProducer(settings, connection=redis_client).submit_many(png_crops(6))
    # A worker takes a batch and dies with it.
    dead = BatchWorker(
        settings.model_copy(update={"worker_id": "dead"}),
        reader=NullReader(),
        connection=redis_client,
    )
    taken = dead.ledger.take(6, block_s=0.0, fill_wait_s=0.0)
    assert len(taken) == 6
    # Long after, with no worker of ours alive, RQ's clean-up (rq info, rq-dashboard, an RQ
    # worker's maintenance) fails them as AbandonedJobError, with no reading.
    StartedJobRegistry(settings.queue, connection=redis_client).cleanup(time.time() + 3600)
    failed = FailedJobRegistry(settings.queue, connection=redis_client)
    assert sorted(failed.get_job_ids()) == sorted(ids)
    wait_for(lambda: time.time() > taken[0].started_at + settings.lease_s + 0.1)

    BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)

    got = stream_readings(redis_client, settings)
    assert sorted(r.job_id for r in got) == sorted(ids)
    assert all(r.status == "ok" for r in got)
    assert failed.count == 0
    finished = FinishedJobRegistry(settings.queue, connection=redis_client)
    assert sorted(finished.get_job_ids()) == sorted(ids)


def test_a_killed_worker_leaves_rq_info_within_the_worker_ttl(
    settings: Settings, redis_client: redis.Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    PlateProducer(settings, connection=redis_client).submit_many(png_crops(4))
    victim = spawn(30.0, batch_size=4)

    def busy() -> bool:
        return [w.state for w in Worker.all(connection=redis_client)] == ["busy"]

    wait_for(busy)
    victim.kill()
    victim.wait()

    # What `rq info` and rq-dashboard list: gone once the worker key's TTL runs out.
    wait_for(lambda: Worker.all(connection=redis_client) == [], timeout_s=WORKER_TTL_S + 5)
