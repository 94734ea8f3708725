"""`Ledger`: RQ's bookkeeping, done a batch at a time.

We keep RQ's own layout (queue list, intermediate list, job hashes, executions, the started /
finished / failed registries, results, the worker registration) so that `rq info`,
rq-dashboard and `rq requeue` work on our queue, but we touch Redis a few times per *batch*
instead of a dozen times per job:

    take()    BLMOVE the first id (queue -> intermediate), then one script pops the rest and
              marks them all started (executions, started registry, job status); it returns
              each job's payload, so there is no separate fetch
    finish()  one script, atomic: publish every reading (at most once per reading_id) and mark
              every job finished or failed. A reading is never published without its job being
              acknowledged, nor acknowledged without being published.
    retry()   one script: started jobs whose model call failed wait in RQ's scheduled registry
              (with a backoff) for another attempt, counted in the job hash

Only this module and `ledger_scripts` know RQ's internals.
"""

import base64
import json
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Queue, Worker
from rq.results import Result
from rq.serializers import JSONSerializer

from plate_ocr.constants import (
    ATTEMPTS_FIELD,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_S,
    RQ_EXECUTION_KEY_PREFIX,
    RQ_EXECUTIONS_KEY_PREFIX,
    RQ_JOB_KEY_PREFIX,
    RQ_RESULTS_KEY_PREFIX,
)
from plate_ocr.settings import Settings
from plate_ocr.stream import stream_fields
from schemas import PlateReading
from worker import ledger_scripts

__all__ = ["Ledger", "Outcome", "Taken"]

log = logging.getLogger("plate_ocr.worker.ledger")

_RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # rq.utils.utcformat


@dataclass(frozen=True)
class Taken:
    """A job this worker has started: its RQ payload, not yet decoded."""

    job_id: str
    execution_id: str
    data: bytes
    attempts: int
    started_at: float


@dataclass(frozen=True)
class Outcome:
    taken: Taken
    reading: PlateReading


