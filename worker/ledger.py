"""`Ledger`: RQ's bookkeeping, done a batch at a time.

We keep RQ's own layout (queue list, intermediate list, job hashes, executions, the started /
finished / failed registries, results, the worker registration) so that `rq info`,
rq-dashboard and `rq requeue` work on our queue, but we touch Redis a few times per *batch*
instead of a dozen times per job:

    take()    BLMOVE the first id, LMOVE the rest in one pipeline   (queue -> intermediate)
    start()   one script: executions, started registry, job status  (intermediate -> started);
              returns each job's payload, so there is no separate fetch
    finish()  one script, atomic: publish every reading (at most once per reading_id) and mark
              every job finished or failed. A reading is never published without its job being
              acknowledged, nor acknowledged without being published.

Only this module and `ledger_scripts` know RQ's internals.
"""

import base64
import json
import logging
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
            [self.queue], connection=connection, name=worker_name, serializer=JSONSerializer
        )
        self._start = connection.register_script(ledger_scripts.START)
        self._finish = connection.register_script(ledger_scripts.FINISH)

    @property
    def name(self) -> str:
        return str(self.rq_worker.name)

    # -- life cycle ---------------------------------------------------------------------------

    def register_birth(self) -> None:
        self.rq_worker.register_birth()  # type: ignore[no-untyped-call]
        self.rq_worker.set_state("idle")

    def register_death(self) -> None:
        self.rq_worker.register_death()  # type: ignore[no-untyped-call]

    def heartbeat(self) -> None:
        self.rq_worker.heartbeat(self._settings.lease_s + 60)

    # -- the three steps ----------------------------------------------------------------------

    def take(self, batch_size: int, *, block_s: float, fill_wait_s: float) -> list[str]:
        """Move up to `batch_size` job ids from the queue to its intermediate list.

        Blocks up to `block_s` for the first job, then waits at most `fill_wait_s` for the batch
        to fill: a lone job is never held back longer than that.
        """
        src, dst = self.queue.key, self.queue.intermediate_queue_key
        # Redis takes fractional seconds for BLMOVE; redis-py's stub says int.
        if block_s > 0:
            first = self._redis.blmove(src, dst, block_s)  # type: ignore[arg-type]
        else:
            first = self._redis.lmove(src, dst)
        if first is None:
            return []
        ids = [first]
        deadline = time.monotonic() + fill_wait_s
        while len(ids) < batch_size:
            with self._redis.pipeline(transaction=False) as pipe:
                for _ in range(batch_size - len(ids)):
                    pipe.lmove(src, dst)
                ids.extend(i for i in pipe.execute() if i is not None)
            remaining_s = deadline - time.monotonic()
            if len(ids) >= batch_size or remaining_s <= 0:
                break
            nxt = self._redis.blmove(src, dst, max(remaining_s, 0.001))  # type: ignore[arg-type]
            if nxt is None:
                break
            ids.append(nxt)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def start(self, job_ids: Sequence[str]) -> list[Taken]:
        """Mark the jobs started; ids whose hash is gone (deleted while queued) are dropped."""
        now = datetime.now(UTC)
        pairs = [(job_id, uuid.uuid4().hex) for job_id in job_ids]
        replies = self._start(
            args=[
                RQ_JOB_KEY_PREFIX,
                self.queue.started_job_registry.key,
                self.queue.intermediate_queue_key,
                self.rq_worker.key,
                self.rq_worker.executions_key,
                RQ_EXECUTION_KEY_PREFIX,
                RQ_EXECUTIONS_KEY_PREFIX,
                ATTEMPTS_FIELD,
                self.name,
                now.timestamp(),
                now.strftime(_RQ_TIME_FORMAT),
                self._settings.lease_s,
                *(x for pair in pairs for x in pair),
            ]
        )
        taken = [
            Taken(job_id, exec_id, reply[0], int(reply[1]), now.timestamp())
            for (job_id, exec_id), reply in zip(pairs, replies, strict=True)
            if reply
        ]
        if len(taken) < len(pairs):
            gone = {job_id for job_id, _ in pairs} - {t.job_id for t in taken}
            log.warning("dropped %d ids whose job hash is gone: %s", len(gone), sorted(gone)[:5])
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
        for outcome in outcomes:
            args.extend(self._job_args(outcome, now))
        return [bool(flag) for flag in self._finish(args=args)]

    def _job_args(self, outcome: Outcome, now: datetime) -> list[str | bytes | int | float]:
        taken, reading = outcome.taken, outcome.reading
        # What rq.results.Result.serialize() writes, so `job.latest_result()` works.
        result: dict[str, str | int | float] = {
            "worker_name": self.name,
            "execution_id": taken.execution_id,
            "execution_started_at": taken.started_at,
            "execution_ended_at": now.timestamp(),
        }
        exc_info = b""
        if reading.error is None:
            result["type"] = Result.Type.SUCCESSFUL.value
            result["return_value"] = base64.b64encode(
                json.dumps(reading.reading_id).encode()
            ).decode()
        else:
            reason = f"{reading.error.code}: {reading.error.message}"
            exc_info = zlib.compress(reason.encode())
            result["type"] = Result.Type.FAILED.value
            result["exc_string"] = base64.b64encode(exc_info).decode()
        flat_result = [x for kv in result.items() for x in kv]
        flat_stream = [x for kv in stream_fields(reading).items() for x in kv]
        return [
            taken.job_id,
            taken.execution_id,
            1 if reading.error is None else 0,
            reading.reading_id,
            exc_info,
            len(flat_result),
            *flat_result,
            len(flat_stream),
            *flat_stream,
        ]
