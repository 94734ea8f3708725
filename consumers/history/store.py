"""`plate-ocr store --dsn postgresql://...`: readings and events into the PostgreSQL history.

Two consumer groups (`STORE_GROUP`, on the results and on the events stream). Entries are taken
in batches of up to `_BATCH`, written with `INSERT ... ON CONFLICT DO NOTHING` (idempotent on
`reading_id` and `event_id`: a redelivered entry, or a reading two stores both took over, is
one row) in one transaction, and acknowledged only after it commits: a store killed at any
point loses nothing and, whatever it writes again, stores nothing twice. With
`history_retention_days`, rows older than that are deleted once per `_RETENTION_EVERY_S`.
"""

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from consumers.group import Entry, GroupReader
from consumers.history.migrations import migrate
from consumers.stopping import stopped_by_signals
from consumers.watch.matcher import normalise_plate
from plate_ocr.connection import Backoff, connect
from plate_ocr.constants import STORE_GROUP
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from plate_ocr.stream import MalformedEntry, default_consumer_name, parse_entry
from schemas import PlateEvent

__all__ = ["HistoryStore", "run_store"]

log = logging.getLogger("consumers.history")

_BATCH = 500  # rows per transaction: one round trip in pipeline mode, short enough a commit
_BLOCK_MS = 500  # each stream in turn, so a quiet one does not hold up the other
_RETENTION_EVERY_S = 600.0

_INSERT_READING = """
INSERT INTO readings (reading_id, job_id, seen_at, camera_id, track_id, status, plate,
                      confidence, error_code, document)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (reading_id) DO NOTHING
"""
_INSERT_EVENT = """
INSERT INTO events (event_id, seen_at, first_seen, camera_id, track_id, plate, confidence,
                    reads, best_reading_id, best_job_id, document)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""


def history_dsn(settings: Settings) -> str:
    if settings.history_dsn is None:
        raise ConfigError("no history database: --dsn postgresql://... or PLATE_OCR_HISTORY_DSN")
    return settings.history_dsn.get_secret_value()


def _reading_row(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[Any, ...] | None:
    try:
        r = parse_entry(fields)
    except MalformedEntry as e:
        log.error("store skips malformed reading entry %s: %s", entry_id.decode(), e)
        return None
    document = Jsonb(r.model_dump(mode="json"))
    code = r.error.code.value if r.error else None
    plate = normalise_plate(r.text)
    return (r.reading_id, r.job_id, r.created_at, r.camera_id, r.track_id, r.status, plate,
            r.confidence, code, document)  # fmt: skip


def _event_row(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[Any, ...] | None:
    try:
        e = PlateEvent.model_validate_json(fields[b"event"])
    except (KeyError, ValidationError) as error:
        log.error("store skips malformed event entry %s: %s", entry_id.decode(), error)
        return None
    return (e.event_id, e.last_seen, e.first_seen, e.camera_id, e.track_id,
            normalise_plate(e.text), e.confidence, e.reads, e.best_reading_id, e.best_job_id,
            Jsonb(e.model_dump(mode="json")))  # fmt: skip


class HistoryStore:
    """Copies both streams into PostgreSQL."""

    def __init__(self, settings: Settings, *, consumer: str | None = None) -> None:
        self.settings = settings
        self._dsn = history_dsn(settings)
        self._redis = connect(settings, client_name="plate-ocr-store")
        self._consumer = consumer or default_consumer_name()
        self._stop = threading.Event()
        self._next_retention_at = 0.0
        self.stored = {"readings": 0, "events": 0}

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, from_start: bool = False, burst: bool = False) -> dict[str, int]:
        """Store until `stop()` (with `burst`: until both streams have nothing new)."""
        backoff = Backoff(max_s=self.settings.reconnect_max_backoff_s)
        s = self.settings
        readers = {
            name: GroupReader(
                self._redis,
                stream,
                STORE_GROUP,
                self._consumer,
                from_start=from_start,
                claim_idle_ms=s.stream_claim_idle_ms,
                backoff=backoff,
            )
            for name, stream in (("readings", s.results_stream), ("events", s.events_stream))
        }
        pg_backoff = Backoff(max_s=s.reconnect_max_backoff_s)
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, application_name="plate-ocr-store") as db:
                    migrate(db)
                    pg_backoff.reset()
                    if self._copy(db, readers, burst):
                        break
            except psycopg.OperationalError as e:
                # PostgreSQL restarted or the network dropped: what was taken and not committed
                # is still pending under our name, and is written again once we are back.
                delay = pg_backoff.next_delay_s()
                log.warning("lost PostgreSQL (%s); reconnecting in %.1f s", e, delay)
                for reader in readers.values():
                    reader.redeliver()
                self._stop.wait(delay)
        return self.stored

    def _copy(self, db: psycopg.Connection, readers: dict[str, GroupReader], burst: bool) -> bool:
        """Copy batches until stopped (False) or, with `burst`, drained (True)."""
        while not self._stop.is_set():
            self._apply_retention(db)
            idle = True
            for name, reader in readers.items():
                entries = reader.read(count=_BATCH, block_ms=_BLOCK_MS)
                if entries:
                    idle = False
                    self._write(db, name, entries)
                    reader.ack([entry_id for entry_id, _ in entries])  # after the commit
            if idle and burst:
                return True
        return False

    def _write(self, db: psycopg.Connection, name: str, entries: Sequence[Entry]) -> None:
        make_row = _reading_row if name == "readings" else _event_row
        rows = [row for i, f in entries if f and (row := make_row(i, f)) is not None]
        if not rows:
            return
        insert = _INSERT_READING if name == "readings" else _INSERT_EVENT
        try:
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany(insert, rows)
        except psycopg.DataError:
            # A value PostgreSQL refuses (a NUL character in a camera id, say) fails the whole
            # batch: write it row by row, each in a savepoint, so one bad row is skipped (and
            # said) instead of wedging the group on an entry that can never be stored.
            rows = self._write_each(db, name, insert, rows)
        self.stored[name] += len(rows)

    @staticmethod
    def _write_each(
        db: psycopg.Connection, name: str, insert: str, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        written = []
        with db.transaction():
            for row in rows:
                try:
                    with db.transaction():  # a savepoint
                        db.execute(insert, row)
                    written.append(row)
                except psycopg.DataError as e:
                    log.error("store skips %s %s, which PostgreSQL refuses: %s", name, row[0], e)
        return written

    def _apply_retention(self, db: psycopg.Connection) -> None:
        days = self.settings.history_retention_days
        if days is None or time.monotonic() < self._next_retention_at:
            return
        self._next_retention_at = time.monotonic() + _RETENTION_EVERY_S
        with db.transaction():
            for table in ("readings", "events"):
                query = sql.SQL(
                    "DELETE FROM {} WHERE seen_at < now() - make_interval(days => %s)"
                ).format(sql.Identifier(table))
                gone = db.execute(query, (days,)).rowcount
                if gone:
                    log.info("retention: %d %s older than %d days deleted", gone, table, days)


def run_store(settings: Settings, *, consumer: str | None, from_start: bool, burst: bool) -> int:
    """`plate-ocr store`: until SIGTERM/SIGINT (or, with `burst`, drained)."""
    store = HistoryStore(settings, consumer=consumer)
    with stopped_by_signals(store.stop):
        stored = store.run(from_start=from_start, burst=burst)
    log.info("store: %d readings, %d events", stored["readings"], stored["events"])
    return 0