class Ledger:
    def __init__(self, settings: Settings, connection: redis.Redis, *, worker_name: str) -> None:
        self._settings = settings
        self._redis = connection
        self.queue = Queue(settings.queue, connection=connection, serializer=JSONSerializer)
        # An rq.Worker used only for its registration (birth, death, heartbeat), never to run a
        # job: that is what makes this process show up in `rq info` and rq-dashboard.
        self.rq_worker = Worker(
            [self.queue],
            connection=connection,
            name=worker_name,
            serializer=JSONSerializer,
            # Otherwise RQ asks Redis for our address right here: a worker built while Redis is
            # down would crash instead of waiting for it. register_birth() asks instead.
            prepare_for_work=False,
        )
        self.rq_worker.hostname = socket.gethostname()
        self.rq_worker.pid = os.getpid()
        self._start_script = connection.register_script(ledger_scripts.START)
        self._finish = connection.register_script(ledger_scripts.FINISH)
        self._retry = connection.register_script(ledger_scripts.RETRY)

    @property
    def name(self) -> str:
        return str(self.rq_worker.name)

    # -- life cycle ---------------------------------------------------------------------------

    def register_birth(self) -> None:
        self.rq_worker._set_ip_address(self._redis)  # what prepare_for_work=True would do
        self.rq_worker.register_birth()  # type: ignore[no-untyped-call]
        self.rq_worker.set_state("idle")

    def register_death(self) -> None:
        self.rq_worker.register_death()  # type: ignore[no-untyped-call]

    def heartbeat(self) -> None:
        self.rq_worker.heartbeat(self._settings.lease_s + 60)

    # -- the two steps ----------------------------------------------------------------------

    def take(self, batch_size: int, *, block_s: float, fill_wait_s: float) -> list[Taken]:
        """Start up to `batch_size` jobs from the queue.

        Blocks up to `block_s` for a first job (BLMOVE to the intermediate list, as RQ does, so
        a crash right after it strands nothing that recovery cannot see), then takes what else
        is queued in the same script that starts them, and waits at most `fill_wait_s` in all
        for the batch to fill: a lone job is never held back longer than that.
        """
        deadline = time.monotonic() + fill_wait_s
        wait_s = block_s
        taken: list[Taken] = []
        while len(taken) < batch_size:
            first = self._move_first(wait_s)
            if first is None:
                break
            taken.extend(self._start([first], pull=batch_size - len(taken) - 1))
            wait_s = deadline - time.monotonic()
            if wait_s <= 0:
                break
        return taken

    def _move_first(self, wait_s: float) -> bytes | None:
        src, dst = self.queue.key, self.queue.intermediate_queue_key
        if wait_s <= 0:
            moved = self._redis.lmove(src, dst)
        else:  # Redis takes fractional seconds; redis-py's stub says int
            moved = self._redis.blmove(src, dst, max(wait_s, 0.001))  # type: ignore[arg-type]
        return moved if isinstance(moved, bytes) or moved is None else str(moved).encode()

    def _start(self, moved: Sequence[bytes], *, pull: int) -> list[Taken]:
        """Mark `moved` plus up to `pull` more queued jobs started; ids whose hash is gone
        (deleted while queued) are dropped with a warning: there is nothing left to read."""
        now = datetime.now(UTC)
        replies = self._start_script(
            args=[
                self.queue.key,
                self.queue.intermediate_queue_key,
                RQ_JOB_KEY_PREFIX,
                self.queue.started_job_registry.key,
                self.rq_worker.key,
                self.rq_worker.executions_key,
                RQ_EXECUTION_KEY_PREFIX,
                RQ_EXECUTIONS_KEY_PREFIX,
                ATTEMPTS_FIELD,
                self.name,
                now.timestamp(),
                now.strftime(_RQ_TIME_FORMAT),
                self._settings.lease_s,
                uuid.uuid4().hex[:24],
                max(pull, 0),
                *moved,
            ]
        )
        taken = [
            Taken(r[0].decode(), r[1].decode(), r[2], int(r[3]), now.timestamp())
            for r in replies
            if len(r) > 1
        ]
        gone = [r[0].decode() for r in replies if len(r) == 1]
        if gone:
            log.warning("dropped %d ids whose job hash is gone: %s", len(gone), gone[:5])
        return taken

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Publish and acknowledge atomically. Returns, per outcome, whether its reading was
        published now (False: a reading with the same id was already on the stream)."""
        if not outcomes:
            return []
        settings = self._settings
        now = datetime.now(UTC)
        args: list[str | bytes | int | float] = [
            RQ_JOB_KEY_PREFIX,
            RQ_RESULTS_KEY_PREFIX,
            PUBLISHED_KEY_PREFIX,
            self.queue.started_job_registry.key,
            self.queue.finished_job_registry.key,
            self.queue.failed_job_registry.key,
            self.rq_worker.key,
            self.rq_worker.executions_key,
            RQ_EXECUTION_KEY_PREFIX,
            RQ_EXECUTIONS_KEY_PREFIX,
            settings.results_stream,
            settings.stream_maxlen,
            PUBLISHED_TTL_S,
            now.timestamp(),
            now.strftime(_RQ_TIME_FORMAT),
            settings.result_ttl_s,
            settings.failure_ttl_s,
            sum(now.timestamp() - o.taken.started_at for o in outcomes),
        ]
        args.extend(self._job_arg(outcome, now) for outcome in outcomes)
        return [bool(flag) for flag in self._finish(args=args)]

    def retry(self, taken: Sequence[Taken], *, delay_s: float) -> list[str]:
        """Give started jobs another attempt, counted in the job hash, after `delay_s` doubled
        per attempt already made (0: at once, at the end of the queue); returns the ids retried
        (not those a recovery sweep already requeued)."""
        if not taken:
            return []
        replies = self._retry(
            args=[
                self.queue.key,
                self.queue.started_job_registry.key,
                self.rq_worker.executions_key,
                RQ_JOB_KEY_PREFIX,
                RQ_EXECUTION_KEY_PREFIX,
                RQ_EXECUTIONS_KEY_PREFIX,
                ATTEMPTS_FIELD,
                self.queue.scheduled_job_registry.key,
                time.time(),
                delay_s,
                *(x for t in taken for x in (t.job_id, t.execution_id)),
            ]
        )
        return [r.decode() if isinstance(r, bytes) else str(r) for r in replies]

    def _job_arg(self, outcome: Outcome, now: datetime) -> str:
        taken, reading = outcome.taken, outcome.reading
        # What rq.results.Result.serialize() writes, so that `job.latest_result()` works.
        result = {
            "worker_name": self.name,
            "execution_id": taken.execution_id,
            "execution_started_at": str(taken.started_at),
            "execution_ended_at": str(now.timestamp()),
        }
        failure = ""
        if reading.error is None:
            result["type"] = str(Result.Type.SUCCESSFUL.value)
            result["return_value"] = base64.b64encode(
                json.dumps(reading.reading_id).encode()
            ).decode()
        else:
            # RQ reads exc_info compressed or, failing that, as plain text: plain text it is.
            failure = f"{reading.error.code}: {reading.error.message}"
            result["type"] = str(Result.Type.FAILED.value)
            result["exc_string"] = base64.b64encode(zlib.compress(failure.encode())).decode()
        return json.dumps(
            {
                "j": taken.job_id,
                "e": taken.execution_id,
                "ok": reading.error is None,
                "r": reading.reading_id,
                "x": failure,
                "res": [x for kv in result.items() for x in kv],
                "s": [x for kv in stream_fields(reading).items() for x in kv],
            }
        )
