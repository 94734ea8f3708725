"""The live stream's generator, on its own: what it does with bad entries and a lost Redis."""

import asyncio
import json
from collections.abc import Callable

import pytest
import redis

from consumers.dashboard.live import RECONNECT_MS, async_connect, sse_messages
from plate_ocr.settings import Settings
from schemas import PlateReading

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]


def _collect(settings: Settings, cursor: tuple[str, str]) -> list[str]:
    async def run() -> list[str]:
        connection = async_connect(settings)
        try:
            messages = sse_messages(connection, settings, cursor, idle_timeout_s=0.3)
            return [m async for m in messages]
        finally:
            await connection.aclose()

    return asyncio.run(run())


@pytest.mark.redis
def test_a_malformed_entry_is_skipped_and_the_stream_goes_on(
    settings: Settings, redis_client: redis.Redis, make_reading: MakeReading, publish: Publish
) -> None:
    redis_client.xadd(settings.results_stream, {"reading": "{not json"})
    good = publish(redis_client, make_reading("good")).decode()
    messages = _collect(settings, ("0-0", "0-0"))
    assert messages[0] == f"retry: {RECONNECT_MS}\n\n"
    assert len(messages) == 2
    event, msg_id, data = messages[1].strip().splitlines()
    assert (event, msg_id) == ("event: reading", f"id: {good}/0-0")
    assert json.loads(data.removeprefix("data: "))["reading"]["job_id"] == "good"


def test_a_lost_redis_ends_the_response_so_the_browser_reconnects() -> None:
    unreachable = Settings(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert _collect(unreachable, ("0-0", "0-0")) == [f"retry: {RECONNECT_MS}\n\n"]
