"""Every Redis key, queue, stream and group name, and every magic duration, in one place.

The RQ names (`rq:queue:...`, `rq:job:...`, registries) are RQ's own; we reuse RQ's layout so that
`rq info`, rq-dashboard and requeueing of failed jobs work on our queue.
"""

from typing import Final

__all__ = [
    "ATTEMPTS_FIELD",
    "CLASS_NAMES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_EVENTS_STREAM",
    "DEFAULT_MQTT_TOPIC_PREFIX",
    "DEFAULT_QUEUE",
    "DEFAULT_RESULTS_STREAM",
    "ENDED_FIELD",
    "ENTRY_FIELD",
    "EVENTS_GROUP",
    "EVENT_PUBLISHED_KEY_PREFIX",
    "JOB_FUNC_NAME",
    "LEASES_KEY_PREFIX",
    "MAX_BLOCK_MS",
    "MQTT_GROUP",
    "OPEN_TRACKS_KEY_PREFIX",
    "PROBE_REDIS_TIMEOUT_S",
    "PRODUCER_RECONNECT_DEADLINE_S",
    "PUBLISHED_KEY_PREFIX",
    "PUBLISHED_TTL_S",
    "READERS",
    "READING_FIELD",
    "RECONNECT_BASE_BACKOFF_S",
    "REDIS_CONNECT_TIMEOUT_S",
    "REDIS_HEALTH_CHECK_INTERVAL_S",
    "REDIS_IMAGE_KEY_PREFIX",
    "REDIS_IMAGE_TTL_S",
    "REDIS_SOCKET_TIMEOUT_S",
    "REQUEUES_FIELD",
    "RQ_EXECUTIONS_KEY_PREFIX",
    "RQ_EXECUTION_KEY_PREFIX",
    "RQ_JOB_KEY_PREFIX",
    "RQ_QUEUES_KEY",
    "RQ_QUEUE_KEY_PREFIX",
    "RQ_RESULTS_KEY_PREFIX",
    "RQ_STARTED_GRACE_S",
    "SUPERSEDES_FIELD",
    "TRACK_KEY_PREFIX",
    "TRACK_SEEN_KEY_PREFIX",
    "WAIT_CURSORS_MAX",
    "WORKER_HEARTBEAT_INTERVAL_S",
    "WORKER_HEARTBEAT_KEY_PREFIX",
    "WORKER_TTL_S",
]

# The 36 classes of the seed model, in its class-id order: digits 0-9 then letters A-Z.
CLASS_NAMES: Final[tuple[str, ...]] = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DEFAULT_CONFIDENCE: Final = 0.25  # the original test_ocr.py default
# The ways to read a crop (reader.two_stage.ReaderKind): the default two-stage reader, the
# character detector alone, one small network on the whole crop (reader.fast_reader).
READERS: Final = ("fused", "detector", "fast")

DEFAULT_QUEUE: Final = "plates"
DEFAULT_RESULTS_STREAM: Final = "plate-ocr:readings"
DEFAULT_EVENTS_STREAM: Final = "plate-ocr:events"  # one PlateEvent per vehicle (plate-ocr events)

# Consumer groups on the results stream of our own consumers (each sees every reading once).
EVENTS_GROUP: Final = "plate-ocr-events"
MQTT_GROUP: Final = "plate-ocr-mqtt"
DEFAULT_MQTT_TOPIC_PREFIX: Final = "plate-ocr"

# The consolidator's state, all keyed under the events stream's name (+ ":" + ...), so that two
# deployments sharing a Redis keep apart. A track is a hash (its readings and bounds) listed in
# the open-tracks sorted set by when it falls due; a seen marker (kept PUBLISHED_TTL_S) makes
# adding a redelivered reading a no-op, a published marker makes publishing an event once only.
TRACK_KEY_PREFIX: Final = "plate-ocr:track:"  # + events stream + ":" + JSON [camera, track]
OPEN_TRACKS_KEY_PREFIX: Final = "plate-ocr:open-tracks:"  # + events stream
TRACK_SEEN_KEY_PREFIX: Final = "plate-ocr:track-seen:"  # + events stream + ":" + reading_id
EVENT_PUBLISHED_KEY_PREFIX: Final = "plate-ocr:event-published:"  # + events stream + ":" + id

# The only function a worker will execute; a job naming anything else is failed, never run.
JOB_FUNC_NAME: Final = "worker.job.read_plate_job"

# RQ's own key layout (rq.queue.Queue.redis_queue_namespace_prefix and friends).
RQ_QUEUE_KEY_PREFIX: Final = "rq:queue:"
RQ_QUEUES_KEY: Final = "rq:queues"
RQ_JOB_KEY_PREFIX: Final = "rq:job:"
RQ_EXECUTION_KEY_PREFIX: Final = "rq:execution:"  # + "job_id:execution_id"
RQ_EXECUTIONS_KEY_PREFIX: Final = "rq:executions:"  # + job_id
RQ_RESULTS_KEY_PREFIX: Final = "rq:results:"  # + job_id

# Our own field in RQ's job hash: attempts that ended without a reading (the job was recovered
# from a dead worker, or requeued after a failed model call). Bounded by settings.max_attempts.
ATTEMPTS_FIELD: Final = "plate_ocr_attempts"

