"""The Lua behind `Ledger`: RQ 3's bookkeeping for a whole batch in one server-side call.

Each script writes exactly what RQ's own worker writes for the same step (see rq/executions.py,
rq/job.py `prepare_for_execution`, `_handle_success`, `_handle_failure`, rq/results.py), so RQ's
registries, `rq info` and rq-dashboard see our jobs as RQ jobs. The key prefixes are passed in
from `plate_ocr.constants`; only the RQ 3 layout is assumed (pinned in pyproject.toml). Two
things are ours, not RQ's: the lease on a started job (a sorted set of our own, so that RQ's
clean-up of its started registry cannot fail a live worker's jobs) and a few fields in the job
hash saying which reading ended the job.
"""

__all__ = ["BULK", "FINISH", "PROMOTE_DUE", "RETRY", "START"]

# Shared by START and Recovery: one call writes a whole batch's members to a set or sorted set
# (Lua's unpack is bounded by its C stack, hence the slices; an even size keeps ZADD's pairs).
BULK = """
local function bulk(cmd, key, items)
  for i = 1, #items, 998 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 997, #items)))
  end
end
"""

# Retries whose backoff is over go back to the end of the queue. START runs it before taking,
# so a busy worker needs no separate call; Recovery.promote_due_retries runs it alone.
PROMOTE_DUE = """
local function promote_due(scheduled, queue, job_prefix, now)
  local promoted = {}
  for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, 1000)) do
    if redis.call('ZREM', scheduled, job_id) == 1 then
      local job_key = job_prefix .. job_id
      if redis.call('EXISTS', job_key) == 1 then
        redis.call('HSET', job_key, 'status', 'queued')
        redis.call('RPUSH', queue, job_id)
        table.insert(promoted, job_id)
      end
    end
  end
  return promoted
end
"""

# KEYS: none (single-node Redis; every key is derived from the arguments)
# ARGV: queue_key, intermediate_key, job_prefix, wip_key, leases_key, worker_key,
#       worker_execs_key, exec_prefix, execs_prefix, worker_name, now_s, now_iso, lease_s,
#       rq_ttl_s (RQ's started-registry score, past the lease: see LEASES_KEY_PREFIX),
#       exec_id_prefix, pull (how many more ids to pop from the queue), then the job hash fields
#       attempts, ended, requeues, supersedes, reading (plate_ocr.constants), the scheduled
#       registry's key, then the ids already moved to the intermediate list by a blocking BLMOVE.
# Due retries are promoted first (PROMOTE_DUE). Ids popped here go straight from the queue to
# started: the script is atomic, so they never sit anywhere a crash could strand them.
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
START = (
    BULK
    + PROMOTE_DUE
    + """
local queue, intermediate, job_prefix, wip = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local leases, worker_key, worker_execs = ARGV[5], ARGV[6], ARGV[7]
local exec_prefix, execs_prefix, worker_name = ARGV[8], ARGV[9], ARGV[10]
local now, now_iso = tonumber(ARGV[11]), ARGV[12]
local lease, rq_ttl = tonumber(ARGV[13]), tonumber(ARGV[14])
local exec_id_prefix, pull = ARGV[15], tonumber(ARGV[16])
local attempts_field, ended_field, requeues_field = ARGV[17], ARGV[18], ARGV[19]
local supersedes_field, reading_field, scheduled = ARGV[20], ARGV[21], ARGV[22]
promote_due(scheduled, queue, job_prefix, ARGV[11])
local ids = {}
for i = 23, #ARGV do
  redis.call('LREM', intermediate, 1, ARGV[i])
  table.insert(ids, ARGV[i])
end
if pull > 0 then
  for _, job_id in ipairs(redis.call('LPOP', queue, pull) or {}) do
    table.insert(ids, job_id)
  end
end
local out, lease_pairs, wip_pairs, composites = {}, {}, {}, {}
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
    table.insert(lease_pairs, now + lease)
    table.insert(lease_pairs, composite)
    table.insert(wip_pairs, now + rq_ttl)
    table.insert(wip_pairs, composite)
    table.insert(composites, composite)
    redis.call('HSET', job_key, 'status', 'started', 'started_at', now_iso,
               'last_heartbeat', now_iso, 'worker_name', worker_name)
    redis.call('PERSIST', job_key)
    table.insert(out, {job_id, exec_id, f[1], attempts, requeues, supersedes, by_hand})
  end
end
bulk('ZADD', leases, lease_pairs)
bulk('ZADD', wip, wip_pairs)
bulk('SADD', worker_execs, composites)
if #ids > 0 then
  redis.call('EXPIRE', worker_execs, rq_ttl)
  redis.call('HSET', worker_key, 'state', 'busy', 'last_heartbeat', now_iso)
end
return out
"""
)

