"""The results stream: how a reading is laid out as a stream entry, and how to read readings back.

The worker publishes each reading with `XADD <results_stream> MAXLEN ~ N * <stream_fields(r)>`;
every reader decodes entries with `parse_entry`. The `reading` field is the whole truth; the other
fields copy a few of its values so that `XRANGE`/`redis-cli` users and other languages can filter
without parsing JSON (a field whose value is null in the JSON is absent, never "").

Reading without a group is a broadcast (`XREAD`): each reader sees every reading, and nothing is
remembered between runs. Reading in a consumer group (`XREADGROUP`) splits the readings among the
group's consumers, and Redis remembers what each consumer was given. An entry is acknowledged when
the caller asks `follow()` for the next reading, i.e. after the caller has handled it: a consumer
that crashes mid-handling leaves that entry pending, and on restart under the same consumer name
it is delivered again before anything new. That is at-least-once delivery, so handlers should
deduplicate on `reading_id` (stable across retries of the same job). A consumer takes up to 100
entries per read (never more than the `count` it was asked for, so `tail --count N` leaves
nothing pending), so one that dies may leave that many pending. So that they are not stranded
when its name never comes back, every consumer of the group also takes over (XAUTOCLAIM) entries
left unacknowledged for `settings.stream_claim_idle_ms`; set it above the longest time a live
consumer may hold a batch, or a slow consumer's readings are handled twice.

`read_now()` is `follow()` for a person or a script that wants what is there and an exit: it
never blocks, and stops at the newest entry the stream held when it was called.
"""

import logging
import socket
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, cast

import redis
from pydantic import ValidationError

from plate_ocr.connection import Backoff, connect, retry_on_disconnect
from plate_ocr.constants import MAX_BLOCK_MS
from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings
from schemas import PlateReading

__all__ = [
    "MalformedEntry",
    "ReadingStream",
    "default_consumer_name",
    "parse_entry",
    "run_tail",
    "stream_fields",
]

log = logging.getLogger("plate_ocr.stream")

# Entries per XREAD (the module docstring quotes it): amortises the round trip, bounds memory.
_READ_COUNT = 100

Entry = tuple[bytes, dict[bytes, bytes]]


class MalformedEntry(PlateOcrError):
    """Raised when a stream entry is not a reading written by `stream_fields`."""

    def __init__(self, message: str, fields: Mapping[Any, Any]) -> None:
        super().__init__(message)
        self.fields = dict(fields)  # kept raw, for whoever investigates


def stream_fields(reading: PlateReading) -> dict[str, str]:
    """The fields of the stream entry that publishes `reading`. The one place this layout lives.

    Flat copies for filtering without JSON: `job_id`, `reading_id`, `status`, `text` (empty when
    nothing was read) and `confidence` always; `error_code` and `camera_id` only when the
    reading has one. A value that is null in the JSON is left out rather than written as "", so
    that an empty string always means an empty string. Numbers are written as the JSON has them.
    """
    fields = {
        "reading": reading.model_dump_json(),
        "job_id": reading.job_id,
        "reading_id": reading.reading_id,
        "status": reading.status,
        "text": reading.text,
        "confidence": repr(reading.confidence),
    }
    if reading.error is not None:
        fields["error_code"] = reading.error.code.value
    if reading.camera_id is not None:
        fields["camera_id"] = reading.camera_id
    return fields


def parse_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> PlateReading:
    """The reading carried by one stream entry's fields (bytes or str keys, as the client gives)."""
    raw = cast(Mapping[Any, Any], fields)
    document = raw.get(b"reading", raw.get("reading"))
    if document is None:
        raise MalformedEntry("stream entry has no 'reading' field", raw)
    try:
        return PlateReading.model_validate_json(document)
    except ValidationError as e:
        raise MalformedEntry(f"stream entry's 'reading' is not a PlateReading: {e}", raw) from e


def default_consumer_name() -> str:
    """Stable across restarts of the same host/container, so its pending entries are picked up."""
    return socket.gethostname()


