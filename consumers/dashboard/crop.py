"""The crop behind a reading, for the dashboard's thumbnails.

A reading carries its `job_id`, not its image. The image is in the RQ job hash
(`rq:job:<job_id>`, field `data`), which outlives the job by `result_ttl_s` (finished) or
`failure_ttl_s` (failed): inline crops are read from there, and `redis://KEY` references from
their key (kept `REDIS_IMAGE_TTL_S`). Once those have expired the crop is gone and the page shows
a placeholder. `file://` crops are not served: the dashboard reads Redis and nothing else, so it
never becomes a way to read files off the worker's disk.

Only bytes that start like an image are served, under the image type they start like, so that a
hostile payload can never be handed to a browser as a page.
"""

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, cast

import redis

from plate_ocr.constants import RQ_JOB_KEY_PREFIX
from plate_ocr.errors import PlateOcrError

__all__ = ["Crop", "CropUnavailable", "find_crop", "image_type"]

_REDIS_REF = "redis://"
_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")  # schemas.job.JobId
# Leading bytes of the formats a plate detector sends, and the type to serve each as.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


class CropUnavailable(PlateOcrError):
    """Raised when a reading's crop cannot be shown; `reason` says why, for the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Crop:
    data: bytes
    media_type: str


def image_type(data: bytes) -> str | None:
    """The media type `data` starts like, or None when it does not look like an image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in _MAGIC if data.startswith(magic)), None)


def find_crop(connection: "redis.Redis", job_id: str, *, max_bytes: int) -> Crop:
    """The crop of `job_id`, or CropUnavailable saying why there is none to show."""
    if not _JOB_ID.match(job_id):
        raise CropUnavailable("not a job id")
    data = cast(bytes | None, connection.hget(f"{RQ_JOB_KEY_PREFIX}{job_id}", "data"))
    if data is None:
        raise CropUnavailable("its job has expired from Redis")
    job = _plate_job(data)
    if isinstance(inline := job.get("image_b64"), str):
        try:
            image = base64.b64decode(inline, validate=True)
        except (binascii.Error, ValueError) as e:
            raise CropUnavailable("the job's image_b64 is not base64") from e
    else:
        image = _referenced(connection, job.get("image_ref"))
    if len(image) > max_bytes:
        raise CropUnavailable(f"the crop is {len(image)} bytes, over the {max_bytes}-byte limit")
    media_type = image_type(image)
    if media_type is None:
        raise CropUnavailable("not a JPEG, PNG, GIF, BMP or WebP image")
    return Crop(image, media_type)


def _plate_job(data: bytes) -> dict[str, Any]:
    # The same reading of RQ's JSON payload as worker.intake.decode_payload, which this light
    # module cannot import (the worker package pulls in the model stack).
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data  # RQ stores the payload uncompressed when compression did not help
    try:
        _func, _instance, args, _kwargs = json.loads(raw)
    except (ValueError, TypeError) as e:
        raise CropUnavailable("the job's payload is not RQ JSON") from e
    if not isinstance(args, list) or not args or not isinstance(args[0], dict):
        raise CropUnavailable("the job carries no PlateJob")
    return cast(dict[str, Any], args[0])


def _referenced(connection: "redis.Redis", ref: object) -> bytes:
    if not isinstance(ref, str) or not ref:
        raise CropUnavailable("the job carries no image")
    if not ref.startswith(_REDIS_REF):
        raise CropUnavailable("file:// crops are not served by the dashboard")
    image = cast(bytes | None, connection.get(ref[len(_REDIS_REF) :]))
    if image is None:
        raise CropUnavailable("the redis:// image has expired")
    return image