# ARGV: job_prefix, results_prefix, published_prefix, wip_key, leases_key, finished_key,
#       failed_key, worker_key, worker_execs_key, exec_prefix, execs_prefix, stream,
#       stream_maxlen, published_ttl_s, now_s, now_iso, result_ttl_s, failure_ttl_s, worked_s,
#       ended_field, reading_field, entry_field, worker_name,
#       then the batch as one MessagePack array (cmsgpack: packed and unpacked in C, where a
#       JSON per job cost more than the bookkeeping), one array per job: job_id, execution_id,
#       ok (bool), reading_id, failure text (RQ's exc_info), execution_started_at, RQ result
#       type, RQ result payload (return_value when ok, else exc_string), [stream field, value..].
# The job hash keeps which reading ended it (and its stream entry, for PlateProducer.wait), and
# the job's created_at, which tells a person's requeue of this job (START) from a re-submission.
# The RQ result entry has the fields rq.results.Result.serialize() writes, so that
# `job.latest_result()` works.
# An ok job leaves the failed registry too: RQ's clean-up may have failed it as abandoned while
# this worker, slow but alive, still had it (Recovery requeues those).
# The same FINISH sent again (its WAIT came back short, or its reply was lost) finds its reading
# published and its job ended with it: only the execution is cleaned up, nothing is counted twice.
# Returns, per job: 1 when its reading was published now, 0 when one was already on the stream.
FINISH = (
    BULK
    + """
local job_prefix, results_prefix, published_prefix = ARGV[1], ARGV[2], ARGV[3]
local wip, leases, finished, failed = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local worker_key, worker_execs, exec_prefix, execs_prefix = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local stream, maxlen, published_ttl = ARGV[12], ARGV[13], ARGV[14]
local now_s, now_iso = ARGV[15], ARGV[16]
local now = tonumber(now_s)
local result_ttl, failure_ttl, worked = tonumber(ARGV[17]), tonumber(ARGV[18]), ARGV[19]
local ended_field, reading_field, entry_field = ARGV[20], ARGV[21], ARGV[22]
local worker_name = ARGV[23]
local out, n_ok, n_failed = {}, 0, 0
local finished_pairs, failed_pairs, ok_ids, composites = {}, {}, {}, {}
local function finish_job(job_key, job_id, exec_id, ok, ended, started, rtype, payload)
  local ttl = result_ttl
  if not ok then ttl = failure_ttl end
  redis.call('HSET', job_key, unpack(ended))
  local results_key = results_prefix .. job_id
  redis.call('XADD', results_key, 'MAXLEN', 10, '*', 'worker_name', worker_name,
             'execution_id', exec_id, 'execution_started_at', started,
             'execution_ended_at', now_s, 'type', rtype,
             ok and 'return_value' or 'exc_string', payload)
  redis.call('EXPIRE', results_key, ttl)
  redis.call('EXPIRE', job_key, ttl)
  if ok then
    n_ok = n_ok + 1
    table.insert(finished_pairs, now + result_ttl)
    table.insert(finished_pairs, job_id)
    table.insert(ok_ids, job_id)
  else
    n_failed = n_failed + 1
    table.insert(failed_pairs, now + failure_ttl)
    table.insert(failed_pairs, job_id)
  end
end
for _, job in ipairs(cmsgpack.unpack(ARGV[24])) do
  local job_id, exec_id, ok, reading_id = job[1], job[2], job[3], job[4]
  local failure, started, rtype, payload = job[5], job[6], job[7], job[8]
  local job_key = job_prefix .. job_id
  local created_at = redis.call('HGET', job_key, 'created_at') or ''
  local status = 'finished'
  if not ok then status = 'failed' end
  local ended = {ended_field, created_at, reading_field, reading_id, 'status', status,
                 'ended_at', now_iso}
  if not ok then
    table.insert(ended, 'exc_info')
    table.insert(ended, failure)
  end

  local repeated = false
  if redis.call('SET', published_prefix .. reading_id, '1', 'NX', 'EX', published_ttl) then
    local entry = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(job[9]))
    table.insert(ended, entry_field)
    table.insert(ended, entry)
    table.insert(out, 1)
  else
    table.insert(out, 0)
    -- This very FINISH again (its WAIT came back short, or its reply was lost): the job has
    -- already ended with this reading; its RQ result and counts are not written twice.
    local had = redis.call('HMGET', job_key, reading_field, 'status', ended_field)
    repeated = had[1] == reading_id and had[2] == status and had[3] == created_at
  end
  if not repeated then
    finish_job(job_key, job_id, exec_id, ok, ended, started, rtype, payload)
  end
  local composite = job_id .. ':' .. exec_id
  redis.call('DEL', exec_prefix .. composite)
  redis.call('ZREM', execs_prefix .. job_id, exec_id)
  table.insert(composites, composite)
end
bulk('ZADD', finished, finished_pairs)
bulk('ZREM', failed, ok_ids)
bulk('ZADD', failed, failed_pairs)
bulk('ZREM', wip, composites)
bulk('ZREM', leases, composites)
bulk('SREM', worker_execs, composites)
redis.call('HINCRBY', worker_key, 'successful_job_count', n_ok)
redis.call('HINCRBY', worker_key, 'failed_job_count', n_failed)
redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', worked)
redis.call('HSET', worker_key, 'state', 'idle')
return out
"""
)

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
