"""`plate-ocr events`: one `PlateEvent` per vehicle, from the readings of its track.

A consumer group (`EVENTS_GROUP`) on the results stream, so several consolidators can share the
work. Each reading with a `track_id` joins the state of its `(camera_id, track_id)` in Redis;
a track is closed, voted on (`consumers.events.consensus`) and published on `settings.events_stream`
once it has been quiet for `events_idle_timeout_s`, or open for `events_max_duration_s`.

Exactly once, whatever is killed when:
- a reading joins its track in one script that also sets its seen marker, so a redelivered
  reading (taken, not yet acknowledged when the process died) is never counted twice;
- the event id is derived from the track and the reading that opened it, and the event is
  published in one script that checks the state it was computed from, sets the published
  marker, appends to the events stream and deletes the track; a crash before it leaves the
  track in Redis for the next sweep (by this or any other consolidator), none after it can
  publish it again.

Time is the results stream's own: the time part of a reading's entry id (Redis's clock when the
worker published it). While catching up on a backlog, a track falls due only when readings
published after its deadline have been read, so a restarted consolidator does not cut tracks in
two; once caught up, Redis's current time is the watermark. With several consolidators in the
group, a track is cut where it went quiet as long as none of them lags the stream by more than
the idle timeout (one that does can split a track: two events, never a lost or repeated one).
"""

import json
import logging
import threading
import time
from typing import Any, cast

import redis

from consumers.events.event import build_event, event_fields
from consumers.events.scripts import ADD, PUBLISH
from consumers.stopping import stopped_by_signals
from plate_ocr.connection import Backoff, connect, retry_on_disconnect
from plate_ocr.constants import (
    EVENT_PUBLISHED_KEY_PREFIX,
    EVENTS_GROUP,
    OPEN_TRACKS_KEY_PREFIX,
    PUBLISHED_TTL_S,
    TRACK_KEY_PREFIX,
    TRACK_SEEN_KEY_PREFIX,
)
from plate_ocr.errors import PlateOcrError
from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream, default_consumer_name
from schemas import PlateEvent, PlateReading, event_id_for

__all__ = ["Consolidator", "run_events"]

log = logging.getLogger("plate_ocr.consumers.events")

_SWEEP_BATCH = 100  # due tracks closed per sweep round trip
_ADD_ATTEMPTS = 5  # a reading past its track's deadline: close the track, then add again


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


