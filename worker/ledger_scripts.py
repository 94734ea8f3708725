"""The Lua behind `Ledger`: RQ 3's bookkeeping for a whole batch in one server-side call.

Each script writes exactly what RQ's own worker writes for the same step (see rq/executions.py,
rq/job.py `prepare_for_execution`, `_handle_success`, `_handle_failure`, rq/results.py), so RQ's
registries, `rq info` and rq-dashboard see our jobs as RQ jobs. The key prefixes are passed in
from `plate_ocr.constants`; only the RQ 3 layout is assumed (pinned in pyproject.toml). Two
things are ours, not RQ's: the lease on a started job (a sorted set of our own, so that RQ's
clean-up of its started registry cannot fail a live worker's jobs) and a few fields in the job
hash saying which reading ended the job.
"""

__all__ = ["FINISH", "RETRY", "START"]

# KEYS: none (single-node Redis; every key is derived from the arguments)
# ARGV: queue_key, intermediate_key, job_prefix, wip_key, leases_key, worker_key,
#       worker_execs_key, exec_prefix, execs_prefix, worker_name, now_s, now_iso, lease_s,
#       rq_ttl_s (RQ's started-registry score, past the lease: see LEASES_KEY_PREFIX),
#       exec_id_prefix, pull (how many more ids to pop from the queue), then the job hash fields
#       attempts, ended, requeues, supersedes, reading (plate_ocr.constants), then the ids
#       already moved to the intermediate list by a blocking BLMOVE.
# Ids popped here go straight from the queue to started: the script is atomic, so they never
# sit anywhere a crash could strand them.
# A job whose reading was published (ended field == its created_at) that is queued again with
# RQ's ended_at cleared was requeued by a person (RQ's registry requeue: rq requeue,
# rq-dashboard): a new attempt, counted in `requeues`, with a fresh attempt budget, whose reading
# supersedes the last one. A re-submission of the same job id by a producer has a new created_at
# and stays the same attempt; our own retries and recoveries never end a job nor clear ended_at,
# so they stay the same attempt too (the same reading_id, published once).
# A job already ended with its reading published is a stale queue entry (a recovery that raced
# a slow worker's publish): dropped.
# Returns, per id: {job_id, execution_id, data, attempts, requeues, supersedes, by_hand (0|1)},
# {job_id} when its hash is gone, {job_id, ''} when it had already ended.
START = """
local queue, intermediate, job_prefix, wip = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local leases, worker_key, worker_execs = ARGV[5], ARGV[6], ARGV[7]
local exec_prefix, execs_prefix, worker_name = ARGV[8], ARGV[9], ARGV[10]
local now, now_iso = tonumber(ARGV[11]), ARGV[12]
local lease, rq_ttl = tonumber(ARGV[13]), tonumber(ARGV[14])
local exec_id_prefix, pull = ARGV[15], tonumber(ARGV[16])
local attempts_field, ended_field, requeues_field = ARGV[17], ARGV[18], ARGV[19]
local supersedes_field, reading_field = ARGV[20], ARGV[21]
local ids = {}
for i = 22, #ARGV do
  redis.call('LREM', intermediate, 1, ARGV[i])
  table.insert(ids, ARGV[i])
end
for _ = 1, pull do
  local job_id = redis.call('LPOP', queue)
  if not job_id then break end
  table.insert(ids, job_id)
end
local out = {}
for n, job_id in ipairs(ids) do
  local job_key = job_prefix .. job_id
  local f = redis.call('HMGET', job_key, 'data', attempts_field, 'status', 'created_at',
                       ended_field, requeues_field, supersedes_field, reading_field, 'ended_at')
  local ended = f[5] and f[5] ~= ''
  if not f[1] then
    table.insert(out, {job_id})
  elseif ended and (f[3] == 'finished' or f[3] == 'failed') then
    table.insert(out, {job_id, ''})
  else
    local attempts, requeues = tonumber(f[2] or '0'), tonumber(f[6] or '0')
    local supersedes, by_hand = f[7] or '', 0
    if ended and f[5] == f[4] and (not f[9] or f[9] == '') then
      requeues, supersedes, attempts, by_hand = requeues + 1, f[8] or '', 0, 1
      redis.call('HSET', job_key, requeues_field, requeues, supersedes_field, supersedes,
                 attempts_field, 0)
      redis.call('HDEL', job_key, ended_field)
    end
    local exec_id = exec_id_prefix .. n
    local composite = job_id .. ':' .. exec_id
    local exec_key = exec_prefix .. composite
    redis.call('HSET', exec_key, 'id', exec_id, 'job_id', job_id, 'created_at', now,
               'last_heartbeat', now, 'worker_name', worker_name)
    redis.call('EXPIRE', exec_key, rq_ttl)
    redis.call('ZADD', execs_prefix .. job_id, now + rq_ttl, exec_id)
    redis.call('EXPIRE', execs_prefix .. job_id, rq_ttl)
    redis.call('ZADD', leases, now + lease, composite)
    redis.call('ZADD', wip, now + rq_ttl, composite)
    redis.call('SADD', worker_execs, composite)
    redis.call('HSET', job_key, 'status', 'started', 'started_at', now_iso,
               'last_heartbeat', now_iso, 'worker_name', worker_name)
    redis.call('PERSIST', job_key)
    table.insert(out, {job_id, exec_id, f[1], attempts, requeues, supersedes, by_hand})
  end
end
redis.call('EXPIRE', worker_execs, rq_ttl)
redis.call('HSET', worker_key, 'state', 'busy', 'last_heartbeat', now_iso)
return out
"""

