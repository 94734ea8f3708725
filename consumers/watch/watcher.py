"""`plate-ocr watch`: readings (or vehicle events) matched against the watch lists, as alerts.

A consumer group (`WATCH_GROUP`) on the results stream, or with `source="events"` on the events
stream, so that one vehicle raises one alert however many crops of it were read. Each reading is
matched against every list entry that applies to it (its camera scope, not expired) with
`consumers.watch.matcher`; each match at `settings.watch_threshold` or above becomes one
`PlateAlert`, published once (consumers.watch.alerts), and the entry is acknowledged only after
its alerts are out. Lists are reloaded whenever their version moves (consumers.watch.lists).
"""

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from consumers.group import Entry, GroupReader
from consumers.stopping import STOP_SIGNALS, stopped_by_signals
from consumers.watch.alerts import AlertPublisher
from consumers.watch.index import PlateIndex
from consumers.watch.lists import WatchLists
from consumers.watch.matcher import Candidate, Match, event_candidates, reading_candidates
from plate_ocr.connection import Backoff, connect, retry_on_disconnect
from plate_ocr.constants import MAX_BLOCK_MS, WATCH_GROUP
from plate_ocr.settings import Settings
from plate_ocr.stream import MalformedEntry, default_consumer_name, parse_entry
from schemas import (
    AlertMatch,
    PlateAlert,
    PlateEvent,
    PlateReading,
    WatchEntry,
    alert_id_for,
)

__all__ = ["Sighting", "Watcher", "run_watch"]

log = logging.getLogger("consumers.watch")

Source = Literal["readings", "events"]
_BATCH = 100
_IDLE_TICK_MS = 1000  # a quiet watcher looks up this often (for stop() and --burst)


class Sighting:
    """What is matched: a reading's or an event's candidates and where they came from."""

    def __init__(self, subject: PlateReading | PlateEvent) -> None:
        self.candidates: tuple[Candidate, ...]
        if isinstance(subject, PlateReading):
            self.source: Literal["reading", "event"] = "reading"
            self.id = subject.reading_id
            self.text = subject.text
            self.reading_id, self.job_id, self.event_id = subject.reading_id, subject.job_id, None
            self.seen_at = subject.created_at
            self.candidates = reading_candidates(subject) if subject.status == "ok" else ()
        else:
            self.source = "event"
            self.id = subject.event_id
            self.text = subject.text
            self.reading_id, self.job_id = subject.best_reading_id, subject.best_job_id
            self.event_id = subject.event_id
            self.seen_at = subject.last_seen
            self.candidates = event_candidates(subject)
        self.camera_id = subject.camera_id
        self.track_id = subject.track_id


