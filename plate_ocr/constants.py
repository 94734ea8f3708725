"""Every Redis key, queue, stream and group name, and every magic duration, in one place.

The RQ names (`rq:queue:...`, `rq:job:...`, registries) are RQ's own; we reuse RQ's layout so that
`rq info`, rq-dashboard and requeueing of failed jobs work on our queue.
"""

from typing import Final

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_QUEUE",
    "DEFAULT_RESULTS_STREAM",
    "JOB_FUNC_NAME",
    "PUBLISHED_KEY_PREFIX",
    "PUBLISHED_TTL_S",
    "REDIS_IMAGE_KEY_PREFIX",
    "REDIS_IMAGE_TTL_S",
    "RQ_JOB_KEY_PREFIX",
    "RQ_QUEUES_KEY",
    "RQ_QUEUE_KEY_PREFIX",
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

# Idempotency marker: set (NX) atomically with the stream entry, so a retried job never publishes
# a second reading. Kept a day; readings of a job re-submitted after that are new readings.
PUBLISHED_KEY_PREFIX: Final = "plate-ocr:published:"
PUBLISHED_TTL_S: Final = 24 * 3600

# Producers that pass images by reference store the bytes under this prefix.
REDIS_IMAGE_KEY_PREFIX: Final = "plate-ocr:image:"
REDIS_IMAGE_TTL_S: Final = 3600

WORKER_HEARTBEAT_KEY_PREFIX: Final = "plate-ocr:worker:"
