"""Intake: from an RQ job to image bytes, refusing anything that is not ours or not sane.

Every refusal is a `JobError` with a stable code; the worker turns it into an error reading.
The payload is decoded with RQ's JSON serializer only: a pickled payload is never unpickled, it
simply fails to parse as JSON.
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from pydantic import ValidationError

from plate_ocr.constants import JOB_FUNC_NAME
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from reader.image import load_file_ref
from schemas import ErrorCode, PlateJob
from worker.ledger import Taken

__all__ = ["Envelope", "admit", "decode_payload", "envelope_of", "load_images"]

_REDIS_REF = "redis://"
_FILE_REF = "file://"


@dataclass(frozen=True)
class Envelope:
    """What we could learn about a job even when it is invalid, for its (error) reading."""

    job_id: str
    camera_id: str | None
    metadata: dict[str, Any]
    requeues: int = 0  # a person's requeues of the job after it ended (see Taken)
    supersedes: str | None = None
    track_id: str | None = None


def decode_payload(data: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """RQ's (func_name, instance, args, kwargs), read as JSON and nothing else: a pickled
    payload is never unpickled, it simply fails to parse."""
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data  # RQ stores uncompressed data when compression did not help
    try:
        func_name, _instance, args, kwargs = orjson.loads(raw)
    except (ValueError, TypeError) as e:
        raise JobError(
            ErrorCode.UNDECODABLE_PAYLOAD, f"job payload is not RQ JSON: {type(e).__name__}"
        ) from e
    if not isinstance(func_name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
        raise JobError(ErrorCode.UNDECODABLE_PAYLOAD, "job payload is not an RQ call")
    return func_name, args, kwargs


def envelope_of(taken: Taken) -> Envelope:
    """Best effort: the job id always, camera and metadata when the payload is readable."""
    try:
        _, args, _ = decode_payload(taken.data)
        raw = args[0] if args and isinstance(args[0], dict) else {}
    except JobError:  # an undecodable payload still deserves an error reading
        raw = {}
    camera = raw.get("camera_id")
    metadata = raw.get("metadata")
    track = raw.get("track_id")
    return Envelope(
        job_id=taken.job_id,
        camera_id=camera if isinstance(camera, str) else None,
        metadata=metadata if isinstance(metadata, dict) else {},
        requeues=taken.requeues,
        supersedes=taken.supersedes,
        track_id=track if isinstance(track, str) else None,
    )


def admit(taken: Taken, settings: Settings) -> PlateJob:
    """The PlateJob inside an RQ job, or a JobError saying why it will not be run."""
    func_name, args, kwargs = decode_payload(taken.data)
    if func_name != JOB_FUNC_NAME:
        raise JobError(
            ErrorCode.FOREIGN_FUNCTION,
            f"job names {func_name!r}; this worker only runs {JOB_FUNC_NAME}",
        )
    if len(args) != 1 or kwargs or not isinstance(args[0], dict):
        raise JobError(ErrorCode.INVALID_JOB, "expected exactly one PlateJob object argument")
    try:
        plate_job = PlateJob.model_validate(args[0])
    except ValidationError as e:
        raise _validation_error(e) from e
    if plate_job.job_id != taken.job_id:
        raise JobError(ErrorCode.INVALID_JOB, "PlateJob.job_id differs from the RQ job id")
    size = plate_job.metadata_bytes()
    if size > settings.max_metadata_bytes:
        raise JobError(
            ErrorCode.METADATA_TOO_LARGE,
            f"metadata is {size} bytes, over the limit of {settings.max_metadata_bytes}",
        )
    return plate_job


def _validation_error(error: ValidationError) -> JobError:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "job"
    if where == "image_b64":
        return JobError(ErrorCode.INVALID_BASE64, f"image_b64: {first['msg']}")
    if where == "metadata":
        return JobError(ErrorCode.METADATA_TOO_LARGE, f"metadata: {first['msg']}")
    return JobError(
        ErrorCode.INVALID_JOB, f"{where}: {first['msg']} ({error.error_count()} errors)"
    )


def load_images(
    jobs: Sequence[PlateJob], settings: Settings, connection: redis.Redis
) -> list[bytes | JobError]:
    """The image bytes of each job: inline, from a file under the allowed roots, or from a
    Redis key (all keys of a batch in one MGET)."""
    out: list[bytes | JobError] = []
    redis_refs: list[tuple[int, str]] = []
    for i, job in enumerate(jobs):
        if job.image_ref is not None and job.image_ref.startswith(_REDIS_REF):
            redis_refs.append((i, job.image_ref[len(_REDIS_REF) :]))
            out.append(b"")  # filled in below
            continue
        try:
            out.append(_inline_or_file(job, settings))
        except JobError as e:
            out.append(e)
    if redis_refs:
        values = connection.mget([key for _, key in redis_refs])
        for (i, key), value in zip(redis_refs, values, strict=True):
            if value is None:
                out[i] = JobError(ErrorCode.IMAGE_KEY_MISSING, f"no Redis key {key!r}")
            elif len(value) > settings.max_image_bytes:
                out[i] = JobError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"image is {len(value)} bytes, over the limit of {settings.max_image_bytes}",
                )
            else:
                out[i] = value if isinstance(value, bytes) else value.encode()
    return out


def _inline_or_file(job: PlateJob, settings: Settings) -> bytes:
    if job.image_b64 is not None:
        return job.image_b64
    ref = job.image_ref or ""
    if ref.startswith(_FILE_REF):
        return load_file_ref(
            ref, allowed_roots=settings.allowed_roots, max_bytes=settings.max_image_bytes
        )
    raise JobError(ErrorCode.UNSUPPORTED_REFERENCE, f"unsupported image reference {ref[:64]!r}")
