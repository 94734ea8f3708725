"""Every Redis key, queue, stream and group name, and every magic duration, in one place.

The RQ names (`rq:queue:...`, `rq:job:...`, registries) are RQ's own; we reuse RQ's layout so that
`rq info`, rq-dashboard and requeueing of failed jobs work on our queue.
"""

from typing import Final

__all__ = [
    "ATTEMPTS_FIELD",
    "CLASS_NAMES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_QUEUE",
    "DEFAULT_RESULTS_STREAM",
    "JOB_FUNC_NAME",
    "MAX_BLOCK_MS",
    "PROBE_REDIS_TIMEOUT_S",
    "PRODUCER_RECONNECT_DEADLINE_S",
    "PUBLISHED_KEY_PREFIX",
    "PUBLISHED_TTL_S",
    "RECONNECT_BASE_BACKOFF_S",
    "REDIS_CONNECT_TIMEOUT_S",
    "REDIS_HEALTH_CHECK_INTERVAL_S",
    "REDIS_IMAGE_KEY_PREFIX",
    "REDIS_IMAGE_TTL_S",
    "REDIS_SOCKET_TIMEOUT_S",
    "RQ_EXECUTIONS_KEY_PREFIX",
    "RQ_EXECUTION_KEY_PREFIX",
    "RQ_JOB_KEY_PREFIX",
    "RQ_QUEUES_KEY",
    "RQ_QUEUE_KEY_PREFIX",
    "RQ_RESULTS_KEY_PREFIX",
    "WAIT_CURSORS_MAX",
    "WORKER_HEARTBEAT_KEY_PREFIX",
]

# The 36 classes of the seed model, in its class-id order: digits 0-9 then letters A-Z.
CLASS_NAMES: Final[tuple[str, ...]] = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DEFAULT_CONFIDENCE: Final = 0.25  # the original test_ocr.py default

DEFAULT_QUEUE: Final = "plates"
DEFAULT_RESULTS_STREAM: Final = "plate-ocr:readings"

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

# Idempotency marker: set (NX) atomically with the stream entry, so a retried job never publishes
# a second reading. Kept a day; readings of a job re-submitted after that are new readings.
PUBLISHED_KEY_PREFIX: Final = "plate-ocr:published:"
PUBLISHED_TTL_S: Final = 24 * 3600

# Producers that pass images by reference store the bytes under this prefix.
REDIS_IMAGE_KEY_PREFIX: Final = "plate-ocr:image:"
REDIS_IMAGE_TTL_S: Final = 3600

WORKER_HEARTBEAT_KEY_PREFIX: Final = "plate-ocr:worker:"

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
