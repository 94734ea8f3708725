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
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from plate_ocr.settings import Settings
from producer import PlateProducer
from schemas import PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader
from worker.recovery import Recovery

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MAIN = Path(__file__).with_name("null_worker_main.py")


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
    for name, value in settings.model_dump(exclude_none=True).items():
        if name != "allowed_roots":
            env[f"PLATE_OCR_{name.upper()}"] = str(value)
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
    # One batch in the model and, at most, one prefetched behind it.
    wait_for(lambda: started.count >= 4)

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr.decode()
    assert b"finishing the batch in hand" in stderr
    done = stream_readings(redis_client, settings)
    assert len(done) in (4, 8), stderr.decode()[-3000:]
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
