"""`BatchWorker`: pulls jobs in batches, reads them in one model call, publishes, acknowledges.

No fork per job (CUDA does not survive a fork): the model lives in this process for its whole
life. The loop in `work()` is the whole story; `_handle_batch()` is one batch.

Shutdown is staged:
1. first SIGTERM/SIGINT: stop taking jobs; the batch in hand is read, published and
   acknowledged; exit 0. It must fit in `shutdown_grace_s`, below the pod's termination grace.
2. second signal: stop now. Jobs in hand stay in the started registry and are recovered by
   another worker once their lease runs out; nothing is lost, they are just read later.
"""

import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

import numpy as np
import redis

from plate_ocr.connection import Backoff, retry_on_disconnect
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from schemas import ErrorCode, ModelInfo, PlateJob
from worker.image import decode_image
from worker.intake import Envelope, admit, envelope_of, load_images
from worker.ledger import Ledger, Outcome, Taken
from worker.readings import ReadingFactory, Recognition
from worker.recovery import Recovery

__all__ = ["BatchWorker", "Reader"]

log = logging.getLogger("plate_ocr.worker")

# How long one blocking take waits for a first job: bounds how late a stop request is noticed.
_TAKE_BLOCK_S = 1.0


class Reader(Protocol):
    """The OCR engine as the worker sees it: a pure function of decoded images."""

    @property
    def model_info(self) -> ModelInfo: ...
    @property
    def device(self) -> str: ...
    def read_arrays(self, images: Sequence[np.ndarray]) -> Sequence[Recognition]: ...


def default_worker_name(device: str) -> str:
    return f"plate-ocr.{socket.gethostname()}.{os.getpid()}.{device.replace(':', '')}"