class Consolidator:
    """Groups tracked readings into vehicle events; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: str | None = None,
        connection: "redis.Redis | None" = None,
    ) -> None:
        self.settings = settings
        self._redis = (
            connection
            if connection is not None
            else connect(settings, client_name="plate-ocr-events")
        )
        self._consumer = consumer or default_consumer_name()
        self._stream = ReadingStream(settings, connection=self._redis)
        events = settings.events_stream
        self._open_tracks = f"{OPEN_TRACKS_KEY_PREFIX}{events}"
        self._add = self._redis.register_script(ADD)
        self._publish = self._redis.register_script(PUBLISH)
        self._idle_ms = int(settings.events_idle_timeout_s * 1000)
        self._max_ms = int(settings.events_max_duration_s * 1000)
        # Sweep often enough that an event leaves at most a quarter of the idle time late.
        self._tick_s = min(settings.events_idle_timeout_s / 4, 1.0)
        self._backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        self._stop = threading.Event()
        self.events_published = 0
        self.readings_taken = 0

    def stop(self) -> None:
        """Ask `run()` to return after the reading in hand (from a signal handler or a thread)."""
        self._stop.set()

    def run(self, *, from_start: bool = False, burst: bool = False) -> int:
        """Consolidate until `stop()`; with `burst`, until the stream is drained and no track is
        left open (each closes on its idle timeout). Returns the number of events published."""
        next_sweep = time.monotonic()
        while not self._stop.is_set():
            readings = self._stream.follow(
                EVENTS_GROUP, self._consumer, from_start=from_start, idle_timeout_s=self._tick_s
            )
            caught_up = True
            for reading in readings:
                self.take(reading, self._stream.last_entry_id or b"0-0")
                if self._stop.is_set():
                    caught_up = False
                    readings.close()  # the reading in hand is redelivered: its marker dedupes it
                    break
                if time.monotonic() >= next_sweep:
                    self.sweep(_entry_ms(self._stream.last_entry_id or b"0-0"))
                    next_sweep = time.monotonic() + self._tick_s
            if caught_up:
                # follow() returned: nothing new for a tick, so Redis's clock is the watermark.
                self.sweep(self._now_ms())
                next_sweep = time.monotonic() + self._tick_s
                if burst and self._open_count() == 0:
                    break
        return self.events_published

    def take(self, reading: PlateReading, entry_id: bytes) -> None:
        """Add one reading (stream entry `entry_id`) to its track, or pass it through."""
        self.readings_taken += 1
        if reading.status != "ok":
            return  # an error reading says nothing about the plate
        track_id = reading.track_id
        if track_id is None:
            if self.settings.events_single_reads:
                self._publish_event(build_event([reading], closed_by="single_read"), "", "")
            return
        events = self.settings.events_stream
        entry_ms = _entry_ms(entry_id)
        args: list[str | int] = [
            self._track_key(reading.camera_id, track_id),
            self._open_tracks,
            f"{TRACK_SEEN_KEY_PREFIX}{events}:{reading.reading_id}",
            PUBLISHED_TTL_S,
            reading.reading_id,
            reading.model_dump_json(),
            entry_ms,
            self._idle_ms,
            self._max_ms,
            reading.camera_id or "",
            track_id,
        ]
        for _ in range(_ADD_ATTEMPTS):
            if int(self._call(lambda: self._add(args=args), "ADD track reading")) >= 0:
                return
            # Its track fell due before this reading was published (read from a backlog):
            # close it as of this reading's time, so the reading opens the next one.
            self.sweep(entry_ms)
        raise PlateOcrError(f"track {track_id!r} would not close (a runaway clock?)")

    def sweep(self, watermark_ms: int) -> int:
        """Close and publish every track due by `watermark_ms`; returns how many were published."""
        published = 0
        while True:
            due = cast(
                list[bytes],
                self._call(
                    lambda: self._redis.zrangebyscore(
                        self._open_tracks, "-inf", watermark_ms, start=0, num=_SWEEP_BATCH
                    ),
                    "ZRANGEBYSCORE open tracks",
                ),
            )
            closed = [self._close(key) for key in due]
            published += sum(1 for c in closed if c == 1)
            # A stale close (-1: a reading joined meanwhile) stays due only if it still is.
            if len(due) < _SWEEP_BATCH or all(c == -1 for c in closed):
                return published

    def _close(self, key: bytes) -> int:
        state = cast(
            dict[bytes, bytes], self._call(lambda: self._redis.hgetall(key), "HGETALL track")
        )
        if not state:  # closed by another consolidator between the scan and now
            self._call(lambda: self._redis.zrem(self._open_tracks, key), "ZREM open track")
            return 0
        readings = [
            PlateReading.model_validate_json(v) for k, v in state.items() if k.startswith(b"r:")
        ]
        opened_ms, last_ms = int(state[b"opened_ms"]), int(state[b"last_ms"])
        closed_by = (
            "max_duration" if opened_ms + self._max_ms <= last_ms + self._idle_ms else "idle"
        )
        camera = state[b"camera"].decode() or None
        event_id = event_id_for(camera, state[b"track"].decode(), state[b"first"].decode())
        event = build_event(readings, closed_by=closed_by, event_id=event_id)
        return self._publish_event(event, key.decode(), state[b"n"].decode())

    def _publish_event(self, event: PlateEvent, track_key: str, expected_n: str) -> int:
        events = self.settings.events_stream
        pairs = [part for item in event_fields(event).items() for part in item]
        done = int(
            self._call(
                lambda: self._publish(
                    args=[
                        track_key,
                        self._open_tracks,
                        f"{EVENT_PUBLISHED_KEY_PREFIX}{events}:{event.event_id}",
                        PUBLISHED_TTL_S,
                        expected_n,
                        events,
                        self.settings.stream_maxlen,
                        *pairs,
                    ]
                ),
                "PUBLISH event",
            )
        )
        if done == 1:
            self.events_published += 1
            log.info(
                "event %s camera=%s track=%s text=%s reads=%d agreeing=%d",
                event.event_id,
                event.camera_id,
                event.track_id,
                event.text,
                event.reads,
                event.agreeing_reads,
            )
        return done

    def _track_key(self, camera_id: str | None, track_id: str) -> str:
        # JSON keeps (camera, track) unambiguous whatever characters either holds.
        ident = json.dumps([camera_id or "", track_id], separators=(",", ":"))
        return f"{TRACK_KEY_PREFIX}{self.settings.events_stream}:{ident}"

    def _open_count(self) -> int:
        return int(self._call(lambda: self._redis.zcard(self._open_tracks), "ZCARD open tracks"))

    def _now_ms(self) -> int:
        seconds, micros = cast(tuple[int, int], self._call(self._redis.time, "TIME"))
        return int(seconds) * 1000 + int(micros) // 1000

    def _call(self, call: Any, what: str) -> Any:
        return retry_on_disconnect(call, backoff=self._backoff, what=what)


def run_events(settings: Settings, *, consumer: str | None, from_start: bool, burst: bool) -> int:
    """`plate-ocr events`: consolidate until SIGTERM/SIGINT (or, with `burst`, drained)."""
    consolidator = Consolidator(settings, consumer=consumer)
    with stopped_by_signals(consolidator.stop):
        published = consolidator.run(from_start=from_start, burst=burst)
    log.info("events: %d published from %d readings", published, consolidator.readings_taken)
    return 0
