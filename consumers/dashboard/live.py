"""Server-sent events: readings and vehicle events as they are published.

One XREAD follows both streams from the page's cursor (`READINGS_ID/EVENTS_ID`), so a page that
loaded a snapshot and then opens the stream at the snapshot's cursor misses nothing in between.
Every message's SSE id is the cursor after it: a browser that reconnects sends it back as
`Last-Event-ID` and resumes where it was. Each connection holds one Redis connection while it
blocks; a quiet stream still sends a comment line every block, which also lets the server notice
a page that went away.
"""

import json
import logging
from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio

from consumers.dashboard.snapshot import event_view, reading_view
from plate_ocr.connection import DISCONNECT_ERRORS
from plate_ocr.connection import async_connect as connect_async
from plate_ocr.constants import MAX_BLOCK_MS, REDIS_CONNECT_TIMEOUT_S, REDIS_SOCKET_TIMEOUT_S
from plate_ocr.settings import Settings

__all__ = ["RECONNECT_MS", "async_connect", "sse_messages"]

log = logging.getLogger("plate_ocr.consumers.dashboard")

RECONNECT_MS = 2000  # what the browser waits before reconnecting a dropped stream
_READ_COUNT = 100

AsyncRedis = redis.asyncio.Redis


def async_connect(settings: Settings) -> AsyncRedis:
    """An asyncio client for the settings' Redis (lazy: connects on first use; behind Sentinel,
    the current primary)."""
    return connect_async(
        settings,
        client_name="plate-ocr-dashboard-live",
        socket_timeout_s=REDIS_SOCKET_TIMEOUT_S,  # well above one block of MAX_BLOCK_MS
        connect_timeout_s=REDIS_CONNECT_TIMEOUT_S,
    )


def _message(kind: str, cursor: str, data: object) -> str:
    # json.dumps escapes newlines, so the data is always a single SSE "data:" line.
    return f"event: {kind}\nid: {cursor}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def sse_messages(
    connection: AsyncRedis,
    settings: Settings,
    cursor: tuple[str, str],
    *,
    block_ms: int = MAX_BLOCK_MS,
    idle_timeout_s: float | None = None,
) -> AsyncIterator[str]:
    """SSE messages (`reading` and `event`) after `cursor`, forever or until idle that long."""
    readings_id, events_id = cursor
    results, events = settings.results_stream, settings.events_stream
    block_ms = max(1, min(block_ms, MAX_BLOCK_MS))
    if idle_timeout_s is not None:
        block_ms = max(1, min(block_ms, int(idle_timeout_s * 1000)))
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        try:
            reply = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await connection.xread(
                    {results: readings_id, events: events_id}, count=_READ_COUNT, block=block_ms
                ),
            )
        except DISCONNECT_ERRORS as e:
            # End the response: the browser reconnects after RECONNECT_MS with the last id it
            # saw, and that request retries Redis. Nothing is lost, nothing is shown twice.
            log.warning("live stream lost Redis (%s); the page will reconnect", e)
            return
        if not reply:
            if idle_timeout_s is not None:
                return
            yield ": idle\n\n"
            continue
        for raw_name, entries in reply:
            name = raw_name.decode()
            for entry_id, fields in entries:
                if name == results:
                    readings_id = entry_id.decode()
                    view = reading_view(entry_id, fields)
                    kind = "reading"
                else:
                    events_id = entry_id.decode()
                    view = event_view(entry_id, fields)
                    kind = "event"
                if view is not None:
                    yield _message(kind, f"{readings_id}/{events_id}", view)
