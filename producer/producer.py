"""`PlateProducer`: put plate crops on the queue as RQ jobs, and wait for their readings if asked.

A job is an ordinary RQ job (JSON serializer, never pickle) calling `JOB_FUNC_NAME` with one
argument, the `PlateJob` as JSON, and with RQ job id == `PlateJob.job_id`; so `rq info`,
rq-dashboard and `rq requeue` work on our queue. The producer never decodes an image: it only
enforces the size limits, so that an edge box needs neither OpenCV nor the model stack.

Backpressure is checked, not enforced atomically: the queue length is read, then the jobs are
pushed. Producers racing each other can overshoot `max_queue_depth` by at most the size of the
batches they push at the same moment, which is harmless for a limit that exists to keep Redis's
memory bounded.

The push itself is atomic: RQ's own enqueue commands (job hash, queue entry) are run by one
script (`_ATOMIC`), so a Redis at its `maxmemory` refuses the whole push (RedisFull) instead of
keeping a job hash with one field of seventeen, and a failover never leaves half a job behind.
With `replicas_to_wait` set, the same round trip ends in WAIT on the same connection, and a job
id is returned only once that many replicas have the job.
"""

import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypedDict, TypeVar, Unpack, cast

import msgpack
import numpy as np
import numpy.typing as npt
import redis
import rq
from pydantic import ValidationError
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from plate_ocr.connection import (
    DISCONNECT_ERRORS,
    Backoff,
    RedisUnavailable,
    check_replicated,
    connect,
    describe,
    oom_refusals,
    retry_on_disconnect,
)
from plate_ocr.constants import (
    ENDED_FIELD,
    ENTRY_FIELD,
    JOB_FUNC_NAME,
    MAX_BLOCK_MS,
    PRODUCER_RECONNECT_DEADLINE_S,
    REDIS_IMAGE_KEY_PREFIX,
    REDIS_IMAGE_TTL_S,
    REQUEUES_FIELD,
    RQ_JOB_KEY_PREFIX,
    WAIT_CURSORS_MAX,
)
from plate_ocr.errors import JobError, QueueFull, ReadingTimeout, RedisFull
from plate_ocr.settings import Settings
from plate_ocr.stream import parse_entry
from producer.png import encode_png
from schemas import DetectorBox, ErrorCode, PlateJob, PlateReading

__all__ = [
    "ImageInput",
    "ImageNotFound",
    "ImageTooLarge",
    "InvalidJob",
    "JobFields",
    "MetadataTooLarge",
    "PlateProducer",
]

# bytes: an encoded image; str or Path: a file to read (or, for a str, a file:// or redis://
# reference); ndarray: pixels, encoded to PNG here.
ImageInput = bytes | bytearray | memoryview | str | os.PathLike[str] | npt.NDArray[np.uint8]

T = TypeVar("T")

_REFERENCE_SCHEMES = ("file://", "redis://")
_XREAD_COUNT = 500  # entries per XREAD while wait() scans for its job's reading
# RQ statuses of a job whose reading has been published (the worker does both atomically).
_ENDED = {JobStatus.FINISHED.value.encode(), JobStatus.FAILED.value.encode()}
# Runs the commands RQ's enqueue queued (a MessagePack list of argument lists) as one atomic
# step. No shebang on purpose: such a script is refused OOM at its first write, as a whole,
# and once past it runs to the end (Redis 7 "eval without flags"), so it never half-applies.
_ATOMIC = """
for _, command in ipairs(cmsgpack.unpack(ARGV[1])) do
  redis.call(unpack(command))
end
return #ARGV[1]
"""


