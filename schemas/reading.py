"""`PlateReading`: the one structured result every job ends as, published on the results stream."""

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from schemas.codes import ErrorCode
from schemas.version import SCHEMA_VERSION, SCHEMA_VERSION_PATTERN

__all__ = [
    "CONFIDENCE_DECIMALS",
    "MS_DECIMALS",
    "Candidate",
    "CharacterReading",
    "ModelInfo",
    "PlateReading",
    "ReadingError",
    "Timings",
    "reading_id_for",
]

# Fixed namespace so that reading ids are the same on every worker and every run.
_READING_NAMESPACE = uuid.UUID("5b0f4d2e-8a51-4c1e-9d0b-6f3c2a7e9b14")
_NAMESPACE_BYTES = _READING_NAMESPACE.bytes


def reading_id_for(job_id: str, model_sha256: str) -> str:
    """Deterministic id: the same job read by the same weights always gets the same id, so a
    retried job never looks like a second reading to a consumer that deduplicates on it."""
    # uuid.uuid5, without building UUID objects (a worker makes one per job)
    name = f"{job_id}:{model_sha256}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# Precision kept on the wire: a model's scores mean nothing past 4 decimals, nor clock readings
# past a microsecond; rounding when the model is built keeps JSON short and round trips exact.
CONFIDENCE_DECIMALS = 4
MS_DECIMALS = 3

Confidence = Annotated[
    float, Field(ge=0.0, le=1.0), AfterValidator(lambda v: round(v, CONFIDENCE_DECIMALS))
]
Milliseconds = Annotated[float, Field(ge=0.0), AfterValidator(lambda v: round(v, MS_DECIMALS))]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CharacterReading(_Frozen):
    char: str = Field(pattern=r"^[0-9A-Z]$", description="one of the 36 classes, 0-9 then A-Z")
    confidence: Confidence
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in crop pixels")
    row: int = Field(ge=0, description="0 for the top (or only) row, 1 for the bottom row")


class Candidate(_Frozen):
    """One of the top plate strings (OpenALPR's topN), with its probability."""

    text: str = Field(pattern=r"^[0-9A-Z]*$")
    confidence: Confidence = Field(description="posterior probability among the candidates")


class ModelInfo(_Frozen):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Timings(_Frozen):
    queue_wait_ms: Milliseconds = Field(description="enqueued_at to the worker taking the job")
    decode_ms: Milliseconds
    infer_ms: Milliseconds = Field(description="this job's share of its batch's model time")
    total_ms: Milliseconds = Field(description="enqueued_at to the reading being built")


class ReadingError(_Frozen):
    code: ErrorCode
    message: str = Field(max_length=2000)


def _error_iff_status_error_schema(schema: JsonDict) -> None:
    # PlateReading._error_iff_status_error, said in JSON Schema for consumers in other languages.
    schema["if"] = {"properties": {"status": {"const": "error"}}, "required": ["status"]}
    schema["then"] = {"required": ["error"], "properties": {"error": {"type": "object"}}}
    schema["else"] = {"properties": {"error": {"type": "null"}}}


class PlateReading(_Frozen):
    """What the worker read from one crop (or why it could not).

    `confidence` is the plate-level confidence, calibrated: an estimate of the probability that
    the whole text is exactly right (reader.calibration); 0.0 when nothing was read.
    `candidates` are the top plate strings with their probabilities, best first (the first is
    `text`). `rows` is 1 or 2 for a plate with characters and 0 when nothing was read.
    `model` is the character detector; `recogniser` the line recogniser that read the serial
    with it (null when the detector read alone).
    """

    model_config = ConfigDict(json_schema_extra=_error_iff_status_error_schema)

    job_id: str
    reading_id: str
    supersedes: str | None = Field(
        default=None,
        description="the reading_id of this job's earlier reading that this one replaces: set "
        "when a person requeued the job after it ended (rq requeue, rq-dashboard), else null",
    )
    status: Literal["ok", "error"]
    text: str = ""
    confidence: Confidence = 0.0
    characters: tuple[CharacterReading, ...] = ()
    rows: int = Field(default=0, ge=0, le=2)
    candidates: tuple[Candidate, ...] = ()
    model: ModelInfo
    recogniser: ModelInfo | None = None
    device: str
    worker_id: str
    camera_id: str | None = None
    track_id: str | None = Field(default=None, description="the job's track (one vehicle)")
    metadata: dict[str, Any] = Field(default_factory=dict)
    timings: Timings
    error: ReadingError | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    schema_version: str = Field(default=SCHEMA_VERSION, pattern=SCHEMA_VERSION_PATTERN)

    @model_validator(mode="after")
    def _error_iff_status_error(self) -> Self:
        if (self.status == "error") != (self.error is not None):
            raise ValueError("error must be set exactly when status is 'error'")
        return self
