"""The Lua behind `Consolidator`: each step on a track's state is one atomic server-side call.

A track is a hash: `n` (readings in it), `first` (the reading that opened it: the event id is
derived from it), `opened_ms` / `last_ms` (stream-entry times of its first and last reading),
`camera` / `track`, and one `r:<reading_id>` field per reading (its JSON). The open-tracks sorted
set scores each track key by when it falls due: min(last + idle, opened + max duration).
"""

__all__ = ["ADD", "PUBLISH"]

# ARGV: track_key, open_tracks_key, seen_key, seen_ttl_s, reading_id, reading_json, entry_ms,
#       idle_ms, max_ms, camera, track.
# The seen marker is set in the same call that adds the reading, so a reading redelivered after
# a crash (added, not yet acknowledged) or replayed after its track closed is never added twice.
# A reading from after the open track's deadline (read late, from a backlog) does not join it:
# the caller closes that track first and adds again, so a track's span is the same however late
# its readings are consumed.
# Returns the track's reading count, 0 when the reading had been seen already, -1 when the open
# track fell due before this reading.
ADD = """
local track, open_tracks, seen = ARGV[1], ARGV[2], ARGV[3]
local seen_ttl, reading_id, reading = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local entry_ms, idle_ms, max_ms = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local due = redis.call('ZSCORE', open_tracks, track)
if due and entry_ms >= tonumber(due) then
  return -1
end
if not redis.call('SET', seen, '1', 'NX', 'EX', seen_ttl) then
  return 0
end
local bounds = redis.call('HMGET', track, 'opened_ms', 'last_ms')
local opened, last = entry_ms, entry_ms
if bounds[1] then
  -- Pending entries replayed after a restart may come out of order: keep the widest span.
  opened = math.min(tonumber(bounds[1]), entry_ms)
  last = math.max(tonumber(bounds[2]), entry_ms)
else
  redis.call('HSET', track, 'first', reading_id, 'camera', ARGV[10], 'track', ARGV[11])
end
redis.call('HSET', track, 'opened_ms', string.format('%d', opened),
           'last_ms', string.format('%d', last), 'r:' .. reading_id, reading)
local n = redis.call('HINCRBY', track, 'n', 1)
redis.call('ZADD', open_tracks, math.min(last + idle_ms, opened + max_ms), track)
return n
"""

# ARGV: track_key ('' for a single-read event with no track state), open_tracks_key,
#       published_key, published_ttl_s, expected_n, events_stream, stream_maxlen,
#       then the stream entry's field, value pairs.
# Publishes only the state it was computed from: when a reading joined the track meanwhile
# (n changed), nothing happens and the caller recomputes. The published marker makes a second
# publication of the same event id impossible, whoever tries.
# Returns 1: published; 0: already published or closed by another consolidator; -1: stale.
PUBLISH = """
local track, open_tracks, published = ARGV[1], ARGV[2], ARGV[3]
local published_ttl, expected_n = tonumber(ARGV[4]), ARGV[5]
local stream, maxlen = ARGV[6], ARGV[7]
if track ~= '' then
  local n = redis.call('HGET', track, 'n')
  if not n then
    return 0
  end
  if n ~= expected_n then
    return -1
  end
end
local fields = {}
for i = 8, #ARGV do
  table.insert(fields, ARGV[i])
end
local done = 0
if redis.call('SET', published, '1', 'NX', 'EX', published_ttl) then
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  done = 1
end
if track ~= '' then
  redis.call('DEL', track)
  redis.call('ZREM', open_tracks, track)
end
return done
"""
