"""/metrics, /healthz and /readyz of a real worker loop, scraped over HTTP against the real Redis.

The worker runs its real loop in a thread with the NullReader (or a reader that fails or hangs
on purpose); the probes are served on a free port and read back with urllib, and the exposition
text is parsed with prometheus-client's own parser.
"""

import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from producer import PlateProducer
from worker.batch_worker import BatchWorker
from worker.ledger import Ledger
from worker.metrics import WorkerMetrics
from worker.null_reader import NullReader, NullResult
from worker.probes import ProbeServer

pytestmark = pytest.mark.redis

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met before the deadline: {what}")
        time.sleep(0.02)


def png(width: int, height: int = 16) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    key = (metric, frozenset(labels.items()))
    assert key in samples, f"no sample {metric}{labels}"
    return samples[key]


def stream_length(client: redis.Redis, settings: Settings) -> int:
    return int(client.xlen(settings.results_stream))


@contextmanager
def running(
    settings: Settings, reader: NullReader, metrics: WorkerMetrics | None = None
) -> Iterator[tuple[BatchWorker, ProbeServer]]:
    """A real worker loop in a thread, its probes on a free port; stopped on exit."""
    metrics = metrics or WorkerMetrics()
    probes = ProbeServer(metrics, settings, port=0, host="127.0.0.1").start()
    client = redis.Redis.from_url(settings.redis_url)
    worker = BatchWorker(settings, reader=reader, connection=client, metrics=metrics)
    thread = threading.Thread(target=worker.work, name="worker-under-test")
    thread.start()
    try:
        yield worker, probes
    finally:
        worker.request_stop()
        thread.join(timeout=30)
        probes.close()
        client.close()
        assert not thread.is_alive(), "the worker did not stop"


class FailsOnce(NullReader):
    """Its first model call on a crop `width` pixels wide raises, as a GPU OOM would."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self._width = width
        self.armed = True

    def infer(self, batch: list[np.ndarray]) -> list[NullResult]:
        if self.armed and any(im.shape[1] == self._width for im in batch):
            self.armed = False
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().infer(batch)


class Hangs(NullReader):
    """Its model calls block until released: a wedged driver."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def infer(self, batch: list[np.ndarray]) -> list[NullResult]:
        self.entered.set()
        self.release.wait(timeout=60)
        return super().infer(batch)


def test_a_burst_shows_up_in_the_scraped_metrics(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"batch_size": 4})
    producer = PlateProducer(settings)
    good = [producer.submit(png(20 + i), camera_id="gate-3") for i in range(10)]
    bad = [producer.submit(b"this is not an image") for _ in range(2)]
    metrics = WorkerMetrics()
    # The probes before the model: alive ("starting"), not ready, and the queue visible.
    probes = ProbeServer(metrics, settings, port=0, host="127.0.0.1").start()
    try:
        assert get(probes.port, "/healthz") == (200, "starting\n")
        assert get(probes.port, "/readyz") == (503, "model not loaded\n")
        before = scrape(probes.port)
        depth = value(before, "plate_ocr_queue_depth_jobs", queue=settings.queue, state="queued")
        assert depth == 12
    finally:
        probes.close()

    reader = NullReader()
    with running(settings, reader, metrics) as (_, probes):
        wait_for(lambda: stream_length(redis_client, settings) == 12, what="12 readings")
        wait_for(lambda: value(scrape(probes.port), "plate_ocr_in_flight_jobs", device="cpu") == 0)
        samples = scrape(probes.port)
        assert get(probes.port, "/healthz") == (200, "ok\n")
        assert get(probes.port, "/readyz") == (200, "ok\n")
        assert get(probes.port, "/nowhere")[0] == 404

    readings = "plate_ocr_readings_total"
    assert value(samples, readings, device="cpu", status="ok", error_code="") == len(good)
    assert value(
        samples, readings, device="cpu", status="error", error_code="undecodable_image"
    ) == len(bad)
    # One observation per model call, of its size; the bad crops never reached the model.
    calls = len(reader.batches)
    assert value(samples, "plate_ocr_model_batch_images_count", device="cpu") == calls
    assert value(samples, "plate_ocr_model_batch_images_sum", device="cpu") == len(good)
    assert value(samples, "plate_ocr_model_call_seconds_count", device="cpu") == calls
    assert value(samples, "plate_ocr_model_batch_images_bucket", device="cpu", le="4.0") == calls
    for histogram in ("plate_ocr_queue_wait_seconds", "plate_ocr_end_to_end_latency_seconds"):
        assert value(samples, f"{histogram}_count", device="cpu") == 12
        assert value(samples, f"{histogram}_sum", device="cpu") > 0
    assert value(samples, "plate_ocr_retries_total", device="cpu") == 0
    assert value(samples, "plate_ocr_recovered_jobs_total", device="cpu") == 0
    info = NullReader().model_info
    labels = {"name": "null", "sha256": info.sha256, "device": "cpu", "backend": settings.backend}
    assert value(samples, "plate_ocr_model_info", **labels) == 1
    for state in ("queued", "scheduled", "started"):
        assert value(samples, "plate_ocr_queue_depth_jobs", queue=settings.queue, state=state) == 0
    assert abs(value(samples, "plate_ocr_last_progress_timestamp_seconds") - time.time()) < 60


