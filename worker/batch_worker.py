"""`BatchWorker`: pulls jobs in batches, reads them in one model call, publishes, acknowledges.

No fork per job (CUDA does not survive a fork): the model lives in this process for its whole
life. `work()` is the whole story: a prefetch thread takes and decodes the next batch
(`_next_batch`) while this thread reads the current one and publishes it (`_complete`).

Shutdown is staged:
1. first SIGTERM/SIGINT: stop taking jobs; the batches in hand (the one in the model and the
   `prefetch_batches` prefetched) are read, published and acknowledged; exit 0. Their batch
   times must fit in `shutdown_grace_s`, below the pod's termination grace.
2. second signal: stop now. Jobs in hand stay in the started registry and are recovered by
   another worker once their lease runs out; nothing is lost, they are just read later.
"""

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import numpy as np
import redis

from plate_ocr.connection import (
    DISCONNECT_ERRORS,
    Backoff,
    RedisUnavailable,
    retry_on_disconnect,
)
from plate_ocr.constants import WORKER_HEARTBEAT_INTERVAL_S
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from schemas import ErrorCode, PlateJob
from worker.decoder import Decoder
from worker.inference import Reader, read_each
from worker.intake import Envelope, admit, envelope_of, load_images
from worker.ledger import Ledger, Outcome, Taken
from worker.metrics import WorkerMetrics
from worker.prefetch import DRAINED, Drained, Prefetcher
from worker.readings import ReadingFactory
from worker.recovery import Recovery

__all__ = ["BatchWorker", "Reader"]

log = logging.getLogger("plate_ocr.worker")

# How long one blocking take waits for a first job: bounds how late a stop request is noticed.
_TAKE_BLOCK_S = 1.0
# Redis away, or full (maxmemory with noeviction refuses writes until the queue drains): the
# worker waits with backoff either way, holding what it has, and never half-writes (every
# write is one script).
_WAIT_OUT: tuple[type[Exception], ...] = (*DISCONNECT_ERRORS, redis.exceptions.OutOfMemoryError)


def default_worker_name(device: str) -> str:
    return f"plate-ocr.{socket.gethostname()}.{os.getpid()}.{device.replace(':', '')}"


class BatchWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        reader: Reader,
        connection: redis.Redis,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._reader = reader
        self._redis = connection
        name = settings.worker_id or default_worker_name(reader.device)
        self.ledger = Ledger(settings, connection, worker_name=name)
        self._recovery = Recovery(
            self.ledger.queue,
            connection,
            lease_s=settings.lease_s,
            interval_s=settings.recovery_interval_s,
        )
        self._readings = ReadingFactory(
            reader.model_info,
            reader.device,
            name,
            recogniser=getattr(reader, "recogniser_info", None),  # the fused reader's second model
            fast=getattr(reader, "fast_info", None),  # the cascade's fast reader
        )
        self._decoder = Decoder(settings)
        # One per thread (taking, publishing): building one reseeds a Random, ~0.3 ms a batch.
        self._take_backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        self._publish_backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        self._stop_requested = False
        # Batches handed to the model and not yet published; burst mode waits for them.
        self._in_flight = 0
        self._settled = threading.Condition()
        self.jobs_done = 0
        # Probes and Prometheus (worker.probes) read this; the loop only calls its hooks.
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        # The runtime the reader resolved ("auto" names none), else what the settings asked for.
        backend = getattr(reader, "backend", settings.backend)
        self.metrics.describe(reader.model_info, device=reader.device, backend=backend)
        self.metrics.count_recovered(lambda: self._recovery.recovered_jobs)

    # -- the loop -----------------------------------------------------------------------------

    def work(self, *, burst: bool = False) -> int:
        """Run until asked to stop, or in burst mode until the queue is empty. Returns 0."""
        self._install_signal_handlers()
        # A pod can start while Redis is restarting: wait for it, as taking jobs does.
        retry_on_disconnect(
            self.ledger.register_birth,
            backoff=Backoff(max_s=self._settings.reconnect_max_backoff_s),
            should_stop=lambda: self._stop_requested,
            what="registering the worker",
            retry_on=_WAIT_OUT,
        )
        log.info(
            "worker %s started on %s, queue %r, batch %d, max wait %d ms",
            self.ledger.name,
            self._reader.device,
            self._settings.queue,
            self._settings.batch_size,
            self._settings.max_wait_ms,
        )
        # Heartbeats on a thread of their own: a batch in the model must not make a live worker
        # look dead, and a dead one must drop off `rq info` within WORKER_TTL_S.
        beats_done = threading.Event()
        beats = threading.Thread(target=self._beat, args=(beats_done,), name="heartbeat")
        beats.start()
        # Taking and decoding run ahead in a thread; the model runs here.
        batches = Prefetcher(
            lambda: self._next_batch(burst),
            should_stop=self._stopping,
            depth=self._settings.prefetch_batches,
        )
        try:
            for batch in batches:
                self._complete(batch)
        finally:
            batches.close()
            beats_done.set()
            beats.join()
            reason = "stop requested" if self._stop_requested else "burst done"
            log.info(
                "worker %s stopping: %s, %d jobs done", self.ledger.name, reason, self.jobs_done
            )
            self._decoder.close()
            try:
                self.ledger.register_death()
            except redis.RedisError as e:
                log.warning("could not register death: %s", e)
        return 0

    def request_stop(self) -> None:
        self._stop_requested = True

    def _stopping(self) -> bool:
        return self._stop_requested

    def _beat(self, done: threading.Event) -> None:
        while not done.wait(WORKER_HEARTBEAT_INTERVAL_S):
            try:
                self.ledger.heartbeat()
            except redis.RedisError as e:  # taking and publishing report the outage
                log.debug("heartbeat failed: %s", e)

    # -- the producing side (prefetch thread) -------------------------------------------------

    def _next_batch(self, burst: bool) -> "_Prepared | Drained | None":
        try:
            self.metrics.beat()  # /healthz: the loop goes round, even while Redis is away
            self._recovery.sweep_if_due()
            taken = self.ledger.take(
                self._settings.batch_size,
                block_s=0.0 if burst else _TAKE_BLOCK_S,
                fill_wait_s=self._settings.max_wait_ms / 1000.0,
            )
            if not taken:
                return self._drained_or_wait() if burst else None
            prepared = self._prepare(taken)
            self.metrics.started(len(taken))
            with self._settled:
                self._in_flight += 1
        except _WAIT_OUT as e:
            # Jobs in hand stay in Redis (intermediate list or started registry) and are
            # recovered once their lease runs out, by us or by another worker.
            delay_s = self._take_backoff.next_delay_s()
            log.warning("redis unavailable (%s); retrying in %.1f s", e, delay_s)
            time.sleep(delay_s)
            return None
        self._take_backoff.reset()
        return prepared

    def _drained_or_wait(self) -> Drained | None:
        """Burst mode ends when the queue is empty, no batch is still being read *and* no job
        waits out a retry backoff: a batch in the model may yet fail and schedule a retry, and a
        scheduled retry comes back to the queue when due."""
        with self._settled:
            if self._in_flight == 0 and self._recovery.retries_waiting() == 0:
                log.info("worker %s: queue drained (burst mode)", self.ledger.name)
                return DRAINED
            self._settled.wait(timeout=_TAKE_BLOCK_S)
        return None

    def _prepare(self, batch: Sequence[Taken]) -> "_Prepared":
        """Admit each job and decode its image; what fails here is already an outcome."""
        taken_at = datetime.now(UTC)
        prepared = _Prepared(taken_at)
        admitted: list[tuple[Taken, PlateJob]] = []
        for taken in batch:
            try:
                if taken.attempts >= self._settings.max_attempts:
                    raise JobError(
                        ErrorCode.RETRIES_EXHAUSTED,
                        f"{taken.attempts} attempts ended without a reading (dead workers or "
                        "failed model calls); not retried again",
                    )
                admitted.append((taken, admit(taken, self._settings)))
            except JobError as e:
                reading = self._readings.error(envelope_of(taken), e, taken_at=taken_at)
                prepared.outcomes.append(Outcome(taken, reading))
        if not admitted:
            return prepared
        t0 = time.perf_counter()
        blobs = load_images([pj for _, pj in admitted], self._settings, self._redis)
        decoded = self._decoder.decode_all(blobs)
        prepared.decode_ms = (time.perf_counter() - t0) * 1000.0 / len(admitted)
        for (taken, pj), image in zip(admitted, decoded, strict=True):
            if isinstance(image, JobError):
                reading = self._readings.error(
                    _envelope(pj, taken), image, enqueued_at=pj.enqueued_at, taken_at=taken_at
                )
                prepared.outcomes.append(Outcome(taken, reading))
            else:
                prepared.ready.append((taken, pj, image))
        if prepared.ready:
            # Resizing and letterboxing here too, so the model thread only runs the model. A
            # crop the reader cannot take fails in its own model call, in read_each.
            try:
                prepared.pixels = self._reader.preprocess([image for _, _, image in prepared.ready])
            except Exception:
                log.exception("preprocessing failed for a batch of %d", len(prepared.ready))
        return prepared

    # -- the consuming side (this thread) -----------------------------------------------------

    def _complete(self, prepared: "_Prepared") -> None:
        try:
            with self.metrics.completing(len(prepared.outcomes) + len(prepared.ready)):
                self._read_and_publish(prepared)
        finally:
            with self._settled:
                self._in_flight -= 1
                self._settled.notify_all()

    def _read_and_publish(self, prepared: "_Prepared") -> None:
        """Read the batch's images in one model call, then publish and acknowledge."""
        outcomes = prepared.outcomes + self._read(prepared)
        published = [False] * len(outcomes)  # across attempts (see Ledger.finish)
        try:
            # Safe to repeat: a reading is published at most once per reading_id.
            retry_on_disconnect(
                lambda: self.ledger.finish(outcomes, published=published),
                backoff=self._publish_backoff,
                give_up_after_s=self._settings.lease_s,
                what="publishing a batch",
                retry_on=_WAIT_OUT,
            )
        except RedisUnavailable as e:
            # By now the lease has run out and another worker recovers these jobs.
            log.error("%s; %d jobs left for recovery", e, len(outcomes))
            return
        self.jobs_done += len(outcomes)
        self.metrics.published(o.reading for o, new in zip(outcomes, published, strict=True) if new)
        duplicates = published.count(False)
        if duplicates:
            # A job recovered from a worker that was slow, not dead, or a job id re-submitted.
            log.warning(
                "%d readings were already on the stream (a recovered job read twice, or a "
                "re-submitted job id): not published again",
                duplicates,
            )

    def _read(self, prepared: "_Prepared") -> list[Outcome]:
        ready = prepared.ready
        if not ready:
            return []
        t1 = time.perf_counter()
        images = [image for _, _, image in ready]
        batch = prepared.pixels if prepared.pixels is not None else images
        results = read_each(self._reader, batch, images)
        model_s = time.perf_counter() - t1
        self.metrics.model_call(len(ready), model_s)
        infer_ms = model_s * 1000.0 / len(ready)
        outcomes: list[Outcome] = []
        failed: list[tuple[Taken, PlateJob, Exception]] = []
        for (taken, pj, _), result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                failed.append((taken, pj, result))
                continue
            reading = self._readings.ok(
                _envelope(pj, taken),
                result,
                enqueued_at=pj.enqueued_at,
                taken_at=prepared.taken_at,
                decode_ms=prepared.decode_ms,
                infer_ms=infer_ms,
            )
            outcomes.append(Outcome(taken, reading))
        return outcomes + self._retry_or_fail(failed, prepared.taken_at)

    def _retry_or_fail(
        self, failed: Sequence[tuple[Taken, PlateJob, Exception]], taken_at: datetime
    ) -> list[Outcome]:
        """Jobs whose model call failed are retried after a backoff (the failure may be
        transient: a GPU out of memory, a driver hiccup), except on their last attempt, which
        ends as an INFERENCE_FAILED error reading with the reason. The attempt count is the one
        recovery keeps for jobs of dead workers, so `max_attempts` bounds the two together."""
        last = self._settings.max_attempts - 1
        again = [taken for taken, _, _ in failed if taken.attempts < last]
        if again:
            retried = self.ledger.retry(again, delay_s=self._settings.retry_delay_s)
            self.metrics.retried(len(retried))
            log.warning("inference failed; %d jobs will be retried", len(retried))
        outcomes = []
        for taken, pj, e in failed:
            if taken.attempts < last:
                continue
            err = JobError(
                ErrorCode.INFERENCE_FAILED,
                f"attempt {taken.attempts + 1} of {self._settings.max_attempts} failed: "
                f"{type(e).__name__}: {e}",
            )
            reading = self._readings.error(
                _envelope(pj, taken), err, enqueued_at=pj.enqueued_at, taken_at=taken_at
            )
            outcomes.append(Outcome(taken, reading))
        return outcomes

    # -- signals ------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        try:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        except ValueError:  # not the main thread (tests drive the loop from a thread)
            log.debug("not in the main thread: signal handlers not installed")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            raise SystemExit(1)
        # Flag first: a second signal can interrupt this handler between any two bytecodes.
        self._stop_requested = True
        log.info(
            "%s: finishing the batch in hand, then exiting (again to stop now)",
            signal.Signals(signum).name,
        )


@dataclass
class _Prepared:
    """A started batch, admitted and decoded, waiting for the model."""

    taken_at: datetime
    outcomes: list[Outcome] = field(default_factory=list)  # already decided: errors
    ready: list[tuple[Taken, PlateJob, np.ndarray]] = field(default_factory=list)
    decode_ms: float = 0.0
    pixels: Any = None  # the reader's preprocessed batch of `ready`


def _envelope(pj: PlateJob, taken: Taken) -> Envelope:
    return Envelope(
        job_id=pj.job_id,
        camera_id=pj.camera_id,
        metadata=pj.metadata,
        requeues=taken.requeues,
        supersedes=taken.supersedes,
        track_id=pj.track_id,
    )
