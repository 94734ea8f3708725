"""What the dashboard shows at one moment, read from Redis and never written to it.

Readings come from the results stream, events from the events stream (shown field by field, as
whoever publishes them lays them out), the queue and its workers from RQ's own registries, read
with RQ's API but without its clean-up side effects (`get_job_count(cleanup=False)`, and dead
workers' keys are skipped rather than removed), so that the dashboard never changes what
`rq info` or a worker sees.

Counting and search look at the newest `settings.dashboard_window` readings: the stream is
trimmed to `stream_maxlen` (100 000 by default), far more than a page needs to scan twice a
second. Filters on camera and status use the stream entries' flat fields, so only the entries
that pass them are parsed.
"""

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from plate_ocr.settings import Settings
from plate_ocr.stream import MalformedEntry, parse_entry

__all__ = ["Snapshot", "event_view", "normalise_plate", "parse_cursor", "reading_view"]

log = logging.getLogger("plate_ocr.consumers.dashboard")

Entry = tuple[bytes, dict[bytes, bytes]]

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_SCAN_CHUNK = 500  # entries per XREVRANGE while scanning the window


def normalise_plate(text: str) -> str:
    """What a plate search compares: letters and digits, upper case ("abc-123" finds ABC123)."""
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def parse_cursor(value: str | None) -> tuple[str, str] | None:
    """`READINGS_ID/EVENTS_ID` (the page's position on both streams), or None if malformed."""
    if not value:
        return None
    readings_id, _, events_id = value.partition("/")
    if _ENTRY_ID.match(readings_id) and _ENTRY_ID.match(events_id):
        return readings_id, events_id
    return None


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


class Snapshot:
    """Reads for one dashboard: readings, events, the queue, the workers, and crops' owners."""

    def __init__(self, settings: Settings, connection: "redis.Redis") -> None:
        self.settings = settings
        self.redis = connection
        self._queue = Queue(settings.queue, connection=connection, serializer=JSONSerializer)

    def newest_ids(self) -> tuple[str, str]:
        """The newest entry id of the results and the events stream ("0-0" when empty)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrevrange(self.settings.results_stream, count=1)
        pipe.xrevrange(self.settings.events_stream, count=1)
        newest = cast(list[list[Entry]], pipe.execute())
        readings_id, events_id = (_text(n[0][0]) if n else "0-0" for n in newest)
        return readings_id, events_id

    def readings(
        self,
        *,
        limit: int,
        camera: str | None = None,
        status: str | None = None,
        query: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The newest readings that pass the filters (newest first), and how many were scanned.

        `camera` "" picks readings without a camera; `query` matches part of the plate text.
        """
        wanted = normalise_plate(query) if query else ""
        found: list[dict[str, Any]] = []
        scanned = 0
        for entry_id, fields in self._newest(self.settings.results_stream):
            scanned += 1
            if camera is not None and _text(fields.get(b"camera_id")) != camera:
                continue
            if status and _text(fields.get(b"status")) != status:
                continue
            if wanted and wanted not in normalise_plate(_text(fields.get(b"text"))):
                continue
            if (view := reading_view(entry_id, fields)) is not None:
                found.append(view)
                if len(found) >= limit:
                    break
        return found, scanned

    def events(self, *, limit: int) -> list[dict[str, Any]]:
        """The newest entries of the events stream, newest first, each field as text."""
        entries = cast(list[Entry], self.redis.xrevrange(self.settings.events_stream, count=limit))
        return [event_view(entry_id, fields) for entry_id, fields in entries]

    def stats(self) -> dict[str, Any]:
        """Queue depth, RQ's registries, live workers, and counts over the recent readings."""
        queue = self._queue
        registries = {
            "started": StartedJobRegistry(queue=queue),
            "finished": FinishedJobRegistry(queue=queue),
            "failed": FailedJobRegistry(queue=queue),
        }
        counts = {name: r.get_job_count(cleanup=False) for name, r in registries.items()}
        per_camera: dict[str, Counter[str]] = {}
        per_error: Counter[str] = Counter()
        scanned = 0
        for _entry_id, fields in self._newest(self.settings.results_stream):
            scanned += 1
            status = _text(fields.get(b"status")) or "?"
            camera = _text(fields.get(b"camera_id"))
            per_camera.setdefault(camera, Counter())[status] += 1
            if status == "error":
                per_error[self._error_code(fields)] += 1
        return {
            "queue": self.settings.queue,
            "results_stream": self.settings.results_stream,
            "events_stream": self.settings.events_stream,
            "queued": queue.count,
            **counts,
            "workers": self._workers(),
            "window": scanned,
            "cameras": {cam: dict(c) for cam, c in sorted(per_camera.items())},
            "errors": dict(per_error.most_common()),
        }

    def _newest(self, stream: str) -> Iterator[Entry]:
        """Entries newest first, at most `dashboard_window`, fetched a chunk at a time."""
        left = self.settings.dashboard_window
        end = "+"
        while left > 0:
            chunk = cast(
                list[Entry],
                self.redis.xrevrange(stream, max=end, count=min(left, _SCAN_CHUNK)),
            )
            if not chunk:
                return
            yield from chunk
            left -= len(chunk)
            end = "(" + _text(chunk[-1][0])  # exclusive: the next chunk starts below this id

    @staticmethod
    def _error_code(fields: dict[bytes, bytes]) -> str:
        try:
            reading = parse_entry(fields)
        except MalformedEntry:
            return "malformed_entry"
        return reading.error.code.value if reading.error else "?"

    def _workers(self) -> list[dict[str, Any]]:
        # Only keys that still exist: RQ's find_by_key would delete a dead worker's name from
        # the registry, and the dashboard writes nothing.
        keys = Worker.all_keys(queue=self._queue)
        alive = [k for k, e in zip(keys, self._exist(keys), strict=True) if e]
        now = time.time()
        workers = []
        for key in alive:
            worker = Worker.find_by_key(key, connection=self.redis, serializer=JSONSerializer)
            if worker is None:
                continue
            beat = worker.last_heartbeat
            workers.append(
                {
                    "name": worker.name,
                    "state": worker.get_state(),
                    "hostname": worker.hostname,
                    "pid": worker.pid,
                    "heartbeat_age_s": None if beat is None else round(now - beat.timestamp(), 1),
                    "successful": worker.successful_job_count,
                    "failed": worker.failed_job_count,
                }
            )
        return sorted(workers, key=lambda w: str(w["name"]))

    def _exist(self, keys: list[str]) -> list[bool]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        return [bool(n) for n in pipe.execute()]


def reading_view(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """What the page gets for one results-stream entry; None (logged) for a malformed one."""
    try:
        reading = parse_entry(fields)
    except MalformedEntry as e:
        log.warning("dashboard skips malformed entry %s: %s", _text(entry_id), e)
        return None
    return {"entry_id": _text(entry_id), "reading": reading.model_dump(mode="json")}


def event_view(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """What the page gets for one events-stream entry: every field, as text."""
    return {
        "entry_id": _text(entry_id),
        "fields": {_text(k): _text(v) for k, v in fields.items()},
    }
