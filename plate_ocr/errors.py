"""The error hierarchy. One root, so callers can catch everything of ours in one place.

PlateOcrError
├── ConfigError          settings are invalid or contradict each other
├── DeviceUnavailable    the requested device does not exist here (never a silent fallback)
├── ModelError           the weights are missing or are not a 36-class character detector
├── QueueFull            the queue is at its configured maximum depth
├── RedisFull            Redis refused a write at its maxmemory (noeviction); nothing was written
├── ReadingTimeout       wait() gave up before the reading arrived
└── JobError             one job cannot be read; carries the ErrorCode of its error reading
"""

from schemas.codes import ErrorCode

__all__ = [
    "ConfigError",
    "DeviceUnavailable",
    "JobError",
    "ModelError",
    "PlateOcrError",
    "QueueFull",
    "ReadingTimeout",
    "RedisFull",
]


class PlateOcrError(Exception):
    """Raised for every failure this package reports on purpose."""


class ConfigError(PlateOcrError):
    """Raised when settings are invalid or contradict each other."""


class DeviceUnavailable(PlateOcrError):
    """Raised when the requested device (e.g. cuda:1) is not present on this machine."""


class ModelError(PlateOcrError):
    """Raised when weights are missing, unreadable, or not a 36-class 0-9A-Z character detector."""


class QueueFull(PlateOcrError):
    """Raised by the producer when the queue has reached its configured maximum depth."""

    def __init__(self, queue: str, depth: int, max_depth: int) -> None:
        super().__init__(
            f"queue {queue!r} holds {depth} jobs, at its maximum of {max_depth}; "
            "retry later or raise PLATE_OCR_MAX_QUEUE_DEPTH"
        )
        self.queue = queue
        self.depth = depth
        self.max_depth = max_depth


class RedisFull(PlateOcrError):
    """Raised when Redis refuses a write because it is at its `maxmemory` (policy noeviction).

    The write was refused whole: nothing of it is in Redis. Workers draining the queue free
    memory (a read job's hash expires after `result_ttl_s`); so does a larger `maxmemory`."""


class ReadingTimeout(PlateOcrError):
    """Raised by PlateProducer.wait() when no reading arrives within the timeout."""


class JobError(PlateOcrError):
    """Raised when one job cannot be read; becomes an error reading with this code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
