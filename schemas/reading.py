"""`PlateReading`: the one structured result every job ends as, published on the results stream."""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.codes import ErrorCode
from schemas.version import SCHEMA_VERSION

__all__ = [
    "CharacterReading",
    "ModelInfo",
    "PlateReading",
    "ReadingError",
    "Timings",
    "reading_id_for",
]

# Fixed namespace so that reading ids are the same on every worker and every run.
_READING_NAMESPACE = uuid.UUID("5b0f4d2e-8a51-4c1e-9d0b-6f3c2a7e9b14")


def reading_id_for(job_id: str, model_sha256: str) -> str:
    """Deterministic id: the same job read by the same weights always gets the same id, so a
    retried job never looks like a second reading to a consumer that deduplicates on it."""
    return str(uuid.uuid5(_READING_NAMESPACE, f"{job_id}:{model_sha256}"))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CharacterReading(_Frozen):
    char: str = Field(min_length=1, max_length=1)
    confidence: float = Field(ge=0.0, le=1.0)
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in crop pixels")
    row: int = Field(ge=0, description="0 for the top (or only) row, 1 for the bottom row")


class ModelInfo(_Frozen):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Timings(_Frozen):
    queue_wait_ms: float = Field(ge=0.0, description="enqueued_at to the worker taking the job")
    decode_ms: float = Field(ge=0.0)
    infer_ms: float = Field(ge=0.0, description="this job's share of its batch's model time")
    total_ms: float = Field(ge=0.0, description="enqueued_at to the reading being built")


class ReadingError(_Frozen):
    code: ErrorCode
    message: str = Field(max_length=2000)


class PlateReading(_Frozen):
    """What the worker read from one crop (or why it could not).

    `confidence` is the plate-level confidence: the lowest character confidence, because a plate
    is only as right as its least certain character; 0.0 when nothing was read.
    `rows` is 1 or 2 for a plate with characters and 0 when nothing was read.
    """

    job_id: str
    reading_id: str
    status: Literal["ok", "error"]
    text: str = ""
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    characters: tuple[CharacterReading, ...] = ()
    rows: int = Field(default=0, ge=0, le=2)
    model: ModelInfo
    device: str
    worker_id: str
    camera_id: str | None = None
    track_id: str | None = Field(default=None, description="the job's track (one vehicle)")
    metadata: dict[str, Any] = Field(default_factory=dict)
    timings: Timings
    error: ReadingError | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    schema_version: str = SCHEMA_VERSION

    @model_validator(mode="after")
    def _error_iff_status_error(self) -> Self:
        if (self.status == "error") != (self.error is not None):
            raise ValueError("error must be set exactly when status is 'error'")
        return self
