"""The contract between producers, workers and consumers: versioned pydantic models.

Light on purpose: importing this package pulls in pydantic only, never torch or OpenCV.
"""

from schemas.codes import ErrorCode
from schemas.event import EventCandidate, EventCharacter, PlateEvent, event_id_for
from schemas.job import DetectorBox, PlateJob
from schemas.reading import (
    CharacterReading,
    ModelInfo,
    PlateReading,
    ReadingError,
    Timings,
    reading_id_for,
)
from schemas.version import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "CharacterReading",
    "DetectorBox",
    "ErrorCode",
    "EventCandidate",
    "EventCharacter",
    "ModelInfo",
    "PlateEvent",
    "PlateJob",
    "PlateReading",
    "ReadingError",
    "Timings",
    "event_id_for",
    "json_schemas",
    "reading_id_for",
]


def json_schemas() -> dict[str, object]:
    """The JSON Schema of the job, the reading and the event, for consumers in other languages."""
    return {
        "PlateJob": PlateJob.model_json_schema(),
        "PlateReading": PlateReading.model_json_schema(),
        "PlateEvent": PlateEvent.model_json_schema(),
    }
