"""`WorkerMetrics`: what one worker process tells Prometheus, and whether its loop is alive.

The worker loop calls a handful of hooks (`beat`, `started`, `completing`, `model_call`,
`published`, `retried`); everything else is derived here. Each instance owns its own
`CollectorRegistry`, so several workers in one process (the tests) never collide, and a worker
without `--metrics-port` pays only for a few counter increments per batch.

Names follow Prometheus' conventions, units in the name (`_seconds`, `_jobs`, `_images`):

    plate_ocr_readings_total{device,status,error_code}    readings published ("" when ok)
    plate_ocr_model_batch_images{device}                  histogram: images per model call
    plate_ocr_model_call_seconds{device}                  histogram: one model call
    plate_ocr_queue_wait_seconds{device}                  histogram: enqueued -> taken
    plate_ocr_end_to_end_latency_seconds{device}          histogram: enqueued -> reading built
    plate_ocr_in_flight_jobs{device}                      started here, not yet settled
    plate_ocr_retries_total{device}                       jobs sent back after a failed model call
    plate_ocr_recovered_jobs_total{device}                dead workers' jobs this one requeued
    plate_ocr_model_info{name,sha256,device,backend}      which weights, where, on what runtime
    plate_ocr_last_progress_timestamp_seconds             when the loop last went round
    plate_ocr_queue_depth_jobs{queue,state}               worker.probes: read from Redis per scrape

One process, one registry: `--devices 0,1` runs one process per GPU, each serving its own port
(PORT+n for the n-th process) rather than prometheus-client's multiprocess mode, which cannot
carry the Info metric and would merge what the probes must tell apart (one wedged GPU among
healthy ones).
"""

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from schemas import ModelInfo, PlateReading

__all__ = ["WorkerMetrics"]

# Batches are capped by settings.batch_size (<= 1024); powers of two match the usual settings.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_MODEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip


class WorkerMetrics:
    """The metrics of one worker process. Hooks are thread-safe (prometheus-client's are)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self._device = ""
        self._loaded = threading.Event()
        self._last_beat = clock()
        self._loop_started = False
        self._busy_since: float | None = None
        self._recovered_total: Callable[[], int] = lambda: 0
        r = self.registry
        self._readings = Counter(
            "plate_ocr_readings",
            "Readings published, by status and error code (empty when ok)",
            ["device", "status", "error_code"],
            registry=r,
        )
        self._batch = Histogram(
            "plate_ocr_model_batch_images",
            "Images in one model call",
            ["device"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self._model = Histogram(
            "plate_ocr_model_call_seconds",
            "Duration of one model call (a whole batch)",
            ["device"],
            buckets=_MODEL_BUCKETS,
            registry=r,
        )
        self._queue_wait = Histogram(
            "plate_ocr_queue_wait_seconds",
            "From a job being enqueued to a worker taking it",
            ["device"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._latency = Histogram(
            "plate_ocr_end_to_end_latency_seconds",
            "From a job being enqueued to its reading being built, ready to publish",
            ["device"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge(
            "plate_ocr_in_flight_jobs",
            "Jobs this worker has started and not yet published, retried or given up",
            ["device"],
            registry=r,
        )
        self._retries = Counter(
            "plate_ocr_retries",
            "Jobs sent back for another attempt after a failed model call",
            ["device"],
            registry=r,
        )
        self._progress = Gauge(
            "plate_ocr_last_progress_timestamp_seconds",
            "Unix time the worker loop last went round (it does at least every second when idle)",
            registry=r,
        )
        self._info = Info(
            "plate_ocr_model", "The weights this worker reads with, and where", registry=r
        )
        r.register(_Recovered(self))

    # -- set-up -------------------------------------------------------------------------------

    def describe(self, model: ModelInfo, *, device: str, backend: str) -> None:
        """The model is loaded on `device`: label everything with it and become ready."""
        self._device = device
        # Zeros from the start, so that rate() and increase() see the first event too.
        for metric in (self._batch, self._model, self._queue_wait, self._latency):
            metric.labels(device)
        self._in_flight.labels(device)
        self._retries.labels(device)
        self._readings.labels(device, "ok", "")
        self._info.info(
            {"name": model.name, "sha256": model.sha256, "device": device, "backend": backend}
        )
        self._loaded.set()

    def count_recovered(self, total: Callable[[], int]) -> None:
        """Where to read how many jobs of dead workers this worker has requeued so far."""
        self._recovered_total = total

    # -- hooks the loop calls -----------------------------------------------------------------

    def beat(self) -> None:
        """The loop went round: taking, or ready to take, the next batch."""
        self._loop_started = True
        self._last_beat = self._clock()
        self._progress.set_to_current_time()

    def started(self, jobs: int) -> None:
        self._in_flight.labels(self._device).inc(jobs)

    @contextmanager
    def completing(self, jobs: int) -> Iterator[None]:
        """A started batch of `jobs` in the model and being published; settled on exit."""
        self._busy_since = self._clock()
        try:
            yield
        finally:
            self._busy_since = None
            self._in_flight.labels(self._device).dec(jobs)

    def model_call(self, images: int, seconds: float) -> None:
        self._batch.labels(self._device).observe(images)
        self._model.labels(self._device).observe(seconds)

    def published(self, readings: Iterable[PlateReading]) -> None:
        for reading in readings:
            code = reading.error.code.value if reading.error is not None else ""
            self._readings.labels(self._device, reading.status, code).inc()
            self._queue_wait.labels(self._device).observe(reading.timings.queue_wait_ms / 1000.0)
            self._latency.labels(self._device).observe(reading.timings.total_ms / 1000.0)

    def retried(self, jobs: int) -> None:
        self._retries.labels(self._device).inc(jobs)

    # -- what the probes ask ------------------------------------------------------------------

    @property
    def model_loaded(self) -> bool:
        return self._loaded.is_set()

    @property
    def loop_started(self) -> bool:
        return self._loop_started

    def seconds_since_progress(self) -> float:
        """How long the loop has been stuck: the taking side not going round, or one batch
        held in the model or in publishing (the taking side can keep polling an empty queue
        while the other is stuck, so both are watched)."""
        now = self._clock()
        busy_s = 0.0 if self._busy_since is None else now - self._busy_since
        return max(now - self._last_beat, busy_s)


class _Recovered(Collector):
    """A counter kept by the recovery sweep, read at scrape time rather than mirrored."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "plate_ocr_recovered_jobs",
            "Jobs of dead workers this worker's recovery sweep put back on the queue",
            labels=["device"],
        )
        family.add_metric([self._metrics._device], self._metrics._recovered_total())
        yield family
