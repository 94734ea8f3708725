"""Watch lists and alerts: the OCR-aware matcher, lists in Redis, the watcher on real streams."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from consumers.events.event import event_fields
from consumers.group import GroupReader
from consumers.watch.alerts import parse_alert
from consumers.watch.index import PlateIndex
from consumers.watch.lists import WatchLists, parse_list_csv
from consumers.watch.matcher import Candidate, normalise_plate, reading_candidates, score_plate
from consumers.watch.watcher import Watcher
from plate_ocr.cli import main as cli_main
from plate_ocr.constants import WATCH_GROUP
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from schemas import Candidate as ReadingCandidate
from schemas import CharacterReading, PlateAlert, PlateEvent, WatchEntry


def one(text: str, p: float = 1.0, conf: tuple[float, ...] | None = None) -> tuple[Candidate]:
    return (Candidate(text, p, conf),)


# The matcher -------------------------------------------------------------------------------


def test_an_exact_reading_scores_one_and_says_so() -> None:
    match = score_plate(one("ABC1234"), "ABC1234")
    assert (match.score, match.kind, match.edits) == (1.0, "exact", ())


def test_a_measured_confusion_costs_less_than_any_other_substitution() -> None:
    confused = score_plate(one("ABC1284"), "ABC12B4")  # 8 read for B
    other = score_plate(one("ABC1284"), "ABC12K4")  # 8 read for K
    assert confused.edits == ("8>B",) and other.edits == ("8>K",)
    assert confused.score > other.score


def test_a_dropped_end_character_costs_less_than_a_dropped_middle_one() -> None:
    end = score_plate(one("123456C"), "T123456C")
    middle = score_plate(one("T12356C"), "T123456C")
    assert end.edits == ("+T",) and middle.edits == ("+4",)
    assert end.score > middle.score


def test_an_extra_character_is_cheap_in_front_of_the_plate_and_after_it_only_when_unsure() -> None:
    threshold = Settings().watch_threshold
    # An emblem read as a letter before the serial: a fused-reader habit.
    assert score_plate(one("B3178", conf=(1, 1, 1, 1, 1)), "3178").score >= threshold
    # A sure character read after the plate is another plate (SAMPLE is not Michigan's SAMPL)...
    sample = score_plate(one("SAMPLE", conf=(1, 1, 1, 1, 1, 1)), "SAMPL")
    assert sample.edits == ("-E",) and sample.score < threshold
    # ... and inside it, unless the reader doubted it.
    doubted = score_plate(one("W77C2UQ", conf=(1, 1, 1, 0.58, 1, 1, 1)), "W772UQ")
    sure = score_plate(one("W77C2UQ", conf=(1, 1, 1, 1, 1, 1, 1)), "W772UQ")
    assert doubted.edits == sure.edits == ("-C",)
    assert doubted.score >= threshold > sure.score


def test_an_unsure_character_is_cheaper_to_substitute_than_a_sure_one() -> None:
    unsure = score_plate(one("ABC1234", conf=(1, 1, 1, 1, 1, 0.3, 1)), "ABC1274")
    sure = score_plate(one("ABC1234", conf=(1, 1, 1, 1, 1, 0.99, 1)), "ABC1274")
    assert unsure.score > sure.score


def test_every_candidate_counts_by_its_probability() -> None:
    candidates = (Candidate("ABC1234", 0.6), Candidate("ABC1Z34", 0.4))
    match = score_plate(candidates, "ABC1Z34")
    assert match.kind == "candidate" and match.candidate_rank == 1
    assert 0.4 < match.score < 1.0
    # The same plate as the more likely candidate scores higher.
    assert score_plate(candidates, "ABC1234").score > match.score


def test_a_confident_reading_of_another_plate_does_not_match_at_the_default() -> None:
    settings = Settings()
    # One confident digit apart: a different car, as NYC taxi serials are.
    assert score_plate(one("T101201C"), "T103201C").score < settings.watch_threshold
    assert score_plate(one("KXY4417"), "ABC1234").score < 0.01


def test_plates_are_normalised_as_the_reader_writes_them() -> None:
    assert normalise_plate(" abc-1o2 ") == "ABC102"


def test_the_index_finds_exactly_what_scoring_every_plate_finds() -> None:
    rng = random.Random(3)
    alphabet = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
    plates = ["".join(rng.choice(alphabet) for _ in range(rng.randint(5, 8))) for _ in range(120)]
    index = PlateIndex(plates)
    for _ in range(60):
        base = rng.choice(plates)
        chars = list(base)
        for _ in range(rng.randint(0, 2)):  # a couple of slips, sometimes a confusion
            k = rng.randrange(len(chars))
            chars[k] = rng.choice("08BDSZ5" if rng.random() < 0.5 else alphabet)
        if rng.random() < 0.5:  # an extra character, sometimes the loose W
            chars.insert(
                rng.randint(0, len(chars)), rng.choice("W1" if rng.random() < 0.5 else alphabet)
            )
        text = "".join(chars[rng.randint(0, 1) :])
        cands = (Candidate(text, 0.7, tuple(rng.random() for _ in text)), Candidate(base, 0.3))
        for threshold in (0.1, 0.2, 0.5):
            brute = {p for p in plates if score_plate(cands, p).score >= threshold}
            assert {m.plate for m in index.matches(cands, threshold)} == brute


def test_a_readings_candidates_carry_its_characters_confidences(make_reading: Any) -> None:
    chars = tuple(
        CharacterReading(char=c, confidence=q, box=(0, 0, 1, 1), row=0)
        for c, q in zip("AB8", (0.9, 0.8, 0.6), strict=True)
    )
    reading = make_reading(
        "j1",
        text="AB8",
        characters=chars,
        candidates=(
            ReadingCandidate(text="AB8", confidence=0.7),
            ReadingCandidate(text="ABB", confidence=0.2),
            ReadingCandidate(text="AB", confidence=0.1),
        ),
    )
    first, second, third = reading_candidates(reading)
    assert first == Candidate("AB8", 0.7, (0.9, 0.8, 0.6))
    assert second.confidences == pytest.approx((0.9, 0.8, 0.4))  # what the 8 left
    assert third.confidences is None


# Lists --------------------------------------------------------------------------------------


def test_a_list_file_has_an_optional_header_camera_scope_and_expiry() -> None:
    entries = parse_list_csv(
        "plate,label,camera,expires\n"
        "abc-123,stolen,,\n"
        "XYZ9,resident,gate-3,2027-01-31\n"
        "# a comment\n"
        "Q1,visitor,,2027-01-01T12:00:00+01:00\n"
    )
    assert [e.plate for e in entries] == ["ABC123", "XYZ9", "Q1"]
    assert entries[1].camera_id == "gate-3"
    assert entries[1].expires_at == datetime(2027, 2, 1, tzinfo=UTC)  # the end of that day
    assert entries[2].expires_at == datetime(2027, 1, 1, 11, tzinfo=UTC)


def test_a_bad_row_names_its_line_and_loads_nothing() -> None:
    with pytest.raises(ConfigError, match="line 2: expires 'soon'"):
        parse_list_csv("ABC123,stolen\nXYZ9,resident,,soon\n")
    with pytest.raises(ConfigError, match="line 1: no plate"):
        parse_list_csv("---,nothing\n")


# The watcher on a real Redis ---------------------------------------------------------------


@pytest.fixture
def watch_settings(settings: Settings) -> Settings:
    token = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={"alerts_stream": f"test-alerts:{token}", "events_stream": f"test-events:{token}"}
    )


def alerts_on(client: redis.Redis, settings: Settings) -> list[PlateAlert]:
    entries = cast(list[Any], client.xrange(settings.alerts_stream))
    return [parse_alert(fields) for _, fields in entries]


@pytest.mark.redis
def test_a_listed_plate_raises_one_alert_per_list_entry(
    redis_client: redis.Redis, watch_settings: Settings, make_reading: Any, publish: Any
) -> None:
    lists = WatchLists(redis_client)
    lists.add("stolen", [WatchEntry(plate="ABC12B4", label="red van")])
    lists.add("gate", [WatchEntry(plate="ABC12B4", label="resident", camera_id="gate-3")])
    lists.add("other", [WatchEntry(plate="ZZZ9999")])
    seen = make_reading("j1", text="ABC1284", camera_id="cam-1")  # 8 for B
    publish(redis_client, seen)
    publish(redis_client, make_reading("j2", text="KXY4417", camera_id="cam-1"))
    publish(redis_client, make_reading("j3", status="error", camera_id="cam-1"))
    watcher = Watcher(watch_settings, consumer="w1")
    assert watcher.run(from_start=True, burst=True) == 1
    (alert,) = alerts_on(redis_client, watch_settings)
    assert alert.watch_list == "stolen" and alert.entry.label == "red van"  # gate: other camera
    assert (alert.plate_read, alert.match.kind, alert.match.edits) == ("ABC1284", "fuzzy", ("8>B",))
    assert alert.reading_id == seen.reading_id and alert.job_id == "j1"
    assert alert.camera_id == "cam-1" and alert.score >= watch_settings.watch_threshold
    assert redis_client.xpending(watch_settings.results_stream, WATCH_GROUP)["pending"] == 0


@pytest.mark.redis
def test_lists_change_while_it_runs_and_expired_entries_stay_quiet(
    redis_client: redis.Redis, watch_settings: Settings, make_reading: Any, publish: Any
) -> None:
    lists = WatchLists(redis_client)
    past = datetime.now(UTC) - timedelta(minutes=1)
    lists.add("l", [WatchEntry(plate="OLD1234", expires_at=past)])
    watcher = Watcher(watch_settings, consumer="w1")
    publish(redis_client, make_reading("j1", text="OLD1234"))
    watcher.run(from_start=True, burst=True)
    assert alerts_on(redis_client, watch_settings) == []
    lists.add("l", [WatchEntry(plate="NEW1234")])  # the same watcher, a new version
    publish(redis_client, make_reading("j2", text="NEW1234"))
    watcher.run(burst=True)
    assert [a.entry.plate for a in alerts_on(redis_client, watch_settings)] == ["NEW1234"]
    lists.remove("l", ["NEW1234"])
    publish(redis_client, make_reading("j3", text="NEW1234"))
    watcher.run(burst=True)
    assert len(alerts_on(redis_client, watch_settings)) == 1


@pytest.mark.redis
def test_a_watcher_killed_before_acknowledging_repeats_no_alert(
    redis_client: redis.Redis, watch_settings: Settings, make_reading: Any, publish: Any
) -> None:
    WatchLists(redis_client).add("l", [WatchEntry(plate="ABC1234")])
    publish(redis_client, make_reading("j1", text="ABC1234"))
    dying = Watcher(watch_settings, consumer="w1")
    reader = GroupReader(
        redis_client, watch_settings.results_stream, WATCH_GROUP, "w1", from_start=True
    )
    (entry,) = reader.read(count=10, block_ms=100)
    assert len(dying.handle(entry)) == 1  # published, then "killed": never acknowledged
    assert redis_client.xpending(watch_settings.results_stream, WATCH_GROUP)["pending"] == 1
    restarted = Watcher(watch_settings, consumer="w1")
    assert restarted.run(burst=True) == 0  # handed the reading again, published nothing new
    assert len(alerts_on(redis_client, watch_settings)) == 1
    assert redis_client.xpending(watch_settings.results_stream, WATCH_GROUP)["pending"] == 0


@pytest.mark.redis
def test_on_the_events_stream_one_vehicle_raises_one_alert(
    redis_client: redis.Redis, watch_settings: Settings
) -> None:
    WatchLists(redis_client).add("l", [WatchEntry(plate="ABC1234")])
    now = datetime.now(UTC)
    event = PlateEvent(
        event_id="e1",
        camera_id="gate",
        track_id="t1",
        text="ABC1Z34",
        confidence=0.5,
        candidates=(),
        reads=3,
        agreeing_reads=2,
        best_reading_id="r1",
        best_job_id="j1",
        reading_ids=("r1", "r2", "r3"),
        first_seen=now,
        last_seen=now,
        closed_by="idle",
    )
    redis_client.xadd(watch_settings.events_stream, cast(Any, event_fields(event)))
    assert Watcher(watch_settings, source="events").run(from_start=True, burst=True) == 1
    (alert,) = alerts_on(redis_client, watch_settings)
    assert (alert.source, alert.event_id, alert.job_id) == ("event", "e1", "j1")
    assert alert.match.edits == ("Z>2",)


@pytest.mark.redis
def test_the_lists_command_adds_shows_and_removes(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    plates = tmp_path / "plates.csv"
    plates.write_text("plate,label\nABC123,stolen\nXYZ789,resident\n")
    url = ["--redis-url", settings.redis_url]
    assert cli_main(["lists", "add", "hot", "--file", str(plates), *url]) == 0
    assert cli_main(["lists", "show", *url]) == 0
    out = capsys.readouterr().out
    assert "hot: 2 plates" in out and "ABC123  stolen" in out
    assert cli_main(["lists", "remove", "hot", "--plate", "abc123", *url]) == 0
    assert [e.plate for e in WatchLists(redis_client).entries("hot")] == ["XYZ789"]
    assert cli_main(["lists", "remove", "hot", *url]) == 0
    assert WatchLists(redis_client).names() == []
    assert cli_main(["lists", "add", "hot", *url]) == 2  # no --file: a clear error


@pytest.mark.redis
def test_plate_ocr_watch_runs_from_the_command_line(
    redis_client: redis.Redis,
    watch_settings: Settings,
    make_reading: Any,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    WatchLists(redis_client).add("l", [WatchEntry(plate="ABC1234", label="x")])
    publish(redis_client, make_reading("j1", text="ABC1Z34"))  # Z for 2
    argv = ["watch", "--redis-url", watch_settings.redis_url]
    argv += ["--stream", watch_settings.results_stream, "--from-start", "--burst"]
    argv += ["--threshold", "0.5"]
    # The CLI's settings come from the environment; the alerts stream has no flag.
    monkeypatch.setenv("PLATE_OCR_ALERTS_STREAM", watch_settings.alerts_stream)
    assert cli_main(argv) == 0
    (alert,) = alerts_on(redis_client, watch_settings)
    assert alert.threshold == 0.5 and alert.match.edits == ("Z>2",)
