"""Recovery: put the jobs of dead workers back on the queue, fast.

RQ's own clean-up of abandoned jobs moves them to the failed registry, with no reading. We want
them *read*, within seconds: every live worker sweeps every `recovery_interval_s`:

- a started job whose lease (`lease_s`, its score in our own lease set, `LEASES_KEY_PREFIX`) ran
  out belongs to a worker that died mid-batch (a live one finishes its batch well inside the
  lease). Should RQ's clean-up have got there first and failed it as AbandonedJobError (it runs
  whenever `rq info`, rq-dashboard or any RQ client counts the started registry, once RQ's later
  score there has passed, i.e. when no worker of ours was alive for a while), the job is taken
  back from the failed registry: it never had a reading;
- a started-registry entry whose RQ score passed without a lease of ours (written by an older
  worker) is treated the same way;
- a job id left in the intermediate list for longer than a lease was taken by a worker that died
  before it could mark it started.

All are pushed back to the *front* of the queue (they are the oldest work) with their attempt
count incremented. The intake refuses a job past `max_attempts` with an error reading, so a crop
that kills every worker that touches it ends as an error instead of cycling forever.
The sweep is one Lua script: two workers sweeping at once cannot requeue the same job twice.

Jobs waiting out a retry backoff (RQ's scheduled registry, see `ledger_scripts.RETRY`) are moved
to the end of the queue once due, checked on every call rather than every interval, so that a
one-second backoff is not stretched to the sweep interval (the worker's take does it, in the same
script that starts the batch: `ledger_scripts.START`).
"""

import logging
import time

import redis
from rq import Queue

from plate_ocr.connection import oom_refusals
from plate_ocr.constants import (
    ATTEMPTS_FIELD,
    ENDED_FIELD,
    LEASES_KEY_PREFIX,
    RQ_EXECUTION_KEY_PREFIX,
    RQ_EXECUTIONS_KEY_PREFIX,
    RQ_JOB_KEY_PREFIX,
)
from worker.ledger_scripts import PROMOTE_DUE

__all__ = ["Recovery"]

log = logging.getLogger("plate_ocr.worker.recovery")

# KEYS: lease set, started registry, queue, intermediate list, failed registry
# ARGV: now (epoch s), lease_s, job key prefix, attempts field, execution key prefix,
#       executions registry key prefix, ended field
_SWEEP = """
local leases, wip, queue, intermediate, failed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local requeued = {}
local function requeue(job_id)
  local job_key = ARGV[3] .. job_id
  if redis.call('EXISTS', job_key) == 0 then return end
  redis.call('HINCRBY', job_key, ARGV[4], 1)
  redis.call('HSET', job_key, 'status', 'queued')
  redis.call('LREM', intermediate, 0, job_id)
  redis.call('LPUSH', queue, job_id)
  table.insert(requeued, job_id)
end
local function forget(member)
  local job_id, exec_id = string.match(member, '^([^:]+):(.*)$')
  redis.call('DEL', ARGV[5] .. member)
  redis.call('ZREM', ARGV[6] .. job_id, exec_id)
  return job_id
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', ARGV[1], 'LIMIT', 0, 1000)) do
  if redis.call('ZREM', leases, member) == 1 then
    local in_wip = redis.call('ZREM', wip, member) == 1
    local job_id = forget(member)
    if in_wip then
      requeue(job_id)
    else
      -- Gone from RQ's started registry without a reading of ours: RQ's clean-up failed it.
      local job = redis.call('HMGET', ARGV[3] .. job_id, 'status', ARGV[7])
      local read = job[2] and job[2] ~= ''
      if job[1] == 'failed' and not read and redis.call('ZREM', failed, job_id) == 1 then
        requeue(job_id)
      end
    end
  end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', wip, '-inf', ARGV[1], 'LIMIT', 0, 1000)) do
  if redis.call('ZREM', wip, member) == 1 then
    redis.call('ZREM', leases, member)
    requeue(forget(member))
  end
end
-- Ids stranded between the queue and the started registry. First sighting only stamps them.
local lease = tonumber(ARGV[2])
for _, job_id in ipairs(redis.call('LRANGE', intermediate, 0, 999)) do
  local seen_key = intermediate .. ':first_seen:' .. job_id
  local first = redis.call('GET', seen_key)
  if not first then
    redis.call('SET', seen_key, ARGV[1], 'EX', lease * 4)
  elseif tonumber(ARGV[1]) - tonumber(first) > lease then
    redis.call('DEL', seen_key)
    requeue(job_id)
  end
end
return requeued
"""


# KEYS: scheduled registry, queue. ARGV: now (epoch s), job key prefix
_PROMOTE = PROMOTE_DUE + "return promote_due(KEYS[1], KEYS[2], ARGV[2], ARGV[1])"


class Recovery:
    def __init__(
        self, queue: Queue, connection: redis.Redis, *, lease_s: int, interval_s: float
    ) -> None:
        self._queue = queue
        self._lease_s = lease_s
        self._interval_s = interval_s
        self._next_at = 0.0
        self._sweep = connection.register_script(_SWEEP)
        self._promote = connection.register_script(_PROMOTE)
        self._connection = connection
        self.recovered_jobs = 0  # requeued by this process's sweeps, for plate_ocr_recovered_jobs

    def sweep_if_due(self) -> list[str]:
        """Sweep if `interval_s` has passed since the last sweep. Returns the ids requeued.
        (Due retries are queued by every take: `ledger_scripts.START` runs PROMOTE_DUE.)"""
        now = time.monotonic()
        if now < self._next_at:
            return []
        self._next_at = now + self._interval_s
        return self.sweep()

    def promote_due_retries(self) -> list[str]:
        keys = [self._queue.scheduled_job_registry.key, self._queue.key]
        with oom_refusals():
            promoted = self._promote(keys, [time.time(), RQ_JOB_KEY_PREFIX])
        return [j.decode() if isinstance(j, bytes) else str(j) for j in promoted]

    def retries_waiting(self) -> int:
        """Jobs waiting out a retry backoff (burst mode is not done while there are any)."""
        return int(self._connection.zcard(self._queue.scheduled_job_registry.key))

    def sweep(self) -> list[str]:
        """Requeue what dead workers left behind; returns the job ids requeued."""
        keys = [
            f"{LEASES_KEY_PREFIX}{self._queue.name}",
            self._queue.started_job_registry.key,
            self._queue.key,
            self._queue.intermediate_queue_key,
            self._queue.failed_job_registry.key,
        ]
        args: list[str | float] = [
            time.time(),
            self._lease_s,
            RQ_JOB_KEY_PREFIX,
            ATTEMPTS_FIELD,
            RQ_EXECUTION_KEY_PREFIX,
            RQ_EXECUTIONS_KEY_PREFIX,
            ENDED_FIELD,
        ]
        with oom_refusals():
            swept = self._sweep(keys, args)
        requeued = [j.decode() if isinstance(j, bytes) else str(j) for j in swept]
        self.recovered_jobs += len(requeued)
        if requeued:
            log.warning("requeued %d jobs abandoned by dead workers", len(requeued))
        return requeued
