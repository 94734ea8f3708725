"""`Ledger`: RQ's bookkeeping, done a batch at a time.

We keep RQ's own layout (queue list, intermediate list, job hashes, executions, the started /
finished / failed registries, the worker registration) so that `rq info`, rq-dashboard and
`rq requeue` work on our queue, but we touch Redis a few times per *batch* instead of a few
times per job:

    take()    BLMOVE the first id, LMOVE the rest in one pipeline     (queue -> intermediate)
    fetch()   HGETALL every job hash in one pipeline
    start()   one pipeline: executions, started registry, job status  (intermediate -> wip)
    finish()  one MULTI/EXEC: publish every reading (at most once per reading_id) and mark
              every job finished or failed, so a reading is never published without its job
              being acknowledged, and never acknowledged without being published.

Only this module knows RQ's internals.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from plate_ocr.constants import (
    ATTEMPTS_FIELD,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_S,
    RQ_JOB_KEY_PREFIX,
)
from plate_ocr.settings import Settings
from plate_ocr.stream import stream_fields
from schemas import PlateReading

__all__ = ["Ledger", "Outcome", "StartedJob"]

log = logging.getLogger("plate_ocr.worker.ledger")

# Publish a reading unless one with the same reading_id was already published: a job recovered
# from a worker that was slow rather than dead must not produce a second stream entry.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


@dataclass(frozen=True)
class StartedJob:
    job: Job
    execution: Execution


@dataclass(frozen=True)
class Outcome:
    """What happened to one started job: its reading, and the failure text for RQ when failed."""

    started: StartedJob
    reading: PlateReading

    @property
    def failed(self) -> bool:
        return self.reading.status == "error"


class Ledger:
    def __init__(self, settings: Settings, connection: redis.Redis, *, worker_name: str) -> None:
        self._settings = settings
        self._redis = connection
        self.queue = Queue(settings.queue, connection=connection, serializer=JSONSerializer)
        # An rq.Worker used only for its registration and counters, never to run jobs: that is
        # what makes this process show up in `rq info` and rq-dashboard.
        self.rq_worker = Worker(
            [self.queue], connection=connection, name=worker_name, serializer=JSONSerializer
        )
        self._publish_once = connection.register_script(_PUBLISH_ONCE)

    @property
    def name(self) -> str:
        return str(self.rq_worker.name)

    # -- life cycle ---------------------------------------------------------------------------

    def register_birth(self) -> None:
        self.rq_worker.register_birth()
        self.rq_worker.set_state("idle")

    def register_death(self) -> None:
        self.rq_worker.register_death()

    def heartbeat(self) -> None:
        self.rq_worker.heartbeat(self._settings.lease_s + 60)

    # -- the four steps -----------------------------------------------------------------------

    def take(self, batch_size: int, *, block_s: float, fill_wait_s: float) -> list[str]:
        """Move up to `batch_size` job ids from the queue to its intermediate list.

        Blocks up to `block_s` for the first job, then waits at most `fill_wait_s` for the batch
        to fill: a lone job is never held back longer than that.
        """
        src, dst = self.queue.key, self.queue.intermediate_queue_key
        first = (
            self._redis.blmove(src, dst, block_s) if block_s > 0 else self._redis.lmove(src, dst)
        )
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
            nxt = self._redis.blmove(src, dst, max(remaining_s, 0.001))
            if nxt is None:
                break
            ids.append(nxt)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def fetch(self, job_ids: Sequence[str]) -> list[tuple[Job | None, int]]:
        """Each RQ job (None where the hash is gone: deleted or expired while queued) with the
        number of times it was already recovered from a dead worker."""
        jobs = Job.fetch_many(job_ids, connection=self._redis, serializer=JSONSerializer)
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(RQ_JOB_KEY_PREFIX + job_id, ATTEMPTS_FIELD)
            attempts = [int(a or 0) for a in pipe.execute()]
        return list(zip(jobs, attempts, strict=True))

    def forget(self, job_ids: Sequence[str]) -> None:
        """Drop ids whose job hash no longer exists: there is nothing left to read or to report."""
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.lrem(self.queue.intermediate_queue_key, 1, job_id)
            pipe.execute()

    def start(self, jobs: Sequence[Job]) -> list[StartedJob]:
        ttl_s = self._settings.lease_s
        with self._redis.pipeline(transaction=False) as pipe:
            started = []
            for job in jobs:
                execution = Execution.create(job, ttl_s, pipeline=pipe, worker_name=self.name)
                job.prepare_for_execution(self.name, pipeline=pipe)
                pipe.persist(job.key)
                pipe.lrem(self.queue.intermediate_queue_key, 1, job.id)
                started.append(StartedJob(job, execution))
            self.rq_worker.set_state("busy", pipeline=pipe)
            pipe.execute()
        return started

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Publish and acknowledge atomically; returns, per outcome, whether it was published
        now (False: a reading with that id was already on the stream)."""
        settings = self._settings
        ended_at = now()
        script_at: list[int] = []
        with self._redis.pipeline(transaction=True) as pipe:
            for outcome in outcomes:
                script_at.append(len(pipe))
                reading = outcome.reading
                flat = [x for kv in stream_fields(reading).items() for x in kv]
                self._publish_once(
                    keys=[PUBLISHED_KEY_PREFIX + reading.reading_id, settings.results_stream],
                    args=[PUBLISHED_TTL_S, settings.stream_maxlen, *flat],
                    client=pipe,
                )
                self._acknowledge(outcome, ended_at, pipe)
            self.rq_worker.set_state("idle", pipeline=pipe)
            results = pipe.execute()
        return [results[i] is not None for i in script_at]

    def _acknowledge(self, outcome: Outcome, ended_at: object, pipe: redis.client.Pipeline) -> None:
        job, execution = outcome.started.job, outcome.started.execution
        job.ended_at = ended_at  # type: ignore[assignment]
        worked = (job.ended_at - job.started_at) if job.started_at else timedelta(0)  # type: ignore[operator]
        if outcome.failed:
            error = outcome.reading.error
            assert error is not None
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job._handle_failure(
                f"{error.code}: {error.message}",
                pipe,
                worker_name=self.name,
                execution_id=execution.id,
                execution_started_at=execution.created_at,
                execution_ended_at=job.ended_at,
            )
            self.rq_worker.increment_failed_job_count(pipeline=pipe)
        else:
            job._result = outcome.reading.reading_id
            job._handle_success(
                job.get_result_ttl(self._settings.result_ttl_s),
                pipeline=pipe,
                worker_name=self.name,
                execution_id=execution.id,
                execution_started_at=execution.created_at,
                execution_ended_at=job.ended_at,
            )
            job.cleanup(
                job.get_result_ttl(self._settings.result_ttl_s),
                pipeline=pipe,
                remove_from_queue=False,
            )
            self.rq_worker.increment_successful_job_count(pipeline=pipe)
        self.rq_worker.increment_total_working_time(worked, pipe)
        execution.delete(job=job, pipeline=pipe)
