"""The contract between producers, workers and consumers: versioned pydantic models.

Light on purpose: importing this package pulls in pydantic only, never torch or OpenCV.
"""

from schemas.alert import AlertMatch, PlateAlert, WatchEntry, alert_id_for
from schemas.codes import ErrorCode
from schemas.event import EventCandidate, EventCharacter, PlateEvent, event_id_for
from schemas.job import DetectorBox, PlateJob
from schemas.json_schema import json_schema, json_schemas
from schemas.reading import (
    Candidate,
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
    "AlertMatch",
    "Candidate",
    "CharacterReading",
    "DetectorBox",
    "ErrorCode",
    "EventCandidate",
    "EventCharacter",
    "ModelInfo",
    "PlateAlert",
    "PlateEvent",
    "PlateJob",
    "PlateReading",
    "ReadingError",
    "Timings",
    "WatchEntry",
    "alert_id_for",
    "event_id_for",
    "json_schema",
    "json_schemas",
    "reading_id_for",
]