# The lease on a started job is ours, in a sorted set of our own ("job_id:execution_id" -> the
# lease's end, epoch s), + queue name. RQ's started registry gets a later score: RQ's clean-up
# (run by `rq info`, rq-dashboard, anything that counts that registry) fails every entry whose
# score has passed as AbandonedJobError, with no reading; it must not do so while a live worker
# may still publish (two leases: one to read, one to ride out a Redis outage while publishing),
# and our recovery sweep has requeued a dead worker's jobs long before then.
LEASES_KEY_PREFIX: Final = "plate-ocr:leases:"
RQ_STARTED_GRACE_S: Final = 60  # RQ's score: two leases plus this

# Our fields in RQ's job hash, written with the reading (see worker/ledger_scripts.py):
ENDED_FIELD: Final = "plate_ocr_ended"  # the job's created_at when its reading was published
READING_FIELD: Final = "plate_ocr_reading"  # the reading_id last published for the job
ENTRY_FIELD: Final = "plate_ocr_entry"  # that reading's entry id on the results stream
REQUEUES_FIELD: Final = "plate_ocr_requeues"  # times a person requeued the job after it ended
SUPERSEDES_FIELD: Final = "plate_ocr_supersedes"  # the reading_id this attempt's reading replaces

# Idempotency marker: set (NX) atomically with the stream entry, so a retried job never publishes
# a second reading. Kept a day; readings of a job re-submitted after that are new readings.
PUBLISHED_KEY_PREFIX: Final = "plate-ocr:published:"
PUBLISHED_TTL_S: Final = 24 * 3600

# Producers that pass images by reference store the bytes under this prefix.
REDIS_IMAGE_KEY_PREFIX: Final = "plate-ocr:image:"
REDIS_IMAGE_TTL_S: Final = 3600

WORKER_HEARTBEAT_KEY_PREFIX: Final = "plate-ocr:worker:"

# A worker's RQ key (what `rq info` and rq-dashboard list) lives WORKER_TTL_S past its last
# heartbeat, sent every WORKER_HEARTBEAT_INTERVAL_S by a thread of its own, so a killed worker
# drops off the list within WORKER_TTL_S while a live one survives two missed beats.
WORKER_TTL_S: Final = 15
WORKER_HEARTBEAT_INTERVAL_S: Final = 5.0

# Connections. Every blocking read (XREAD BLOCK, BLMOVE ...) is cut into slices of at most
# MAX_BLOCK_MS so that it always returns well inside the socket timeout (a longer block would be
# reported as a dead socket) and so that a shutdown request is noticed within one slice.
REDIS_CONNECT_TIMEOUT_S: Final = 5.0
REDIS_SOCKET_TIMEOUT_S: Final = 30.0
REDIS_HEALTH_CHECK_INTERVAL_S: Final = 15  # PING an idle pooled connection before reusing it
MAX_BLOCK_MS: Final = 5_000
# /readyz's PING (worker.probes) gives up this soon: a kubelet probe times out in about 1-5 s.
PROBE_REDIS_TIMEOUT_S: Final = 2.0

# Reconnecting: the first retry waits about this long, doubling up to reconnect_max_backoff_s.
RECONNECT_BASE_BACKOFF_S: Final = 0.1
# A producer gives up (RedisUnavailable) after this long, so that a camera loop is not stalled
# forever by a Redis outage; a restart of Redis with AOF takes seconds, not minutes.
PRODUCER_RECONNECT_DEADLINE_S: Final = 30.0
# PlateProducer.wait() remembers where the results stream ended when each job was submitted, for
# this many recent jobs; waiting on an older (or foreign) job scans the stream from its start.
WAIT_CURSORS_MAX: Final = 100_000

# Downstream consumers (consumers/: watch lists and alerts, webhooks, the history store).
__all__ += [
    "ALERT_PUBLISHED_KEY_PREFIX",
    "DEFAULT_ALERTS_STREAM",
    "DEFAULT_WATCH_THRESHOLD",
    "DEFAULT_WEBHOOK_DEAD_LETTER_STREAM",
    "STORE_GROUP",
    "WATCH_GROUP",
    "WATCH_LISTS_KEY",
    "WATCH_LIST_KEY_PREFIX",
    "WATCH_VERSION_KEY",
    "WEBHOOK_GROUP_PREFIX",
]
# Watch lists: a set of list names, one hash per list (normalised plate -> its entry as JSON),
# and a counter bumped by every change, which a running watcher polls to reload.
WATCH_LISTS_KEY: Final = "plate-ocr:watch:lists"
WATCH_LIST_KEY_PREFIX: Final = "plate-ocr:watch:list:"  # + list name
WATCH_VERSION_KEY: Final = "plate-ocr:watch:version"
WATCH_GROUP: Final = "plate-ocr-watch"  # on the results stream, or the events stream
DEFAULT_ALERTS_STREAM: Final = "plate-ocr:alerts"
# Set (NX, kept PUBLISHED_TTL_S) with an alert's stream entry: one alert per reading and entry.
ALERT_PUBLISHED_KEY_PREFIX: Final = "plate-ocr:alert-published:"  # + alerts stream + ":" + id
# The watcher's default alert threshold (consumers/watch/matcher.py's score): fitted on the
# first half of real_us_dev's plates by bench/watch.py, the README gives the other half's figures.
DEFAULT_WATCH_THRESHOLD: Final = 0.2
# Webhooks: one consumer group per URL (+ the URL's sha256, 16 hex), one dead-letter stream.
WEBHOOK_GROUP_PREFIX: Final = "plate-ocr-webhook:"
DEFAULT_WEBHOOK_DEAD_LETTER_STREAM: Final = "plate-ocr:webhook-dead"
STORE_GROUP: Final = "plate-ocr-store"  # the PostgreSQL history, on readings and on events
