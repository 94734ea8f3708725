import json
from collections.abc import Callable

from consumers.events.event import build_event, event_fields, read_of
from schemas import CharacterReading, PlateEvent, PlateReading

MakeReading = Callable[..., PlateReading]


def chars(text: str, *confidences: float) -> tuple[CharacterReading, ...]:
    return tuple(
        CharacterReading(char=c, confidence=w, box=(0, 0, 1, 1), row=0)
        for c, w in zip(text, confidences, strict=True)
    )


def test_a_reading_votes_with_its_characters_confidences(make_reading: MakeReading) -> None:
    reading = make_reading("j1", text="AB1", confidence=0.5, characters=chars("AB1", 0.9, 0.5, 0.8))
    assert read_of(reading).confidences == (0.9, 0.5, 0.8)


def test_a_reading_without_one_character_per_letter_votes_with_its_plate_confidence(
    make_reading: MakeReading,
) -> None:
    reading = make_reading("j1", text="AB1", confidence=0.6, characters=())
    assert read_of(reading).confidences == (0.6, 0.6, 0.6)


def test_the_same_readings_give_the_same_event_whatever_their_order(
    make_reading: MakeReading,
) -> None:
    readings = [
        make_reading(f"j{k}", text=t, camera_id="c", track_id="t")
        for k, t in enumerate(["ABC123", "A8C123", "ABC123"])
    ]
    a = build_event(readings, closed_by="idle")
    b = build_event(readings[::-1], closed_by="idle")
    assert a.model_dump(exclude={"created_at"}) == b.model_dump(exclude={"created_at"})


def test_the_best_reading_agrees_with_the_consensus_even_when_a_misread_was_surer(
    make_reading: MakeReading,
) -> None:
    readings = [
        make_reading("j1", text="ABC123", confidence=0.7, camera_id="c", track_id="t"),
        make_reading("j2", text="ABC123", confidence=0.6, camera_id="c", track_id="t"),
        make_reading("j3", text="A8C123", confidence=0.75, camera_id="c", track_id="t"),
    ]
    event = build_event(readings, closed_by="idle")
    assert (event.text, event.reads, event.agreeing_reads) == ("ABC123", 3, 2)
    assert event.best_reading_id == readings[0].reading_id
    assert [c.text for c in event.candidates] == ["ABC123", "A8C123"]


def test_an_events_stream_entry_carries_the_event_and_flat_copies(
    make_reading: MakeReading,
) -> None:
    event = build_event([make_reading("j1", camera_id="c", track_id="t")], closed_by="idle")
    fields = event_fields(event)
    assert PlateEvent.model_validate(json.loads(fields["event"])) == event
    assert (fields["camera_id"], fields["track_id"], fields["text"]) == ("c", "t", event.text)
