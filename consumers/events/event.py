"""Vehicle events: the readings of one track voted into one `PlateEvent`, and its stream entry.

Pure functions of readings (no Redis): the consolidator calls them on a closed track's state,
the bench on model output.
"""

from collections.abc import Sequence

from consumers.events.consensus import Read, vote
from schemas import EventCandidate, EventCharacter, PlateEvent, PlateReading, event_id_for

__all__ = ["build_event", "event_fields", "read_of"]


def read_of(reading: PlateReading) -> Read:
    """What one reading votes: its characters' own confidences (the plate's when they are not
    one per character of the text)."""
    chars = reading.characters
    if "".join(c.char for c in chars) == reading.text:
        return Read(reading.text, tuple(c.confidence for c in chars))
    return Read(reading.text, (reading.confidence,) * len(reading.text))


def build_event(
    readings: Sequence[PlateReading], *, closed_by: str, event_id: str | None = None
) -> PlateEvent:
    """The event of one track's readings (sorted here, so any order gives the same event)."""
    ordered = sorted(readings, key=lambda r: (r.created_at, r.reading_id))
    if not ordered:
        raise ValueError("an event needs at least one reading")
    first = ordered[0]
    consensus = vote([read_of(r) for r in ordered])
    agreeing = [r for r in ordered if r.text == consensus.text]
    best = max(agreeing or ordered, key=lambda r: (r.confidence, r.reading_id))
    return PlateEvent(
        event_id=event_id or event_id_for(first.camera_id, first.track_id, first.reading_id),
        camera_id=first.camera_id,
        track_id=first.track_id,
        text=consensus.text,
        confidence=consensus.confidence,
        characters=tuple(
            EventCharacter(char=c, confidence=w)
            for c, w in zip(consensus.text, consensus.confidences, strict=True)
        ),
        candidates=tuple(
            EventCandidate(text=t, score=min(s, 1.0), reads=n) for t, s, n in consensus.candidates
        ),
        reads=len(ordered),
        agreeing_reads=len(agreeing),
        best_reading_id=best.reading_id,
        best_job_id=best.job_id,
        reading_ids=tuple(r.reading_id for r in ordered),
        first_seen=first.created_at,
        last_seen=ordered[-1].created_at,
        closed_by=closed_by,  # type: ignore[arg-type]  # validated by the model
    )


def event_fields(event: PlateEvent) -> dict[str, str]:
    """The events stream entry of `event`: the JSON, plus flat copies to filter on."""
    return {
        "event": event.model_dump_json(),
        "event_id": event.event_id,
        "camera_id": event.camera_id or "",
        "track_id": event.track_id or "",
        "text": event.text,
    }
