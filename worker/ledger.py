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

The lease on a started job is kept in a sorted set of our own (`LEASES_KEY_PREFIX`); RQ's
started registry gets a later score, so that RQ's clean-up (`rq info` runs it) never fails the
jobs of a worker that may still publish. A person's requeue of an ended job is a new attempt
(see `ledger_scripts.START`): `Taken.requeues` counts them and `Taken.supersedes` names the
reading the new one replaces.

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

import msgpack
import redis
from rq import Queue, Worker, worker_registration
from rq.results import Result
from rq.serializers import JSONSerializer

from plate_ocr.connection import check_replicated, oom_refusals
from plate_ocr.constants import (
    ATTEMPTS_FIELD,
    ENDED_FIELD,
    ENTRY_FIELD,
    LEASES_KEY_PREFIX,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_S,
    READING_FIELD,
    REQUEUES_FIELD,
    RQ_EXECUTION_KEY_PREFIX,
    RQ_EXECUTIONS_KEY_PREFIX,
    RQ_JOB_KEY_PREFIX,
    RQ_RESULTS_KEY_PREFIX,
    RQ_STARTED_GRACE_S,
    SUPERSEDES_FIELD,
    WORKER_TTL_S,
)
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from plate_ocr.stream import stream_fields
from schemas import PlateReading
from worker import ledger_scripts

__all__ = ["Ledger", "Outcome", "Taken"]

log = logging.getLogger("plate_ocr.worker.ledger")

_RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # rq.utils.utcformat
_RESULT_SUCCESSFUL = str(Result.Type.SUCCESSFUL.value)
_RESULT_FAILED = str(Result.Type.FAILED.value)


