"""A consumer group on any of our streams, acknowledged explicitly by the caller.

`plate_ocr.stream.ReadingStream.follow()` acknowledges a reading when the next one is asked for;
the consumers here need more say: the webhook acknowledges only after a 2xx (or after parking
the entry in its dead-letter stream), the store after its transaction commits, the watcher after
its alerts are published. So `GroupReader.read()` hands out raw entries and `ack()` is called
by whoever handled them. As in ReadingStream: what this consumer took and never acknowledged (a
crash) comes first on restart, entries another consumer left pending longer than
`claim_idle_ms` are taken over (XAUTOCLAIM), and a group lost with Redis is recreated.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import redis

from plate_ocr.connection import Backoff, retry_on_disconnect

__all__ = ["Entry", "GroupReader"]

log = logging.getLogger("consumers.group")

Entry = tuple[bytes, dict[bytes, bytes]]


class GroupReader:
    """Reads `stream` as `consumer` of `group`; nothing is acknowledged behind the caller."""

    def __init__(
        self,
        connection: "redis.Redis",
        stream: str,
        group: str,
        consumer: str,
        *,
        from_start: bool = False,
        claim_idle_ms: int = 300_000,
        backoff: Backoff | None = None,
    ) -> None:
        self._redis = connection
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._from_start = from_start
        self._claim_idle_ms = claim_idle_ms
        self._backoff = backoff or Backoff(max_s=10.0)
        self._pending_done = False  # our own pending entries have been handed out again
        self._claim_cursor = b"0-0"
        self._next_claim_at = time.monotonic()
        self._ensure_group()

    def read(self, *, count: int, block_ms: int) -> list[Entry]:
        """Up to `count` entries: first our own unacknowledged ones, then any left too long by
        other consumers, then new ones (blocking up to `block_ms`). Entries whose data the
        stream has trimmed meanwhile come back with empty fields: acknowledge them too."""
        if not self._pending_done:
            pending = self._xreadgroup(b"0-0", count, None)
            if pending:
                return pending
            self._pending_done = True
        claimed = self._claim(count)
        if claimed:
            return claimed
        return self._xreadgroup(b">", count, block_ms)

    def redeliver(self) -> None:
        """Hand out this consumer's unacknowledged entries again, from the oldest (after the
        caller lost what it was writing them to, say)."""
        self._pending_done = False

    def ack(self, entry_ids: Sequence[bytes]) -> None:
        if entry_ids:
            self._call(lambda: self._redis.xack(self.stream, self.group, *entry_ids), "XACK")

    def _xreadgroup(self, cursor: bytes, count: int, block_ms: int | None) -> list[Entry]:
        try:
            reply = self._call(
                lambda: self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: cursor}, count=count, block=block_ms
                ),
                "XREADGROUP",
            )
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._ensure_group()  # Redis came back without it (no persistence, stream deleted)
            return []
        if not reply:
            return []
        return [(i, f or {}) for i, f in cast(list[Entry], reply[0][1])]

    def _claim(self, count: int) -> list[Entry]:
        if self._claim_idle_ms == 0 or time.monotonic() < self._next_claim_at:
            return []
        reply: Any = self._call(
            lambda: self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self._claim_idle_ms,
                self._claim_cursor,
                count=count,
            ),
            "XAUTOCLAIM",
        )
        self._claim_cursor, claimed = reply[0], cast(list[Entry], reply[1])
        if self._claim_cursor == b"0-0":  # the whole pending list scanned: rest a while
            self._next_claim_at = time.monotonic() + self._claim_idle_ms / 2000
        if claimed:
            log.warning(
                "%s took over %d entries of %s left pending in group %s",
                self.consumer,
                len(claimed),
                self.stream,
                self.group,
            )
        return [(i, f or {}) for i, f in claimed]

    def _ensure_group(self) -> None:
        try:
            self._call(
                lambda: self._redis.xgroup_create(
                    self.stream, self.group, id="0" if self._from_start else "$", mkstream=True
                ),
                "XGROUP CREATE",
            )
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _call(self, call: Any, what: str) -> Any:
        return retry_on_disconnect(call, backoff=self._backoff, what=f"{what} {self.stream}")
