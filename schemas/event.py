"""`PlateEvent`: one consolidated plate per vehicle (track), published on the events stream."""

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.version import SCHEMA_VERSION

__all__ = ["EventCandidate", "EventCharacter", "PlateEvent", "event_id_for"]

# Fixed namespace so that an event's id is the same on every consolidator and every run.
_EVENT_NAMESPACE = uuid.UUID("c3a1f6b2-4d7e-4f0a-9b8c-2e5d7a1c6f93")


def event_id_for(camera_id: str | None, track_id: str | None, first_reading_id: str) -> str:
    """Deterministic id: the same track, opened by the same reading, always gets the same id, so
    a consolidator that is restarted half-way through publishing cannot publish it twice."""
    key = "\x1f".join((camera_id or "", track_id or "", first_reading_id))
    return str(uuid.uuid5(_EVENT_NAMESPACE, key))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventCharacter(_Frozen):
    char: str = Field(min_length=1, max_length=1)
    confidence: float = Field(ge=0.0, le=1.0, description="the vote share this character won")


class EventCandidate(_Frozen):
    """One distinct text read in the track, or the consensus when no single read had it."""

    text: str
    score: float = Field(ge=0.0, le=1.0, description="its share of the track's evidence")
    reads: int = Field(ge=0, description="reads that gave exactly this text")


class PlateEvent(_Frozen):
    """The plate of one vehicle, voted per character across the reads of its track.

    `confidence` is the lowest per-character vote share, as a reading's is its least certain
    character: each read votes for each character with that character's confidence, so one read
    gives back its own confidence and agreeing reads push it towards 1.
    `agreeing_reads` counts the reads whose whole text equals `text`.
    `best_reading_id` is the most confident read agreeing with the consensus (its crop is the one
    to show), or the most confident read when none agrees.
    """

    event_id: str
    camera_id: str | None = None
    track_id: str | None = None
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    characters: tuple[EventCharacter, ...] = ()
    candidates: tuple[EventCandidate, ...] = Field(default=(), description="best first, ≤ 5")
    reads: int = Field(ge=1)
    agreeing_reads: int = Field(ge=0)
    best_reading_id: str
    best_job_id: str
    reading_ids: tuple[str, ...] = Field(description="every read of the track, oldest first")
    first_seen: datetime = Field(description="created_at of the track's first reading")
    last_seen: datetime = Field(description="created_at of the track's last reading")
    closed_by: Literal["idle", "max_duration", "single_read"]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    schema_version: str = SCHEMA_VERSION
