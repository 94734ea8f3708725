"""The Lua behind `Ledger`: RQ 3's bookkeeping for a whole batch in one server-side call.

Each script writes exactly what RQ's own worker writes for the same step (see rq/executions.py,
rq/job.py `prepare_for_execution`, `_handle_success`, `_handle_failure`, rq/results.py), so RQ's
registries, `rq info` and rq-dashboard see our jobs as RQ jobs. The key prefixes are passed in
from `plate_ocr.constants`; only the RQ 3 layout is assumed (pinned in pyproject.toml).
"""

__all__ = ["FINISH", "START"]

# KEYS: none (single-node Redis; every key is derived from the arguments)
# ARGV: job_prefix, wip_key, intermediate_key, worker_key, worker_execs_key, exec_prefix,
#       execs_prefix, attempts_field, worker_name, now_s, now_iso, lease_s,
#       then (job_id, execution_id) pairs.
# Returns, per pair: {data, attempts} for a job whose hash exists, or false (hash gone).
START = """
local job_prefix, wip, intermediate = ARGV[1], ARGV[2], ARGV[3]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local attempts_field, worker_name = ARGV[8], ARGV[9]
local now, now_iso, lease = tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
local out = {}
for i = 13, #ARGV, 2 do
  local job_id, exec_id = ARGV[i], ARGV[i + 1]
  local job_key = job_prefix .. job_id
  redis.call('LREM', intermediate, 1, job_id)
  local fields = redis.call('HMGET', job_key, 'data', attempts_field)
  if not fields[1] then
    table.insert(out, false)
  else
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
    table.insert(out, {fields[1], tonumber(fields[2] or '0')})
  end
end
redis.call('EXPIRE', worker_execs, lease + 60)
redis.call('HSET', worker_key, 'state', 'busy', 'last_heartbeat', now_iso)
return out
"""

# ARGV: job_prefix, results_prefix, published_prefix, wip_key, finished_key, failed_key,
#       worker_key, worker_execs_key, exec_prefix, execs_prefix, stream, stream_maxlen,
#       published_ttl_s, now_s, now_iso, result_ttl_s, failure_ttl_s, worked_s,
#       then per job: job_id, exec_id, ok (1|0), reading_id, exc_info (compressed, '' when ok),
#       n_result, n_result result-field/value strings, n_stream, n_stream field/value strings.
# Returns, per job: 1 when its reading was published now, 0 when one was already on the stream.
FINISH = """
local job_prefix, results_prefix, published_prefix = ARGV[1], ARGV[2], ARGV[3]
local wip, finished, failed = ARGV[4], ARGV[5], ARGV[6]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local stream, maxlen, published_ttl = ARGV[11], ARGV[12], ARGV[13]
local now, now_iso = tonumber(ARGV[14]), ARGV[15]
local result_ttl, failure_ttl, worked = tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[18]
local out, n_ok, n_failed = {}, 0, 0
local i = 19
while i <= #ARGV do
  local job_id, exec_id, ok = ARGV[i], ARGV[i+1], ARGV[i+2]
  local reading_id, exc_info = ARGV[i+3], ARGV[i+4]
  local n_result = tonumber(ARGV[i+5])
  local result = {unpack(ARGV, i + 6, i + 5 + n_result)}
  i = i + 6 + n_result
  local n_stream = tonumber(ARGV[i])
  local fields = {unpack(ARGV, i + 1, i + n_stream)}
  i = i + 1 + n_stream

  if redis.call('SET', published_prefix .. reading_id, '1', 'NX', 'EX', published_ttl) then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end

  local job_key = job_prefix .. job_id
  local results_key = results_prefix .. job_id
  redis.call('XADD', results_key, 'MAXLEN', 10, '*', unpack(result))
  if ok == '1' then
    n_ok = n_ok + 1
    redis.call('HSET', job_key, 'status', 'finished', 'ended_at', now_iso)
    redis.call('EXPIRE', results_key, result_ttl)
    redis.call('ZADD', finished, now + result_ttl, job_id)
    redis.call('EXPIRE', job_key, result_ttl)
  else
    n_failed = n_failed + 1
    redis.call('HSET', job_key, 'status', 'failed', 'ended_at', now_iso, 'exc_info', exc_info)
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