@dataclass(frozen=True)
class Taken:
    """A job this worker has started: its RQ payload, not yet decoded."""

    job_id: str
    execution_id: str
    data: bytes
    attempts: int
    started_at: float
    requeues: int = 0  # times a person requeued the job after it ended: this attempt's number
    supersedes: str | None = None  # the reading_id that this attempt's reading replaces


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
            worker_ttl=WORKER_TTL_S,
            # Otherwise RQ asks Redis for our address right here: a worker built while Redis is
            # down would crash instead of waiting for it. register_birth() asks instead.
            prepare_for_work=False,
        )
        self.rq_worker.hostname = socket.gethostname()
        self.rq_worker.pid = os.getpid()
        self._start_script = connection.register_script(ledger_scripts.START)
        self._finish = connection.register_script(ledger_scripts.FINISH)
        self._retry = connection.register_script(ledger_scripts.RETRY)
        self.leases_key = f"{LEASES_KEY_PREFIX}{settings.queue}"
        # RQ's started-registry score: two leases (reading, then riding out an outage while
        # publishing) plus a margin; our sweep has requeued a dead worker's jobs long before.
        self._rq_ttl_s = 2 * settings.lease_s + RQ_STARTED_GRACE_S
        # When the last batch was published: batches overlap (one is taken while the one before
        # is read), and the worker's working time must count the overlap once.
        self._busy_until = 0.0

    @property
    def name(self) -> str:
        return str(self.rq_worker.name)

    # -- life cycle ---------------------------------------------------------------------------

    def check_eviction(self) -> None:
        """Refuse a Redis that may evict keys: an evicted job hash, published marker or stream
        would be a job or reading lost, or published twice, without a word. (INFO, not CONFIG
        GET: managed services often rename CONFIG away.)"""
        memory = self._redis.info("memory")
        policy = str(memory.get("maxmemory_policy", "noeviction"))
        if policy != "noeviction":
            raise ConfigError(
                f"Redis's maxmemory-policy is {policy!r} (maxmemory "
                f"{memory.get('maxmemory', '?')} bytes): it may evict queued jobs, the markers "
                "that publish each reading once, and stream entries, losing work silently. Set "
                "`maxmemory-policy noeviction` (a full Redis then refuses writes, which the "
                "producer reports and the worker rides out)"
            )

    def register_birth(self) -> None:
        self.check_eviction()
        self.rq_worker._set_ip_address(self._redis)  # what prepare_for_work=True would do
        self.rq_worker.register_birth()  # type: ignore[no-untyped-call]
        self.rq_worker.set_state("idle")
        self.heartbeat()  # RQ's birth gives the key worker_ttl + 60 s: shorten it at once

    def register_death(self) -> None:
        self.rq_worker.register_death()  # type: ignore[no-untyped-call]

    def heartbeat(self) -> None:
        """Keep this worker listed for WORKER_TTL_S more; a killed one drops off after that.
        Should the key have expired meanwhile (Redis was away longer), write it out again
        rather than leave a hash of one field."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hexists(self.rq_worker.key, "birth")
            self.rq_worker.heartbeat(WORKER_TTL_S, pipeline=pipe)
            registered = pipe.execute()[0]
        if not registered:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.rq_worker.key, mapping=self.rq_worker.serialize())
                pipe.expire(self.rq_worker.key, WORKER_TTL_S)
                worker_registration.register(self.rq_worker, pipe)
                pipe.execute()

    # -- the two steps ----------------------------------------------------------------------

    def take(self, batch_size: int, *, block_s: float, fill_wait_s: float) -> list[Taken]:
        """Start up to `batch_size` jobs from the queue.

        Blocks up to `block_s` for a first job (BLMOVE to the intermediate list, as RQ does, so
        a crash right after it strands nothing that recovery cannot see), then takes what else
        is queued in the same script that starts them, and waits at most `fill_wait_s` in all
        for the batch to fill: a lone job is never held back longer than that.
        """
        deadline = time.monotonic() + fill_wait_s
        # A busy queue fills the batch in one round trip: the script pops the ids itself. Only
        # when the queue was empty does a blocking BLMOVE wait for a first job.
        taken = self._start([], pull=batch_size)
        wait_s = block_s if not taken else deadline - time.monotonic()
        while len(taken) < batch_size and (wait_s > 0 or not taken):
            first = self._move_first(wait_s)
            if first is None:
                break
            taken.extend(self._start([first], pull=batch_size - len(taken) - 1))
            wait_s = deadline - time.monotonic()
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
        with oom_refusals():
            replies = self._start_script(
                args=[
                    self.queue.key,
                    self.queue.intermediate_queue_key,
                    RQ_JOB_KEY_PREFIX,
                    self.queue.started_job_registry.key,
                    self.leases_key,
                    self.rq_worker.key,
                    self.rq_worker.executions_key,
                    RQ_EXECUTION_KEY_PREFIX,
                    RQ_EXECUTIONS_KEY_PREFIX,
                    self.name,
                    now.timestamp(),
                    now.strftime(_RQ_TIME_FORMAT),
                    self._settings.lease_s,
                    self._rq_ttl_s,
                    uuid.uuid4().hex[:24],
                    max(pull, 0),
                    ATTEMPTS_FIELD,
                    ENDED_FIELD,
                    REQUEUES_FIELD,
                    SUPERSEDES_FIELD,
                    READING_FIELD,
                    self.queue.scheduled_job_registry.key,
                    *moved,
                ]
            )
        taken = [
            Taken(
                r[0].decode(),
                r[1].decode(),
                r[2],
                int(r[3]),
                now.timestamp(),
                requeues=int(r[4]),
                supersedes=r[5].decode() or None,
            )
            for r in replies
            if len(r) > 2
        ]
        gone = [r[0].decode() for r in replies if len(r) == 1]
        if gone:
            log.warning("dropped %d ids whose job hash is gone: %s", len(gone), gone[:5])
        ended = [r[0].decode() for r in replies if len(r) == 2]
        if ended:
            log.info("dropped %d queue entries of jobs already read: %s", len(ended), ended[:5])
        by_hand = [r[0].decode() for r in replies if len(r) > 2 and int(r[6])]
        if by_hand:
            log.info(
                "%d jobs requeued by hand after their reading: each gets a new reading that "
                "supersedes the last: %s",
                len(by_hand),
                by_hand[:5],
            )
        return taken

    def finish(
        self, outcomes: Sequence[Outcome], *, published: list[bool] | None = None
    ) -> list[bool]:
        """Publish and acknowledge atomically. Returns, per outcome, whether its reading was
        published now (False: a reading with the same id was already on the stream).

        With `replicas_to_wait` set, raises NotReplicated unless WAIT saw that many replicas
        take the batch: the caller repeats the call (FINISH publishes once per reading_id), and
        passes the same `published` list to every attempt, so that a reading published by an
        attempt that then went unconfirmed still counts as published by this batch."""
        if not outcomes:
            return []
        settings = self._settings
        now = datetime.now(UTC)
        # The worker's busy time, as `rq info` shows it: from when this batch was taken (or the
        # one before it published, if later) to now; never each job's share added up.
        began = max(min(o.taken.started_at for o in outcomes), self._busy_until)
        args: list[str | bytes | int | float] = [
            RQ_JOB_KEY_PREFIX,
            RQ_RESULTS_KEY_PREFIX,
            PUBLISHED_KEY_PREFIX,
            self.queue.started_job_registry.key,
            self.leases_key,
            self.queue.finished_job_registry.key,
            self.queue.failed_job_registry.key,
            self.rq_worker.key,
            self.rq_worker.executions_key,
            RQ_EXECUTION_KEY_PREFIX,
            RQ_EXECUTIONS_KEY_PREFIX,
            settings.results_stream,
            settings.stream_maxlen,
            PUBLISHED_TTL_S,
            str(now.timestamp()),  # also RQ's execution_ended_at, written as str() writes it
            now.strftime(_RQ_TIME_FORMAT),
            settings.result_ttl_s,
            settings.failure_ttl_s,
            max(now.timestamp() - began, 0.0),
            ENDED_FIELD,
            READING_FIELD,
            ENTRY_FIELD,
            self.name,
        ]
        args.append(msgpack.packb([self._job_args(outcome) for outcome in outcomes]))
        wanted = settings.replicas_to_wait
        if wanted:
            # WAIT on the connection that ran FINISH, so it covers exactly that batch. (The
            # Script in a pipeline costs a SCRIPT EXISTS first, and loads FINISH on a new
            # primary by itself; only when waiting, where WAIT's own round trip dwarfs it.)
            with self._redis.pipeline(transaction=False) as pipe, oom_refusals():
                self._finish(args=args, client=pipe)
                pipe.execute_command("WAIT", wanted, settings.replicas_wait_timeout_ms)  # type: ignore[no-untyped-call]
                flags, acked = pipe.execute()
        else:
            with oom_refusals():
                flags, acked = self._finish(args=args), 0
        if published is None:
            published = [False] * len(outcomes)
        for i, flag in enumerate(flags):
            published[i] = published[i] or bool(flag)
        if wanted:
            check_replicated(acked, settings, f"publishing a batch of {len(outcomes)}")
        self._busy_until = max(self._busy_until, now.timestamp())
        return published

    def retry(self, taken: Sequence[Taken], *, delay_s: float) -> list[str]:
        """Give started jobs another attempt, counted in the job hash, after `delay_s` doubled
        per attempt already made (0: at once, at the end of the queue); returns the ids retried
        (not those a recovery sweep already requeued)."""
        if not taken:
            return []
        with oom_refusals():
            replies = self._retry(
                args=[
                    self.queue.key,
                    self.queue.started_job_registry.key,
                    self.leases_key,
                    self.queue.failed_job_registry.key,
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

    def _job_args(self, outcome: Outcome) -> list[object]:
        """One job's entry in FINISH's batch (see ledger_scripts.FINISH)."""
        taken, reading = outcome.taken, outcome.reading
        if reading.error is None:
            ok, failure, rtype = True, "", _RESULT_SUCCESSFUL
            # What rq.results.Result.serialize() writes, so that `job.latest_result()` works.
            payload = base64.b64encode(json.dumps(reading.reading_id).encode()).decode()
        else:
            # RQ reads exc_info compressed or, failing that, as plain text: plain text it is.
            failure = f"{reading.error.code}: {reading.error.message}"
            ok, rtype = False, _RESULT_FAILED
            payload = base64.b64encode(zlib.compress(failure.encode())).decode()
        fields = [x for item in stream_fields(reading).items() for x in item]
        started = str(taken.started_at)
        return [taken.job_id, taken.execution_id, ok, reading.reading_id, failure, started, rtype,
                payload, fields]  # fmt: skip