class BatchWorker:
    def __init__(self, settings: Settings, *, reader: Reader, connection: redis.Redis) -> None:
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
        self._readings = ReadingFactory(reader.model_info, reader.device, name)
        self._decoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="decode")
        self._stop_requested = False
        self.jobs_done = 0

    # -- the loop -----------------------------------------------------------------------------

    def work(self, *, burst: bool = False) -> int:
        """Run until asked to stop, or in burst mode until the queue is empty. Returns 0."""
        self._install_signal_handlers()
        # A pod can start while Redis is restarting: wait for it, as the loop below does.
        retry_on_disconnect(
            self.ledger.register_birth,
            backoff=Backoff(max_s=self._settings.reconnect_max_backoff_s),
            should_stop=lambda: self._stop_requested,
            what="registering the worker",
        )
        log.info(
            "worker %s started on %s, queue %r, batch %d, max wait %d ms",
            self.ledger.name,
            self._reader.device,
            self._settings.queue,
            self._settings.batch_size,
            self._settings.max_wait_ms,
        )
        backoff = Backoff(max_s=self._settings.reconnect_max_backoff_s)
        try:
            while not self._stop_requested:
                try:
                    self._recovery.sweep_if_due()
                    self.ledger.heartbeat()
                    batch = self.ledger.take(
                        self._settings.batch_size,
                        block_s=0.0 if burst else _TAKE_BLOCK_S,
                        fill_wait_s=self._settings.max_wait_ms / 1000.0,
                    )
                    if batch:
                        self._handle_batch(batch)
                    elif burst:
                        log.info("worker %s: queue drained (burst mode)", self.ledger.name)
                        break
                    backoff.reset()
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    # Jobs in hand stay in Redis (intermediate list or started registry) and are
                    # recovered once their lease runs out, by us or by another worker.
                    delay_s = backoff.next_delay_s()
                    log.warning("redis unavailable (%s); retrying in %.1f s", e, delay_s)
                    time.sleep(delay_s)
        finally:
            reason = "stop requested" if self._stop_requested else "burst done"
            log.info(
                "worker %s stopping: %s, %d jobs done", self.ledger.name, reason, self.jobs_done
            )
            self._decoder.shutdown(wait=False, cancel_futures=True)
            try:
                self.ledger.register_death()
            except redis.RedisError as e:
                log.warning("could not register death: %s", e)
        return 0

    def request_stop(self) -> None:
        self._stop_requested = True

    # -- one batch ----------------------------------------------------------------------------

    def _handle_batch(self, batch: Sequence[Taken]) -> None:
        taken_at = datetime.now(UTC)
        outcomes: list[Outcome] = []
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
                outcomes.append(Outcome(taken, reading))
        outcomes.extend(self._read(admitted, taken_at))
        published = self.ledger.finish(outcomes)
        self.jobs_done += len(outcomes)
        duplicates = published.count(False)
        if duplicates:
            log.warning("%d readings were already published (recovered jobs)", duplicates)

    def _read(
        self, admitted: Sequence[tuple[Taken, PlateJob]], taken_at: datetime
    ) -> list[Outcome]:
        if not admitted:
            return []
        plate_jobs = [pj for _, pj in admitted]
        t0 = time.perf_counter()
        blobs = load_images(plate_jobs, self._settings, self._redis)
        decoded = list(self._decoder.map(self._decode, blobs))
        decode_ms = (time.perf_counter() - t0) * 1000.0 / len(admitted)

        outcomes: list[Outcome] = []
        ready: list[tuple[Taken, PlateJob, np.ndarray]] = []
        for (s, pj), image in zip(admitted, decoded, strict=True):
            if isinstance(image, JobError):
                reading = self._readings.error(
                    _envelope(pj), image, enqueued_at=pj.enqueued_at, taken_at=taken_at
                )
                outcomes.append(Outcome(s, reading))
            else:
                ready.append((s, pj, image))
        if not ready:
            return outcomes
        t1 = time.perf_counter()
        results = self._infer([image for _, _, image in ready])
        infer_ms = (time.perf_counter() - t1) * 1000.0 / len(ready)
        failed: list[tuple[Taken, PlateJob, Exception]] = []
        for (s, pj, _), result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                failed.append((s, pj, result))
                continue
            reading = self._readings.ok(
                _envelope(pj),
                result,
                enqueued_at=pj.enqueued_at,
                taken_at=taken_at,
                decode_ms=decode_ms,
                infer_ms=infer_ms,
            )
            outcomes.append(Outcome(s, reading))
        return outcomes + self._retry_or_fail(failed, taken_at)

    def _infer(self, images: Sequence[np.ndarray]) -> list[Recognition | Exception]:
        """Each image's recognition, or the exception reading it raised. One model call for the
        batch; should it fail, one call per image, so that a crop that breaks the model fails
        alone instead of taking its batch-mates down with it."""
        try:
            return list(self._reader.read_arrays(images))
        except Exception as e:  # the model failing must not take the worker down
            if len(images) == 1:
                return [e]
            log.exception("inference failed for a batch of %d; reading one by one", len(images))
        results: list[Recognition | Exception] = []
        for image in images:
            try:
                results.extend(self._reader.read_arrays([image]))
            except Exception as e:
                results.append(e)
        return results

    def _retry_or_fail(
        self, failed: Sequence[tuple[Taken, PlateJob, Exception]], taken_at: datetime
    ) -> list[Outcome]:
        """Jobs whose model call failed go back on the queue (the failure may be transient: a
        GPU out of memory, a driver hiccup), except on their last attempt, which ends as an
        INFERENCE_FAILED error reading with the reason. The attempt count is the one recovery
        keeps for jobs of dead workers, so `max_attempts` bounds the two together."""
        last = self._settings.max_attempts - 1
        again = [taken for taken, _, _ in failed if taken.attempts < last]
        if again:
            requeued = self.ledger.retry(again)
            log.warning("inference failed; %d jobs requeued for another attempt", len(requeued))
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
                _envelope(pj), err, enqueued_at=pj.enqueued_at, taken_at=taken_at
            )
            outcomes.append(Outcome(taken, reading))
        return outcomes

    def _decode(self, blob: bytes | JobError) -> np.ndarray | JobError:
        if isinstance(blob, JobError):
            return blob
        try:
            return decode_image(
                blob,
                max_bytes=self._settings.max_image_bytes,
                max_pixels=self._settings.max_image_pixels,
            )
        except JobError as e:
            return e

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
        log.info(
            "%s: finishing the batch in hand, then exiting (again to stop now)",
            signal.Signals(signum).name,
        )
        self._stop_requested = True


def _envelope(pj: PlateJob) -> Envelope:
    return Envelope(job_id=pj.job_id, camera_id=pj.camera_id, metadata=pj.metadata)
