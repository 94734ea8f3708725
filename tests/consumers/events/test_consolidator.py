"""The events consolidator on the real Redis: one event per track, whatever is killed when."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from consumers.events.consolidator import Consolidator
from plate_ocr.constants import EVENTS_GROUP
from plate_ocr.settings import Settings
from schemas import CharacterReading, PlateEvent, PlateReading, event_id_for

pytestmark = pytest.mark.redis

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def event_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "events_stream": f"test-events:{uuid.uuid4().hex[:12]}",
            "events_idle_timeout_s": 0.4,
        }
    )


def events(client: redis.Redis, settings: Settings) -> list[PlateEvent]:
    return [
        PlateEvent.model_validate_json(fields[b"event"])
        for _, fields in client.xrange(settings.events_stream)
    ]


def noisy(plate: str, rng: random.Random) -> tuple[str, float]:
    """One read of `plate` as a passing car gives it: mostly right, sometimes a slip."""
    roll = rng.random()
    if roll < 0.25:
        k = rng.randrange(len(plate))
        return plate[:k] + rng.choice("8B0D1I") + plate[k + 1 :], 0.45
    if roll < 0.35:
        k = rng.randrange(len(plate))
        return plate[:k] + plate[k + 1 :], 0.5
    return plate, rng.uniform(0.6, 0.95)


class Tracks:
    """Synthetic tracked readings: `plates[(camera, track)]` is the truth of each."""

    def __init__(self, make_reading: MakeReading, *, tracks: int, reads: int, seed: int) -> None:
        rng = random.Random(seed)
        self.plates: dict[tuple[str, str], str] = {}
        self.readings: list[PlateReading] = []
        for t in range(tracks):
            camera, track = f"cam-{t % 3}", f"car-{t}"
            plate = f"{rng.choice('ABCDEFGH')}{rng.choice('KLMNPRST')}X{t:04d}"
            self.plates[(camera, track)] = plate
            for r in range(reads):
                text, confidence = noisy(plate, rng)
                self.readings.append(
                    make_reading(
                        f"t{t}-r{r}-{seed}",
                        text=text,
                        confidence=confidence,
                        characters=tuple(
                            CharacterReading(char=c, confidence=confidence, box=(0, 0, 1, 1), row=0)
                            for c in text
                        ),
                        camera_id=camera,
                        track_id=track,
                    )
                )

    def in_waves(self, width: int, reads: int) -> Iterator[PlateReading]:
        """Tracks `width` at a time, their reads interleaved, as cars passing several cameras."""
        for start in range(0, len(self.readings), width * reads):
            wave = self.readings[start : start + width * reads]
            yield from sorted(wave, key=lambda r: int(r.job_id.split("-r")[1].split("-")[0]))


def assert_one_event_per_track(tracks: Tracks, got: list[PlateEvent]) -> None:
    per_track = Counter((e.camera_id, e.track_id) for e in got)
    assert per_track == Counter(tracks.plates.keys()), "exactly one event per track"
    assert len({e.event_id for e in got}) == len(got)
    assert sum(e.reads for e in got) == len(tracks.readings), "no reading lost or counted twice"
    right = sum(e.text == tracks.plates[(e.camera_id or "", e.track_id or "")] for e in got)
    assert right == len(got)


def test_a_burst_of_tracks_gives_exactly_one_voted_event_per_track(
    event_settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    tracks = Tracks(make_reading, tracks=40, reads=7, seed=1)
    for reading in tracks.in_waves(width=4, reads=7):
        publish(redis_client, reading)
    consolidator = Consolidator(event_settings, consumer="c1", connection=redis_client)
    assert consolidator.run(from_start=True, burst=True) == 40
    got = events(redis_client, event_settings)
    assert_one_event_per_track(tracks, got)
    # Voting beats single reads on these tracks, or the test data is too easy to mean anything.
    single = sum(
        r.text == tracks.plates[(r.camera_id or "", r.track_id or "")] for r in tracks.readings
    )
    assert single < len(tracks.readings)
    event = got[0]
    assert event.closed_by == "idle"
    assert event.best_reading_id in event.reading_ids
    assert 0 < event.agreeing_reads <= event.reads == 7
    assert event.first_seen <= event.last_seen
    assert event.candidates[0].text == event.text
    first = min(
        (r for r in tracks.readings if r.track_id == event.track_id),
        key=lambda r: (r.created_at, r.reading_id),
    )
    assert event.event_id == event_id_for(event.camera_id, event.track_id, first.reading_id)
    # Nothing left behind: every open track was closed and deleted.
    assert redis_client.keys(f"plate-ocr:track:{event_settings.events_stream}:*") == []


def test_two_consolidators_in_one_group_publish_each_track_once(
    event_settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    tracks = Tracks(make_reading, tracks=30, reads=6, seed=2)
    for reading in tracks.in_waves(width=5, reads=6):
        publish(redis_client, reading)
    pair = [
        Consolidator(
            event_settings,
            consumer=f"c{i}",
            connection=redis.Redis.from_url(event_settings.redis_url),
        )
        for i in range(2)
    ]
    # Create the group before either reads, so neither starts at "$".
    redis_client.xgroup_create(event_settings.results_stream, EVENTS_GROUP, id="0", mkstream=True)
    threads = [threading.Thread(target=c.run, kwargs={"burst": True}) for c in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sum(c.events_published for c in pair) == 30
    assert_one_event_per_track(tracks, events(redis_client, event_settings))


def test_a_redelivered_reading_is_not_counted_twice(
    event_settings: Settings, redis_client: redis.Redis, make_reading: MakeReading
) -> None:
    consolidator = Consolidator(event_settings, connection=redis_client)
    reading = make_reading("j1", camera_id="cam", track_id="car")
    consolidator.take(reading, b"1000-0")
    consolidator.take(reading, b"1000-0")
    consolidator.take(make_reading("j2", camera_id="cam", track_id="car"), b"1100-0")
    assert consolidator.sweep(1100 + 400) == 1
    (event,) = events(redis_client, event_settings)
    assert event.reads == 2
    # A replay after the track closed opens nothing either.
    consolidator.take(reading, b"1000-0")
    assert consolidator.sweep(10_000) == 0


def test_a_track_closes_on_its_idle_timeout_or_its_max_duration_in_stream_time(
    event_settings: Settings, redis_client: redis.Redis, make_reading: MakeReading
) -> None:
    settings = event_settings.model_copy(
        update={"events_idle_timeout_s": 3.0, "events_max_duration_s": 10.0}
    )
    consolidator = Consolidator(settings, connection=redis_client)

    def take(job: str, at_ms: int, track: str) -> None:
        consolidator.take(make_reading(job, camera_id="cam", track_id=track), f"{at_ms}-0".encode())

    take("a1", 0, "a")
    take("a2", 2_000, "a")
    assert consolidator.sweep(4_999) == 0  # quiet for 2.999 s only
    take("a3", 4_500, "a")  # joins the same track: still within 3 s of a2
    assert consolidator.sweep(7_500) == 1
    for k in range(12):  # a parked car read every second: the 11th falls past 10 s
        take(f"p{k}", 20_000 + 1_000 * k, "parked")
    assert consolidator.events_published == 2
    assert consolidator.sweep(20_000 + 11_000 + 2_999) == 0
    assert consolidator.sweep(20_000 + 11_000 + 3_000) == 1  # the rest, once quiet
    got = events(redis_client, settings)
    assert [(e.track_id, e.reads, e.closed_by) for e in got] == [
        ("a", 3, "idle"),
        ("parked", 10, "max_duration"),
        ("parked", 2, "idle"),
    ]
    assert got[1].event_id != got[2].event_id


def test_untracked_and_error_readings_become_events_only_when_asked(
    event_settings: Settings, redis_client: redis.Redis, make_reading: MakeReading
) -> None:
    untracked, failed = make_reading("u1", camera_id="cam"), make_reading("e1", status="error")
    Consolidator(event_settings, connection=redis_client).take(untracked, b"1-0")
    assert events(redis_client, event_settings) == []
    passing = Consolidator(
        event_settings.model_copy(update={"events_single_reads": True}), connection=redis_client
    )
    for reading in (untracked, untracked, failed):
        passing.take(reading, b"1-0")
    (event,) = events(redis_client, event_settings)
    assert (event.closed_by, event.reads, event.text) == ("single_read", 1, untracked.text)
    assert event.best_reading_id == untracked.reading_id


def consolidator_process(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PLATE_OCR_EVENTS_STREAM": settings.events_stream}
    command = [sys.executable, "-m", "plate_ocr.cli", "--redis-url", settings.redis_url]
    command += ["--stream", settings.results_stream, "events", "--from-start", "--consumer", "k1"]
    command += ["--idle-timeout-s", str(settings.events_idle_timeout_s)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_consolidator_sigkilled_mid_run_and_restarted_loses_no_track_and_repeats_no_event(
    event_settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    tracks = Tracks(make_reading, tracks=36, reads=6, seed=3)
    stream = event_settings.events_stream

    def cameras() -> None:  # cars passing at camera pace while the consolidator dies and returns
        for reading in tracks.in_waves(width=3, reads=6):
            publish(redis_client, reading)
            time.sleep(0.01)

    feeder = threading.Thread(target=cameras)
    open_at_kill: list[int] = []
    proc = consolidator_process(event_settings)
    feeder.start()
    try:
        for after in (3, 12):
            wait_for(lambda n=after: redis_client.xlen(stream) >= n, 60, f"{after} events")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            open_at_kill.append(redis_client.zcard(f"plate-ocr:open-tracks:{stream}"))
            proc = consolidator_process(event_settings)
        feeder.join(timeout=60)
        wait_for(lambda: redis_client.xlen(stream) >= 36, 60, "every event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        feeder.join(timeout=60)
    assert_one_event_per_track(tracks, events(redis_client, event_settings))
    assert all(n > 0 for n in open_at_kill), "each kill left tracks open, to be finished"