class ReadingStream:
    """Reads PlateReadings from `settings.results_stream`."""

    def __init__(self, settings: Settings, *, connection: "redis.Redis | None" = None) -> None:
        self._redis = (
            connection
            if connection is not None
            else connect(settings, client_name="plate-ocr-stream")
        )
        self.name = settings.results_stream
        self._claim_idle_ms = settings.stream_claim_idle_ms
        self._backoff = Backoff(max_s=settings.reconnect_max_backoff_s)
        # The stream id of the reading follow() handed out last: its time part is when Redis
        # took the reading in, a clock every consumer shares (the events consolidator's).
        self.last_entry_id: bytes | None = None

    def read_all(self) -> list[PlateReading]:
        """Every reading still in the stream, oldest first (for tests, demos and small streams)."""
        entries = cast(list[Entry], self._redis.xrange(self.name))
        return [parse_entry(fields) for _, fields in entries]

    def follow(
        self,
        group: str | None = None,
        consumer: str | None = None,
        *,
        from_start: bool = False,
        block_ms: int = MAX_BLOCK_MS,
        count: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> Generator[PlateReading, None, None]:
        """Readings as they are published, blocking for new ones.

        from_start: begin at the oldest entry kept instead of the ones published from now on.
        With a group, this decides where a new group starts: without it a new group starts at
        `$`, so readings published before its creation are never delivered to it; a group that
        already exists goes on from where it stands either way (logged at INFO).
        count: stop after this many readings. idle_timeout_s: stop once no entry has arrived for
        this long (None: follow forever). `close()` the generator to stop without acknowledging
        the reading last handed out. Malformed entries are logged and skipped (and, in a
        group, acknowledged, so that one bad entry cannot wedge the group).
        """
        if consumer is not None and group is None:
            raise ConfigError("a consumer name only makes sense with a consumer group")
        block_ms = max(1, min(block_ms, MAX_BLOCK_MS))
        # The starting point is fixed now, not at the first next(): a reading published between
        # this call and the first iteration is not missed.
        if group is None:
            # "$" would be re-evaluated by every XREAD, dropping what arrives between two of them,
            # so resolve it once to the newest entry's id and always read after a concrete id.
            cursor = b"0-0" if from_start else self._newest_id()
            entries = self._plain_entries(cursor, block_ms, idle_timeout_s)
        else:
            self._ensure_group(group, from_start)
            name = consumer or default_consumer_name()
            entries = self._group_entries(
                group, name, from_start, block_ms, idle_timeout_s, limit=count
            )
        return self._deliver(entries, group, count)

    def read_now(
        self,
        group: str | None = None,
        consumer: str | None = None,
        *,
        from_start: bool = False,
        count: int | None = None,
    ) -> Generator[PlateReading, None, None]:
        """What the stream holds now, then stop (`plate-ocr tail --no-follow`); never blocks.

        Without a group: every reading kept, oldest first; with `count`, the newest `count` of
        them (the oldest `count` with `from_start`), as `tail` without `-f` prints a file's end.
        In a group: this consumer's pending entries, then those the group has not delivered yet,
        up to the newest entry at the call, acknowledged as `follow()` acknowledges; `from_start`
        decides where a new group starts, as in `follow()` (a new group without it starts at the
        stream's end, so it has nothing to give yet).
        """
        if consumer is not None and group is None:
            raise ConfigError("a consumer name only makes sense with a consumer group")
        newest = self._newest_id()
        if group is None:
            entries = self._held_entries(newest, from_start, count)
        else:
            self._ensure_group(group, from_start)
            name = consumer or default_consumer_name()
            entries = self._group_entries(
                group, name, from_start, MAX_BLOCK_MS, None, limit=count, until=newest
            )
        return self._deliver(entries, group, count)

    def _held_entries(self, newest: bytes, from_start: bool, count: int | None) -> Iterator[Entry]:
        if newest == b"0-0":  # empty, or no stream at all
            return
        if count is not None and not from_start:
            yield from self._newest_entries(newest, count)
            return
        start = b"-"
        while page := self._range(self._redis.xrange, "XRANGE", min=start, max=newest):
            yield from page
            start = b"(" + page[-1][0]  # exclusive: after the last one read

    def _newest_entries(self, newest: bytes, count: int) -> list[Entry]:
        """The newest `count` entries that hold a reading, up to `newest`, oldest first."""
        kept: list[Entry] = []
        end = newest
        while len(kept) < count and (
            page := self._range(self._redis.xrevrange, "XREVRANGE", max=end, min=b"-")
        ):
            # A malformed entry is skipped (and logged) when delivered: it must not take the
            # place of a reading here.
            kept += [e for e in page if _holds_reading(e[1])][: count - len(kept)]
            end = b"(" + page[-1][0]
        return kept[::-1]

    def _range(self, command: Callable[..., Any], what: str, **bounds: bytes) -> list[Entry]:
        reply = self._call(lambda: command(self.name, count=_READ_COUNT, **bounds), what)
        return cast(list[Entry], reply)

    def _deliver(
        self, entries: Iterator[Entry], group: str | None, count: int | None
    ) -> Generator[PlateReading, None, None]:
        delivered = 0
        if count is not None and count <= 0:
            return
        for entry_id, fields in entries:
            reading = self._parse_or_log(entry_id, fields)
            if reading is not None:
                self.last_entry_id = entry_id
                yield reading
                delivered += 1
            if group is not None:
                # Reached only when the caller asks for the next reading: it is done with this one.
                self._ack(group, entry_id)
            if count is not None and delivered >= count:
                return

    def _plain_entries(
        self, cursor: bytes, block_ms: int, idle_timeout_s: float | None
    ) -> Iterator[Entry]:
        def read(wait_ms: int) -> list[Entry]:
            nonlocal cursor
            reply = self._call(
                lambda: self._redis.xread({self.name: cursor}, count=_READ_COUNT, block=wait_ms),
                "XREAD",
            )
            entries = _entries_of(reply)
            if entries:
                cursor = entries[-1][0]
            return entries

        yield from _poll(read, block_ms, idle_timeout_s)

    def _group_entries(
        self,
        group: str,
        consumer: str,
        from_start: bool,
        block_ms: int,
        idle_timeout_s: float | None,
        *,
        limit: int | None = None,
        until: bytes | None = None,
    ) -> Iterator[Entry]:
        """This consumer's pending entries, then new ones: blocking for them until
        `idle_timeout_s`, or (`until` an entry id) without blocking, up to that entry."""
        taken = 0

        def wanted() -> int:
            # Never take from the group more than will be handed out: what a consumer takes and
            # never hands out stays pending under its name until someone claims it.
            return _READ_COUNT if limit is None else max(1, min(_READ_COUNT, limit - taken))

        def read(cursor: bytes, wait_ms: int | None) -> list[Entry]:
            try:
                reply = self._call(
                    lambda: self._redis.xreadgroup(
                        group, consumer, {self.name: cursor}, count=wanted(), block=wait_ms
                    ),
                    "XREADGROUP",
                )
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                # Redis came back without our group (restarted without persistence, or the
                # stream was deleted): recreate it rather than fail forever.
                self._ensure_group(group, from_start)
                return []
            return _entries_of(reply)

        # First what this consumer was given before a crash or restart and never acknowledged.
        # Reading from an id (not ">") returns our pending entries, and never blocks.
        cursor = b"0-0"
        while pending := read(cursor, None):
            for entry_id, fields in pending:
                cursor = entry_id
                taken += 1
                yield entry_id, fields
        claim = self._claimer(group, consumer, wanted)
        if until is None:
            more = _poll(lambda wait_ms: claim() or read(b">", wait_ms), block_ms, idle_timeout_s)
        else:
            more = _up_to(lambda: claim() or read(b">", None), until)
        for entry in more:
            taken += 1
            yield entry

    def _claimer(
        self, group: str, consumer: str, wanted: Callable[[], int]
    ) -> Callable[[], list[Entry]]:
        """Takes over entries other consumers of `group` have left pending too long.

        Scans the pending list at most twice per claim interval: a live consumer's entries are
        younger than that, so a healthy group pays one cheap XAUTOCLAIM now and then.
        """
        cursor = b"0-0"
        next_scan_at = time.monotonic()

        def claim() -> list[Entry]:
            nonlocal cursor, next_scan_at
            if self._claim_idle_ms == 0 or time.monotonic() < next_scan_at:
                return []
            reply = self._call(
                lambda: self._redis.xautoclaim(
                    self.name, group, consumer, self._claim_idle_ms, cursor, count=wanted()
                ),
                "XAUTOCLAIM",
            )
            # [next cursor, claimed entries, ids deleted from the stream (dropped by Redis)]
            cursor, claimed = reply[0], cast(list[Entry], reply[1])
            if cursor == b"0-0":  # scanned the whole pending list: rest until the next interval
                next_scan_at = time.monotonic() + self._claim_idle_ms / 2000
            if claimed:
                log.warning(
                    "%s took over %d readings left pending in group %s",
                    consumer,
                    len(claimed),
                    group,
                )
            return claimed

        return claim

    def create_group(self, group: str, *, from_start: bool = False) -> None:
        """Create `group` now, unless it exists, so that where it starts is fixed before a
        consumer first reads (at the stream's end, or its oldest entry with `from_start`)."""
        self._ensure_group(group, from_start)

    def _ack(self, group: str, entry_id: bytes) -> None:
        self._call(lambda: self._redis.xack(self.name, group, entry_id), "XACK")

    def _ensure_group(self, group: str, from_start: bool) -> None:
        try:
            self._call(
                lambda: self._redis.xgroup_create(
                    self.name, group, id="0" if from_start else "$", mkstream=True
                ),
                "XGROUP CREATE",
            )
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
            if from_start:
                # Redis keeps one position per group: replaying would take readings from the
                # other consumers' share. Said, so that nobody waits for a backlog that won't come;
                # at INFO, as a service that always passes from_start says it on every restart.
                log.info(
                    "group %s of %s already exists: from_start applies only to a new group; "
                    "it goes on from where the group stands",
                    group,
                    self.name,
                )

    def _newest_id(self) -> bytes:
        newest = cast(
            list[Entry], self._call(lambda: self._redis.xrevrange(self.name, count=1), "XREVRANGE")
        )
        return newest[0][0] if newest else b"0-0"

    def _parse_or_log(
        self, entry_id: bytes, fields: dict[bytes, bytes] | None
    ) -> PlateReading | None:
        if not fields:  # a pending entry trimmed from the stream after it was delivered
            return None
        try:
            return parse_entry(fields)
        except MalformedEntry as e:
            log.error("skipping malformed entry %s on %s: %s", entry_id.decode(), self.name, e)
            return None

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        # A tail or consumer outlives a Redis restart instead of dying with it.
        return retry_on_disconnect(call, backoff=self._backoff, what=f"{what} {self.name}")


def _entries_of(reply: Any) -> list[Entry]:
    # XREAD/XREADGROUP on one stream reply [[stream_name, [(id, fields), ...]]], or nothing.
    if not reply:
        return []
    return cast(list[Entry], reply[0][1])


def _poll(
    read: Callable[[int], list[Entry]], block_ms: int, idle_timeout_s: float | None
) -> Iterator[Entry]:
    """Blocking reads of at most `block_ms`, until `idle_timeout_s` passes without an entry."""
    last_entry_at = time.monotonic()
    while True:
        wait_ms = block_ms
        if idle_timeout_s is not None:
            left_ms = int((last_entry_at + idle_timeout_s - time.monotonic()) * 1000)
            wait_ms = max(1, min(wait_ms, left_ms))
        entries = read(wait_ms)
        yield from entries
        if entries:
            # Measured after the caller handled the batch: only time spent waiting on Redis counts.
            last_entry_at = time.monotonic()
        elif idle_timeout_s is not None and time.monotonic() - last_entry_at >= idle_timeout_s:
            # Checked only after a read, so a slow (busy) process still reads what is waiting.
            return


def _up_to(read: Callable[[], list[Entry]], until: bytes) -> Iterator[Entry]:
    """Non-blocking reads until one comes back empty or one reaches the entry `until`.

    A read's whole batch is handed out even past `until`: in a group it is already taken, and
    what is taken and never handed out stays pending.
    """
    last = _id_key(until)
    while entries := read():
        yield from entries
        if _id_key(entries[-1][0]) >= last:
            return


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _holds_reading(fields: Mapping[bytes, bytes]) -> bool:
    try:
        parse_entry(fields)
    except MalformedEntry:
        return False
    return True


def run_tail(
    settings: Settings,
    *,
    group: str | None,
    consumer: str | None,
    from_start: bool,
    count: int | None,
    follow: bool = True,
) -> int:
    """`plate-ocr tail`: print readings as JSON lines until `count` readings (or forever); with
    `follow=False` (`--no-follow`), what the stream holds now, then return."""
    stream = ReadingStream(settings)
    if follow:
        readings = stream.follow(group, consumer, from_start=from_start, count=count)
    else:
        readings = stream.read_now(group, consumer, from_start=from_start, count=count)
    for reading in readings:
        print(reading.model_dump_json(), flush=True)
    return 0
