"""`PlateJob`: one cropped plate to read, as a producer enqueues it."""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from schemas.version import SCHEMA_VERSION, SCHEMA_VERSION_PATTERN, is_compatible

__all__ = ["MAX_METADATA_BYTES_CEILING", "DetectorBox", "PlateJob", "new_job_id"]

# Absolute ceiling whatever the settings say; the configured (lower) limit is checked by the
# producer and again by the worker.
MAX_METADATA_BYTES_CEILING = 64 * 1024

JobId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]


def new_job_id() -> str:
    return uuid.uuid4().hex


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DetectorBox(BaseModel):
    """Where the upstream detector found the plate, in full-frame pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)


def _exactly_one_image_schema(schema: JsonDict) -> None:
    # PlateJob._exactly_one_image, said in JSON Schema for producers in other languages.
    schema["oneOf"] = [
        {"required": [field], "properties": {field: {"type": "string"}}}
        for field in ("image_b64", "image_ref")
    ]


class PlateJob(BaseModel):
    """One crop to read. Exactly one of `image_b64` (inline bytes) and `image_ref` is set.

    `image_ref` is `file:///abs/path` (resolved only under the worker's allowed roots) or
    `redis://KEY` (a key on the same Redis that holds the bytes).
    `job_id` is the idempotency key: re-submitting the same id yields the same `reading_id`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_image_schema)

    job_id: JobId = Field(default_factory=new_job_id)
    image_b64: bytes | None = Field(default=None, description="Inline image bytes, base64 in JSON.")
    image_ref: str | None = Field(default=None, max_length=4096, pattern=r"^(file|redis)://.+")
    camera_id: str | None = Field(default=None, max_length=256)
    captured_at: datetime | None = None
    box: DetectorBox | None = None
    track_id: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)
    enqueued_at: datetime = Field(default_factory=_utcnow)
    # The pattern is for the JSON Schema; _known_version below gives Python callers the message.
    schema_version: str = Field(
        default=SCHEMA_VERSION, json_schema_extra={"pattern": SCHEMA_VERSION_PATTERN}
    )

    @field_validator("image_b64", mode="before")
    @classmethod
    def _decode_base64(cls, value: object) -> object:
        # In JSON the bytes travel as base64 text; in Python callers pass raw bytes.
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"image_b64 is not valid base64: {e}") from e
        return value

    @field_serializer("image_b64", when_used="json")
    def _encode_base64(self, value: bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:  # the common case, and a worker validates every job
            return value
        size = len(json.dumps(value, separators=(",", ":"), default=str))
        if size > MAX_METADATA_BYTES_CEILING:
            raise ValueError(f"metadata is {size} bytes, over {MAX_METADATA_BYTES_CEILING}")
        return value

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if not is_compatible(value):
            raise ValueError(f"schema_version {value!r} is not compatible with {SCHEMA_VERSION}")
        return value

    @model_validator(mode="after")
    def _exactly_one_image(self) -> Self:
        if (self.image_b64 is None) == (self.image_ref is None):
            raise ValueError("exactly one of image_b64 and image_ref must be given")
        return self

    def metadata_bytes(self) -> int:
        if not self.metadata:
            return len("{}")
        return len(json.dumps(self.metadata, separators=(",", ":"), default=str))
