"""`PlateAlert`: a listed plate was read, published on the alerts stream (plate-ocr watch)."""

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.version import SCHEMA_VERSION

__all__ = ["AlertMatch", "PlateAlert", "WatchEntry", "alert_id_for"]

_ALERT_NAMESPACE = uuid.UUID("0e7b5c52-61a4-4f3e-a1d8-9c2f43b7e815")


def alert_id_for(subject_id: str, watch_list: str, plate: str) -> str:
    """Deterministic: one reading (or event) and one list entry always give the same id, so a
    watcher restarted half-way through its alerts publishes none of them twice."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, "\x1f".join((subject_id, watch_list, plate))))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchEntry(_Frozen):
    """One plate of a watch list (a row of `plate-ocr lists add NAME --file plates.csv`)."""

    plate: str = Field(pattern=r"^[0-9A-Z]+$", description="normalised: 0-9A-Z, O as 0")
    label: str = Field(default="", max_length=500)
    camera_id: str | None = Field(default=None, description="only this camera alerts (None: all)")
    expires_at: datetime | None = Field(default=None, description="no alert after this")


class AlertMatch(_Frozen):
    """How the reading matched: the candidate nearest the plate and the edits between them."""

    kind: Literal["exact", "candidate", "fuzzy"] = Field(
        description="exact: the reading's text is the plate; candidate: another candidate is; "
        "fuzzy: within the weighted edit distance"
    )
    candidate: str
    candidate_rank: int = Field(ge=0, description="0: the reading's own text")
    candidate_probability: float = Field(ge=0.0, le=1.0)
    distance: float = Field(ge=0.0, description="weighted edit distance, candidate to plate")
    edits: tuple[str, ...] = Field(
        default=(), description="R>L read R for listed L; +L listed L not read; -R extra R read"
    )


class PlateAlert(_Frozen):
    alert_id: str
    watch_list: str
    entry: WatchEntry
    plate_read: str = Field(description="the reading's (or event's) text")
    match: AlertMatch
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(gt=0.0, le=1.0)
    source: Literal["reading", "event"]
    camera_id: str | None = None
    track_id: str | None = None
    reading_id: str = Field(description="the reading, or the event's best reading")
    job_id: str = Field(description="the crop's job id (the dashboard's /api/crop/JOB_ID)")
    event_id: str | None = None
    seen_at: datetime = Field(description="the reading's created_at (an event's last_seen)")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    schema_version: str = SCHEMA_VERSION