# ARGV: job_prefix, results_prefix, published_prefix, wip_key, leases_key, finished_key,
#       failed_key, worker_key, worker_execs_key, exec_prefix, execs_prefix, stream,
#       stream_maxlen, published_ttl_s, now_s, now_iso, result_ttl_s, failure_ttl_s, worked_s,
#       ended_field, reading_field, entry_field,
#       then one JSON object per job: {j: job_id, e: execution_id, ok: true|false,
#       r: reading_id, x: failure text (RQ's exc_info), res: [RQ result field, value, ...],
#       s: [stream field, value, ...]}. One argument per job keeps the client's encoding cheap.
# The job hash keeps which reading ended it (and its stream entry, for PlateProducer.wait), and
# the job's created_at, which tells a person's requeue of this job (START) from a re-submission.
# An ok job leaves the failed registry too: RQ's clean-up may have failed it as abandoned while
# this worker, slow but alive, still had it (Recovery requeues those).
# Returns, per job: 1 when its reading was published now, 0 when one was already on the stream.
FINISH = """
local job_prefix, results_prefix, published_prefix = ARGV[1], ARGV[2], ARGV[3]
local wip, leases, finished, failed = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local stream, maxlen, published_ttl = ARGV[12], ARGV[13], ARGV[14]
local now, now_iso = tonumber(ARGV[15]), ARGV[16]
local result_ttl, failure_ttl, worked = tonumber(ARGV[17]), tonumber(ARGV[18]), ARGV[19]
local ended_field, reading_field, entry_field = ARGV[20], ARGV[21], ARGV[22]
local out, n_ok, n_failed = {}, 0, 0
for i = 23, #ARGV do
  local job = cjson.decode(ARGV[i])
  local job_id, exec_id, reading_id = job.j, job.e, job.r
  local fields, result = job.s, job.res
  local job_key = job_prefix .. job_id

  if redis.call('SET', published_prefix .. reading_id, '1', 'NX', 'EX', published_ttl) then
    local entry = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
    redis.call('HSET', job_key, entry_field, entry)
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
  redis.call('HSET', job_key, ended_field, redis.call('HGET', job_key, 'created_at') or '',
             reading_field, reading_id)

  local results_key = results_prefix .. job_id
  redis.call('XADD', results_key, 'MAXLEN', 10, '*', unpack(result))
  if job.ok then
    n_ok = n_ok + 1
    redis.call('HSET', job_key, 'status', 'finished', 'ended_at', now_iso)
    redis.call('EXPIRE', results_key, result_ttl)
    redis.call('ZADD', finished, now + result_ttl, job_id)
    redis.call('ZREM', failed, job_id)
    redis.call('EXPIRE', job_key, result_ttl)
  else
    n_failed = n_failed + 1
    redis.call('HSET', job_key, 'status', 'failed', 'ended_at', now_iso, 'exc_info', job.x)
    redis.call('EXPIRE', results_key, failure_ttl)
    redis.call('ZADD', failed, now + failure_ttl, job_id)
    redis.call('EXPIRE', job_key, failure_ttl)
  end
  local composite = job_id .. ':' .. exec_id
  redis.call('DEL', exec_prefix .. composite)
  redis.call('ZREM', wip, composite)
  redis.call('ZREM', leases, composite)
  redis.call('ZREM', execs_prefix .. job_id, exec_id)
  redis.call('SREM', worker_execs, composite)
end
redis.call('HINCRBY', worker_key, 'successful_job_count', n_ok)
redis.call('HINCRBY', worker_key, 'failed_job_count', n_failed)
redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', worked)
redis.call('HSET', worker_key, 'state', 'idle')
return out
"""

# ARGV: queue_key, wip_key, leases_key, failed_key, worker_execs_key, job_prefix, exec_prefix,
#       execs_prefix, attempts_field, scheduled_key, now_s, delay_s, then (job_id, execution_id)
#       pairs.
# Gives jobs whose model call failed another attempt, counted in the job hash (the field recovery
# counts in too, so max_attempts bounds both): after delay_s * 2^(attempts - 1) in RQ's scheduled
# registry, from which Recovery moves them back to the queue when due, or at once at the end of
# the queue when delay_s is 0. Only executions whose lease is still held are retried: one whose
# lease ran out was already requeued by a recovery sweep and must not be queued twice.
# Returns the ids retried.
RETRY = """
local queue, wip, leases, failed, worker_execs = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job_prefix, exec_prefix, execs_prefix, attempts_field = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local scheduled, now, delay = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local out = {}
for i = 13, #ARGV, 2 do
  local job_id, exec_id = ARGV[i], ARGV[i + 1]
  local composite = job_id .. ':' .. exec_id
  if redis.call('ZREM', leases, composite) == 1 then
    redis.call('ZREM', wip, composite)
    redis.call('ZREM', failed, job_id)
    redis.call('DEL', exec_prefix .. composite)
    redis.call('ZREM', execs_prefix .. job_id, exec_id)
    redis.call('SREM', worker_execs, composite)
    local job_key = job_prefix .. job_id
    local attempts = redis.call('HINCRBY', job_key, attempts_field, 1)
    if delay > 0 then
      redis.call('HSET', job_key, 'status', 'scheduled')
      redis.call('ZADD', scheduled, now + delay * 2 ^ (attempts - 1), job_id)
    else
      redis.call('HSET', job_key, 'status', 'queued')
      redis.call('RPUSH', queue, job_id)
    end
    table.insert(out, job_id)
  end
end
return out
"""