class _CodedJobError(JobError):
    code_of_class: ClassVar[ErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(self.code_of_class, message)


class ImageTooLarge(_CodedJobError):
    """Raised when an image is larger than `settings.max_image_bytes`."""

    code_of_class = ErrorCode.IMAGE_TOO_LARGE


class MetadataTooLarge(_CodedJobError):
    """Raised when a job's metadata is larger than `settings.max_metadata_bytes` as JSON."""

    code_of_class = ErrorCode.METADATA_TOO_LARGE


class ImageNotFound(_CodedJobError):
    """Raised when an image given as a path cannot be read."""

    code_of_class = ErrorCode.IMAGE_NOT_FOUND


class InvalidJob(_CodedJobError):
    """Raised when the fields given for a job do not make a valid PlateJob (e.g. a bad job_id)."""

    code_of_class = ErrorCode.INVALID_JOB


class JobFields(TypedDict, total=False):
    """The optional fields of a job, as keyword arguments of `submit()` and `submit_ref()`."""

    camera_id: str | None
    metadata: dict[str, Any] | None
    job_id: str | None  # default: a fresh uuid4 hex; re-using one is idempotent
    captured_at: datetime | None
    box: DetectorBox | None
    track_id: str | None


class PlateProducer:
    """Enqueues plate crops for the workers; `wait()` turns that into request/response."""

    def __init__(
        self,
        settings: Settings,
        *,
        connection: "redis.Redis | None" = None,
        reconnect_deadline_s: float = PRODUCER_RECONNECT_DEADLINE_S,
    ) -> None:
        """`connection`: a client returning bytes (decode_responses=False), as `connect()` makes.
        `reconnect_deadline_s`: how long a call rides out a Redis outage before raising
        RedisUnavailable (reconnecting with capped exponential backoff meanwhile)."""
        self.settings = settings
        self._reconnect_deadline_s = reconnect_deadline_s
        self._owns_connection = connection is None
        if connection is None:
            connection = connect(settings, client_name="plate-ocr-producer")
        self._redis = connection
        self._queue = rq.Queue(settings.queue, connection=self._redis, serializer=JSONSerializer)
        self._atomic = self._redis.register_script(_ATOMIC)
        self._atomic_loaded = False  # on the server we talk to now (a new primary has it not)
        self._backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        # job_id -> the results stream's newest entry id just before the job was pushed: its
        # reading can only come after that, so wait() reads from there instead of the start.
        self._cursors: OrderedDict[str, bytes] = OrderedDict()

    def submit(self, image: ImageInput, **fields: Unpack[JobFields]) -> str:
        """Enqueue one crop; returns its job id. A str file:// or redis:// URL is a reference."""
        return self._enqueue([self._build_job(image, fields)])[0]

    def submit_ref(self, ref: str, **fields: Unpack[JobFields]) -> str:
        """Enqueue a crop the worker fetches itself: `file:///abs/path` or `redis://KEY`."""
        if not ref.startswith(_REFERENCE_SCHEMES):
            raise InvalidJob(f"image reference {ref!r} is neither file:// nor redis://")
        return self._enqueue([self._build_job(ref, fields)])[0]

    def submit_many(
        self,
        items: Iterable[ImageInput | PlateJob],
        *,
        camera_id: str | None = None,
        track_id: str | None = None,
    ) -> list[str]:
        """Enqueue many crops in one round trip (plus the depth check); returns their job ids.

        `track_id` marks them all as crops of one vehicle (see `plate-ocr events`). An item that
        is already a PlateJob is sent as it is (its own camera_id and track_id included).
        """
        fields: JobFields = {"camera_id": camera_id, "track_id": track_id}
        jobs = [
            item if isinstance(item, PlateJob) else self._build_job(item, fields) for item in items
        ]
        return self._enqueue(jobs)

    def put_image(self, image: ImageInput) -> str:
        """Store an image in Redis for `REDIS_IMAGE_TTL_S`; returns its `redis://KEY` reference."""
        data = self._image_bytes(image)
        key = f"{REDIS_IMAGE_KEY_PREFIX}{uuid.uuid4().hex}"

        def store() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(key, data, ex=REDIS_IMAGE_TTL_S)
            self._wait_replicas(pipe)
            self._execute(pipe, "storing an image")

        self._retry(store, "SET image")
        return f"redis://{key}"

    def wait(self, job_id: str, timeout_s: float) -> PlateReading:
        """Block until the reading of `job_id` is published; raises ReadingTimeout after timeout_s.

        The newest reading of the job: when a person requeued it after it ended (`rq requeue`),
        the reading of that attempt, which supersedes the earlier one, not the earlier one.
        A job that has ended is answered from the entry its job hash names. Otherwise reads the
        results stream from where it ended when this producer submitted the job (from its end
        now, for a requeued job); from the oldest entry kept (slower on a long stream) for a job
        it did not submit. A job re-submitted once RQ has forgotten it (result_ttl_s) but while
        the worker still remembers publishing it gets no new reading: that times out.
        """
        known, cursor = self._newest_known(job_id)
        if known is not None:
            self._cursors.pop(job_id, None)
            return known
        wanted = job_id.encode()
        deadline = time.monotonic() + timeout_s
        while True:
            # At least one read even when the deadline has already passed (a stalled process):
            # a reading that is already there is returned, never reported as a timeout.
            left_ms = int((deadline - time.monotonic()) * 1000)
            for entry_id, fields in self._read_readings(
                cursor, block_ms=max(1, min(left_ms, MAX_BLOCK_MS))
            ):
                cursor = entry_id
                if fields.get(b"job_id") == wanted:
                    self._cursors.pop(job_id, None)
                    return parse_entry(fields)
            if time.monotonic() >= deadline:
                break
        stream = self.settings.results_stream
        raise ReadingTimeout(f"no reading for job {job_id!r} on {stream!r} within {timeout_s} s")

    def ping(self) -> None:
        """One PING, never retried: raises RedisUnavailable at once when Redis does not answer.

        For a command line that should fail fast when Redis was never reachable (a wrong URL, a
        server that is not up) instead of riding out what looks like an outage; calls made after
        it still reconnect with backoff when the connection drops mid-run.
        """
        try:
            self._redis.ping()
        except DISCONNECT_ERRORS as e:
            where = describe(self.settings)
            raise RedisUnavailable(f"cannot reach Redis at {where}: {e}") from e

    def _newest_known(self, job_id: str) -> tuple[PlateReading | None, bytes]:
        """What the job's hash says (the worker writes it atomically with each reading): the
        reading that ended the job, or else where on the stream its reading will come."""
        stream = self.settings.results_stream
        cursor = self._cursors.get(job_id, b"0-0")

        def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            key = f"{RQ_JOB_KEY_PREFIX}{job_id}"
            pipe.hmget(
                key, "status", "created_at", "ended_at", ENDED_FIELD, ENTRY_FIELD, REQUEUES_FIELD
            )
            pipe.xrevrange(stream, count=1)
            return pipe.execute()

        fields, newest = self._retry(read, "HMGET job")
        status, created_at, ended_at, ended, entry, requeues = fields
        if status is None:
            return None, cursor
        if status in _ENDED or (ended and ended != created_at):  # ended, or re-submitted since
            if entry:
                got = self._retry(lambda: self._redis.xrange(stream, entry, entry), "XRANGE")
                for _, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], got):
                    if fields.get(b"job_id") == job_id.encode():
                        return parse_entry(fields), cursor
            return None, cursor  # trimmed, or from a worker that did not note it: scan
        if (ended and ended == created_at and not ended_at) or int(requeues or 0) > 0:
            # Requeued by a person, its new reading still to come: after the stream's end now.
            return None, newest[0][0] if newest else b"0-0"
        return None, cursor

    def depth(self) -> int:
        """Jobs waiting in the queue (not counting those a worker has already taken)."""
        return int(self._retry(lambda: self._queue.count, "LLEN queue"))

    def close(self) -> None:
        if self._owns_connection:
            self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _build_job(self, image: ImageInput, fields: JobFields) -> PlateJob:
        # None means "not given": PlateJob's defaults apply (a fresh job_id, empty metadata).
        given: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if isinstance(image, str) and image.startswith(_REFERENCE_SCHEMES):
            given["image_ref"] = image
        else:
            given["image_b64"] = self._image_bytes(image)
        try:
            return PlateJob(**given)
        except ValidationError as e:
            raise InvalidJob(f"not a valid job: {e}") from e

    def _image_bytes(self, image: ImageInput) -> bytes:
        limit = self.settings.max_image_bytes
        if isinstance(image, np.ndarray):
            data = encode_png(image)
        elif isinstance(image, bytes | bytearray | memoryview):
            data = bytes(image)
        else:
            path = Path(image)
            try:
                # Checked before reading, so that a huge file is never pulled into memory.
                if (size := path.stat().st_size) > limit:
                    raise ImageTooLarge(f"{path} is {size} bytes, over the {limit}-byte limit")
                data = path.read_bytes()
            except OSError as e:
                raise ImageNotFound(f"cannot read image {path}: {e}") from e
        return data

    def _enqueue(self, jobs: Sequence[PlateJob]) -> list[str]:
        if not jobs:
            return []
        for job in jobs:  # PlateJobs given to submit_many() included
            self._check_limits(job)
        # Retrying the whole step is safe: re-pushing a job id at worst queues it twice, and the
        # worker publishes one reading per job id.
        cursor, ended = self._retry(lambda: self._push(jobs), f"enqueue to {self.settings.queue!r}")
        for job, had_ended in zip(jobs, ended, strict=True):
            self._remember(job.job_id, b"0-0" if had_ended else cursor)
        return [job.job_id for job in jobs]

    def _check_limits(self, job: PlateJob) -> None:
        image_limit, metadata_limit = (
            self.settings.max_image_bytes,
            self.settings.max_metadata_bytes,
        )
        if job.image_b64 is not None and len(job.image_b64) > image_limit:
            raise ImageTooLarge(
                f"job {job.job_id}: image is {len(job.image_b64)} bytes, "
                f"over the {image_limit}-byte limit"
            )
        if (size := job.metadata_bytes()) > metadata_limit:
            raise MetadataTooLarge(
                f"job {job.job_id}: metadata is {size} bytes as JSON, "
                f"over the {metadata_limit}-byte limit"
            )

    def _push(self, jobs: Sequence[PlateJob]) -> tuple[bytes, list[bool]]:
        depth = self._queue.count
        if depth + len(jobs) > self.settings.max_queue_depth:
            raise QueueFull(self.settings.queue, depth, self.settings.max_queue_depth)
        if not self._atomic_loaded:
            self._atomic.sha = self._redis.script_load(_ATOMIC)
            self._atomic_loaded = True
        # RQ queues its enqueue's commands here; they are sent by _ATOMIC, never one by one.
        pipe = self._redis.pipeline(transaction=False)
        self._queue.enqueue_many(
            [
                rq.Queue.prepare_data(
                    JOB_FUNC_NAME,
                    args=[job.model_dump(mode="json")],
                    job_id=job.job_id,
                    result_ttl=self.settings.result_ttl_s,
                    failure_ttl=self.settings.failure_ttl_s,
                    timeout=self.settings.lease_s,
                )
                for job in jobs
            ],
            pipeline=pipe,
        )
        encoder: Any = self._redis.get_encoder()
        commands = [[encoder.encode(arg) for arg in args] for args, _ in pipe.command_stack]
        pipe.reset()  # still usable: now for the one round trip that is sent
        # Queued before the pushes, so the cursor is taken before any worker can see these jobs.
        pipe.xrevrange(self.settings.results_stream, count=1)
        for job in jobs:
            # Read before the enqueue below overwrites it: a job id that already ended has its
            # reading on the stream already, and the worker publishes no second one.
            pipe.hget(f"{RQ_JOB_KEY_PREFIX}{job.job_id}", "status")
        # raw, not bin: the cmsgpack of Redis 7.0 reads no bin type; Lua strings hold bytes alike
        # EVALSHA, not the Script in the pipeline: that would cost a SCRIPT EXISTS per push.
        pipe.evalsha(self._atomic.sha, 0, msgpack.packb(commands, use_bin_type=False))
        self._wait_replicas(pipe)
        replies = self._execute(pipe, f"enqueueing {len(jobs)} jobs")
        newest = cast(list[tuple[bytes, Any]], replies[0])
        ended = [status in _ENDED for status in replies[1 : 1 + len(jobs)]]
        return (newest[0][0] if newest else b"0-0"), ended

    def _wait_replicas(self, pipe: "redis.client.Pipeline") -> None:
        """End `pipe` with WAIT when replicas are to be waited on: on the pipeline's connection,
        so it covers exactly the writes before it."""
        if self.settings.replicas_to_wait:
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", self.settings.replicas_to_wait, self.settings.replicas_wait_timeout_ms
            )

    def _execute(self, pipe: "redis.client.Pipeline", what: str) -> list[Any]:
        """Run `pipe`: RedisFull for a Redis at its maxmemory, NotReplicated (retried) when WAIT
        came back short."""
        try:
            with oom_refusals():
                replies = pipe.execute()
        except redis.exceptions.NoScriptError:
            # A restarted or newly promoted primary: _retry sends it again, loaded there first.
            self._atomic_loaded = False
            raise
        except redis.exceptions.OutOfMemoryError as e:
            raise RedisFull(
                f"{what}: Redis at {describe(self.settings)} is full (maxmemory reached, policy "
                "noeviction) and refused it; nothing of it was written. Retry once the workers "
                "have drained the queue, or raise Redis's maxmemory"
            ) from e
        if self.settings.replicas_to_wait:
            check_replicated(replies[-1], self.settings, what)
        return replies

    def _read_readings(
        self, cursor: bytes, *, block_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        stream = self.settings.results_stream
        # BLOCK returns at once when entries are already there, so catching up never waits.
        reply: Any = self._retry(
            lambda: self._redis.xread({stream: cursor}, count=_XREAD_COUNT, block=block_ms),
            "XREAD readings",
        )
        return cast(list[tuple[bytes, dict[bytes, bytes]]], reply[0][1] if reply else [])

    def _remember(self, job_id: str, cursor: bytes) -> None:
        self._cursors[job_id] = cursor
        self._cursors.move_to_end(job_id)
        if len(self._cursors) > WAIT_CURSORS_MAX:
            self._cursors.popitem(last=False)  # bounded memory for fire-and-forget producers

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return retry_on_disconnect(
            call, backoff=self._backoff, give_up_after_s=self._reconnect_deadline_s, what=what
        )
