"""The Lua behind `Ledger`: RQ 3's bookkeeping for a whole batch in one server-side call.

Each script writes exactly what RQ's own worker writes for the same step (see rq/executions.py,
rq/job.py `prepare_for_execution`, `_handle_success`, `_handle_failure`, rq/results.py), so RQ's
registries, `rq info` and rq-dashboard see our jobs as RQ jobs. The key prefixes are passed in
from `plate_ocr.constants`; only the RQ 3 layout is assumed (pinned in pyproject.toml).
"""

__all__ = ["FINISH", "RETRY", "START"]

# KEYS: none (single-node Redis; every key is derived from the arguments)
# ARGV: queue_key, intermediate_key, job_prefix, wip_key, worker_key, worker_execs_key,
#       exec_prefix, execs_prefix, attempts_field, worker_name, now_s, now_iso, lease_s,
#       exec_id_prefix, pull (how many more ids to pop from the queue), then the ids already
#       moved to the intermediate list by a blocking BLMOVE.
# Ids popped here go straight from the queue to started: the script is atomic, so they never
# sit anywhere a crash could strand them.
# Returns, per id: {job_id, execution_id, data, attempts}, or {job_id} when its hash is gone.
START = """
local queue, intermediate, job_prefix, wip = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local attempts_field, worker_name = ARGV[9], ARGV[10]
local now, now_iso, lease = tonumber(ARGV[11]), ARGV[12], tonumber(ARGV[13])
local exec_id_prefix, pull = ARGV[14], tonumber(ARGV[15])
local ids = {}
for i = 16, #ARGV do
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
  local fields = redis.call('HMGET', job_key, 'data', attempts_field)
  if not fields[1] then
    table.insert(out, {job_id})
  else
    local exec_id = exec_id_prefix .. n
    local composite = job_id .. ':' .. exec_id
    local exec_key = exec_prefix .. composite
    redis.call('HSET', exec_key, 'id', exec_id, 'job_id', job_id, 'created_at', now,
               'last_heartbeat', now, 'worker_name', worker_name)
    redis.call('EXPIRE', exec_key, lease)
    redis.call('ZADD', execs_prefix .. job_id, now + lease + 60, exec_id)
    redis.call('EXPIRE', execs_prefix .. job_id, lease + 60)
    redis.call('ZADD', wip, now + lease, composite)
    redis.call('SADD', worker_execs, composite)
    redis.call('HSET', job_key, 'status', 'started', 'started_at', now_iso,
               'last_heartbeat', now_iso, 'worker_name', worker_name)
    redis.call('PERSIST', job_key)
    table.insert(out, {job_id, exec_id, fields[1], tonumber(fields[2] or '0')})
  end
end
redis.call('EXPIRE', worker_execs, lease + 60)
redis.call('HSET', worker_key, 'state', 'busy', 'last_heartbeat', now_iso)
return out
"""

# ARGV: job_prefix, results_prefix, published_prefix, wip_key, finished_key, failed_key,
#       worker_key, worker_execs_key, exec_prefix, execs_prefix, stream, stream_maxlen,
#       published_ttl_s, now_s, now_iso, result_ttl_s, failure_ttl_s, worked_s,
#       then one JSON object per job: {j: job_id, e: execution_id, ok: true|false,
#       r: reading_id, x: failure text (RQ's exc_info), res: [RQ result field, value, ...],
#       s: [stream field, value, ...]}. One argument per job keeps the client's encoding cheap.
# Returns, per job: 1 when its reading was published now, 0 when one was already on the stream.
FINISH = """
local job_prefix, results_prefix, published_prefix = ARGV[1], ARGV[2], ARGV[3]
local wip, finished, failed = ARGV[4], ARGV[5], ARGV[6]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local stream, maxlen, published_ttl = ARGV[11], ARGV[12], ARGV[13]
local now, now_iso = tonumber(ARGV[14]), ARGV[15]
local result_ttl, failure_ttl, worked = tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[18]
local out, n_ok, n_failed = {}, 0, 0
for i = 19, #ARGV do
  local job = cjson.decode(ARGV[i])
  local job_id, exec_id, reading_id = job.j, job.e, job.r
  local fields, result = job.s, job.res

  if redis.call('SET', published_prefix .. reading_id, '1', 'NX', 'EX', published_ttl) then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end

  local job_key = job_prefix .. job_id
  local results_key = results_prefix .. job_id
  redis.call('XADD', results_key, 'MAXLEN', 10, '*', unpack(result))
  if job.ok then
    n_ok = n_ok + 1
    redis.call('HSET', job_key, 'status', 'finished', 'ended_at', now_iso)
    redis.call('EXPIRE', results_key, result_ttl)
    redis.call('ZADD', finished, now + result_ttl, job_id)
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
  redis.call('ZREM', execs_prefix .. job_id, exec_id)
  redis.call('SREM', worker_execs, composite)
end
redis.call('HINCRBY', worker_key, 'successful_job_count', n_ok)
redis.call('HINCRBY', worker_key, 'failed_job_count', n_failed)
redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', worked)
redis.call('HSET', worker_key, 'state', 'idle')
return out
"""

# ARGV: queue_key, wip_key, worker_execs_key, job_prefix, exec_prefix, execs_prefix,
#       attempts_field, scheduled_key, now_s, delay_s, then (job_id, execution_id) pairs.
# Gives jobs whose model call failed another attempt, counted in the job hash (the field recovery
# counts in too, so max_attempts bounds both): after delay_s * 2^(attempts - 1) in RQ's scheduled
# registry, from which Recovery moves them back to the queue when due, or at once at the end of
# the queue when delay_s is 0. Only executions still in the started registry are retried: one
# whose lease ran out was already requeued by a recovery sweep and must not be queued twice.
# Returns the ids retried.
RETRY = """
local queue, wip, worker_execs = ARGV[1], ARGV[2], ARGV[3]
local job_prefix, exec_prefix, execs_prefix, attempts_field = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local scheduled, now, delay = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local out = {}
for i = 11, #ARGV, 2 do
  local job_id, exec_id = ARGV[i], ARGV[i + 1]
  local composite = job_id .. ':' .. exec_id
  if redis.call('ZREM', wip, composite) == 1 then
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