def test_retries_and_jobs_recovered_from_a_dead_worker_are_counted(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(
        update={"batch_size": 1, "lease_s": 2, "recovery_interval_s": 0.1, "retry_delay_s": 0.0}
    )
    producer = PlateProducer(settings)
    for i in range(3):
        producer.submit(png(30 + i))
    # A worker that takes three jobs and dies with them: their lease runs out in 2 s.
    dead = Ledger(settings, redis_client, worker_name="dead-worker")
    assert len(dead.take(3, block_s=0.0, fill_wait_s=0.0)) == 3
    producer.submit(png(41))
    producer.submit(png(42))

    reader = FailsOnce(width=41)
    with running(settings, reader) as (_, probes):
        wait_for(lambda: stream_length(redis_client, settings) == 5, what="5 readings")
        wait_for(lambda: value(scrape(probes.port), "plate_ocr_in_flight_jobs", device="cpu") == 0)
        samples = scrape(probes.port)

    assert not reader.armed
    assert value(samples, "plate_ocr_retries_total", device="cpu") == 1
    assert value(samples, "plate_ocr_recovered_jobs_total", device="cpu") == 3
    ok = value(samples, "plate_ocr_readings_total", device="cpu", status="ok", error_code="")
    assert ok == 5


def test_healthz_fails_while_a_model_call_hangs_and_recovers_after(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"health_stale_s": 0.5})
    PlateProducer(settings).submit(png(24))
    reader = Hangs()
    with running(settings, reader) as (_, probes):
        assert reader.entered.wait(timeout=20)
        wait_for(lambda: get(probes.port, "/healthz")[0] == 503, what="/healthz 503")
        status, body = get(probes.port, "/healthz")
        assert status == 503 and body.startswith("wedged: no progress for "), body
        # Wedged is not unready: Redis answers and the model is loaded.
        assert get(probes.port, "/readyz") == (200, "ok\n")
        reader.release.set()
        wait_for(lambda: stream_length(redis_client, settings) == 1, what="the reading")
        wait_for(lambda: get(probes.port, "/healthz") == (200, "ok\n"), what="/healthz 200")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, so that it can be killed."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    port = free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, socket_connect_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(probe.ping())
        except redis.ConnectionError:
            return False

    wait_for(answers, timeout_s=10, what="redis-server to answer")
    probe.close()
    yield proc, url
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_readyz_fails_when_redis_is_gone_while_healthz_stays_up(
    settings: Settings, own_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    proc, url = own_redis
    settings = settings.model_copy(update={"redis_url": url, "health_stale_s": 5.0})
    with running(settings, NullReader()) as (_, probes):
        wait_for(lambda: get(probes.port, "/readyz") == (200, "ok\n"), what="/readyz 200")
        # The loop's first round may come after readiness on a busy machine ("starting").
        wait_for(lambda: get(probes.port, "/healthz") == (200, "ok\n"), what="/healthz 200")
        proc.kill()
        proc.wait()
        wait_for(lambda: get(probes.port, "/readyz")[0] == 503, what="/readyz 503")
        status, body = get(probes.port, "/readyz")
        assert status == 503 and body.startswith("redis does not answer: ConnectionError"), body
        # The loop keeps going round, retrying: restarting the pod would not bring Redis back.
        assert get(probes.port, "/healthz") == (200, "ok\n")
        samples = scrape(probes.port)
        # No made-up zero for a queue that cannot be read.
        assert not [k for k in samples if k[0] == "plate_ocr_queue_depth_jobs"]


def test_a_port_in_use_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot serve metrics on 127.0.0.1:{port}"):
            ProbeServer(WorkerMetrics(), settings, port=port, host="127.0.0.1")