class Watcher:
    """Matches one stream's readings or events against the lists, publishing alerts."""

    def __init__(
        self, settings: Settings, *, source: Source = "readings", consumer: str | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self._redis = connect(settings, client_name="plate-ocr-watch")
        self._lists = WatchLists(self._redis)
        self._publisher = AlertPublisher(settings, self._redis)
        self._consumer = consumer or default_consumer_name()
        self._stream = settings.results_stream if source == "readings" else settings.events_stream
        self._version = -1
        self._indices: dict[str, tuple[PlateIndex, dict[str, WatchEntry]]] = {}
        self._stop = threading.Event()
        self._backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        self.alerts_published = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, from_start: bool = False, burst: bool = False) -> int:
        """Watch until `stop()` (with `burst`: until the stream has nothing new). Returns the
        number of alerts published."""
        reader = GroupReader(
            self._redis,
            self._stream,
            WATCH_GROUP,
            self._consumer,
            from_start=from_start,
            claim_idle_ms=self.settings.stream_claim_idle_ms,
            backoff=self._backoff,
        )
        while not self._stop.is_set():
            entries = reader.read(count=_BATCH, block_ms=min(_IDLE_TICK_MS, MAX_BLOCK_MS))
            if not entries:
                if burst:
                    break
                continue
            self._reload_if_changed()
            for entry in entries:
                if self._stop.is_set():
                    return self.alerts_published  # the rest stays pending, handled on restart
                self.handle(entry)
                reader.ack([entry[0]])
        return self.alerts_published

    def handle(self, entry: Entry) -> list[PlateAlert]:
        """The alerts of one stream entry, published (or found published already)."""
        entry_id, fields = entry
        subject = self._parse(entry_id, fields)
        if subject is None:
            return []
        sighting = Sighting(subject)
        alerts = [self._alert(sighting, name, e, m) for name, e, m in self.matches(sighting)]
        for alert in alerts:
            if self._publish(alert):
                self.alerts_published += 1
                log.info(
                    "alert: %s on list %s (%s, score %.2f) at %s",
                    alert.entry.plate,
                    alert.watch_list,
                    alert.match.kind,
                    alert.score,
                    alert.camera_id,
                )
        return alerts

    def _publish(self, alert: PlateAlert) -> bool:
        def publish() -> bool:
            return self._publisher.publish(alert)

        return retry_on_disconnect(publish, backoff=self._backoff, what="alert publish")

    def matches(self, sighting: Sighting) -> list[tuple[str, WatchEntry, Match]]:
        """(list, entry, match) for every entry that applies to the sighting and matches it."""
        if not sighting.candidates:
            return []
        if self._version < 0:
            self._reload_if_changed()
        now = datetime.now(UTC)
        found = []
        for name, (index, entries) in sorted(self._indices.items()):
            for match in index.matches(sighting.candidates, self.settings.watch_threshold):
                entry = entries[match.plate]
                if entry.camera_id is not None and entry.camera_id != sighting.camera_id:
                    continue
                if entry.expires_at is not None and entry.expires_at <= now:
                    continue
                found.append((name, entry, match))
        return found

    def _alert(self, s: Sighting, name: str, entry: WatchEntry, match: Match) -> PlateAlert:
        return PlateAlert(
            alert_id=alert_id_for(s.id, name, entry.plate),
            watch_list=name,
            entry=entry,
            plate_read=s.text,
            match=AlertMatch(
                kind=match.kind,  # type: ignore[arg-type]  # validated by the model
                candidate=match.candidate,
                candidate_rank=match.candidate_rank,
                candidate_probability=min(match.candidate_probability, 1.0),
                distance=match.distance,
                edits=match.edits,
            ),
            score=match.score,
            threshold=self.settings.watch_threshold,
            source=s.source,
            camera_id=s.camera_id,
            track_id=s.track_id,
            reading_id=s.reading_id,
            job_id=s.job_id,
            event_id=s.event_id,
            seen_at=s.seen_at,
        )

    def _reload_if_changed(self) -> None:
        current = retry_on_disconnect(self._lists.version, backoff=self._backoff, what="lists")
        if current == self._version:
            return
        version, lists = retry_on_disconnect(self._lists.load, backoff=self._backoff, what="lists")
        self._indices = {
            name: (PlateIndex(e.plate for e in entries), {e.plate: e for e in entries})
            for name, entries in lists.items()
        }
        self._version = version
        log.info(
            "watch lists (version %d): %s",
            version,
            ", ".join(f"{n} ({len(i)})" for n, (i, _) in self._indices.items()) or "none",
        )

    def _parse(
        self, entry_id: bytes, fields: dict[bytes, bytes]
    ) -> PlateReading | PlateEvent | None:
        if not fields:
            return None  # trimmed from the stream before we got to it
        try:
            if self.source == "readings":
                return parse_entry(fields)
            return PlateEvent.model_validate_json(fields[b"event"])
        except (MalformedEntry, ValidationError, KeyError) as e:
            log.error("skipping malformed entry %s on %s: %s", entry_id.decode(), self._stream, e)
            return None


def run_watch(
    settings: Settings,
    *,
    source: Source,
    consumer: str | None,
    from_start: bool,
    burst: bool,
    stop_signals: Sequence[signal.Signals] = STOP_SIGNALS,
) -> int:
    """`plate-ocr watch`: until SIGTERM/SIGINT (or, with `burst`, the stream is drained)."""
    watcher = Watcher(settings, source=source, consumer=consumer)
    with stopped_by_signals(watcher.stop, stop_signals):
        published = watcher.run(from_start=from_start, burst=burst)
    log.info("watch: %d alerts published", published)
    return 0
