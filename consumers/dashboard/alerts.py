"""Watch-list alerts on the dashboard: the newest ones, and the live stream of new ones.

Alerts (`plate-ocr watch`, consumers/watch/) live on `settings.alerts_stream`; the page loads
the newest and then follows the stream from that point with its own server-sent events
(`/api/alerts/stream`, resuming from `Last-Event-ID`), apart from the readings' stream so that
the readings' cursor keeps its form. Read-only, like the rest of the dashboard.
"""

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import redis

from consumers.dashboard.live import RECONNECT_MS, AsyncRedis
from plate_ocr.connection import DISCONNECT_ERRORS
from plate_ocr.constants import MAX_BLOCK_MS
from plate_ocr.settings import Settings

__all__ = ["alert_messages", "alert_view", "newest_alerts", "parse_alert_cursor"]

log = logging.getLogger("plate_ocr.dashboard")

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
Entry = tuple[bytes, dict[bytes, bytes]]


def parse_alert_cursor(value: str | None) -> str | None:
    return value if value and _ENTRY_ID.match(value) else None


def alert_view(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """What the page gets for one alert entry; None (logged) when it holds no alert JSON."""
    try:
        alert = json.loads(fields[b"alert"])
    except (KeyError, ValueError) as e:
        log.warning("dashboard skips malformed alert %s: %s", entry_id.decode(), e)
        return None
    return {"entry_id": entry_id.decode(), "alert": alert}


def newest_alerts(connection: "redis.Redis", settings: Settings, limit: int) -> dict[str, Any]:
    entries = cast(list[Entry], connection.xrevrange(settings.alerts_stream, count=limit))
    views = [v for i, f in entries if (v := alert_view(i, f)) is not None]
    return {"alerts": views, "cursor": entries[0][0].decode() if entries else "0-0"}


async def alert_messages(
    connection: AsyncRedis,
    settings: Settings,
    cursor: str,
    *,
    idle_timeout_s: float | None = None,
) -> AsyncIterator[str]:
    """SSE `alert` messages after `cursor`, forever or until idle that long."""
    block_ms = MAX_BLOCK_MS
    if idle_timeout_s is not None:
        block_ms = max(1, min(block_ms, int(idle_timeout_s * 1000)))
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        try:
            reply: Any = await connection.xread(
                {settings.alerts_stream: cursor}, count=100, block=block_ms
            )
        except DISCONNECT_ERRORS as e:
            log.warning("alerts stream lost Redis (%s); the page will reconnect", e)
            return
        if not reply:
            if idle_timeout_s is not None:
                return
            yield ": idle\n\n"
            continue
        for entry_id, fields in cast(list[Entry], reply[0][1]):
            cursor = entry_id.decode()
            view = alert_view(entry_id, fields)
            if view is not None:
                data = json.dumps(view, separators=(",", ":"))
                yield f"event: alert\nid: {cursor}\ndata: {data}\n\n"
