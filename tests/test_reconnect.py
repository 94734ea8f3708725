"""Redis goes away and comes back: workers and producers ride it out; nothing Redis kept is lost.

Each test owns a throwaway `redis-server` on a free port, persisting with AOF and
`appendfsync always` into tmp_path, so a SIGKILLed server comes back with every acknowledged write.
"""

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import redis
from rq.registry import StartedJobRegistry

from bench.redis_ha import DataNode, wait_for
from plate_ocr.connection import RedisUnavailable, connect
from plate_ocr.settings import Settings
from producer import PlateProducer, encode_png
from schemas import PlateReading
from worker.batch_worker import BatchWorker
from worker.null_reader import GatedReader, NullReader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH"),
]

CROP = encode_png(np.full((10, 30, 3), 60, np.uint8))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DataNode]:
    srv = DataNode(tmp_path, 0, [])
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture
def settings_for(server: DataNode) -> Settings:
    return Settings(
        redis_url=server.url,
        queue="reconnect",
        results_stream="reconnect:readings",
        batch_size=4,
        lease_s=2,  # the batch lost mid-finish comes back after this
        recovery_interval_s=0.2,
        reconnect_max_backoff_s=0.2,
    )


def readings(client: redis.Redis, stream: str) -> list[PlateReading]:
    try:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
    except redis.ConnectionError:
        return []
    return [PlateReading.model_validate_json(fields[b"reading"]) for _, fields in entries]


def test_the_worker_loop_survives_a_redis_restart_and_reads_every_job_redis_kept(
    server: DataNode, settings_for: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plate_ocr.worker")
    settings = settings_for
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    before = PlateProducer(settings, connection=client).submit_many([CROP] * 10)
    reader = GatedReader()
    worker = BatchWorker(settings, reader=reader, connection=connect(settings))
    thread = threading.Thread(target=worker.work, name="worker-under-test", daemon=True)
    thread.start()
    try:
        assert reader.inside.wait(timeout=10), "the worker never took a batch"
        # The batch in hand, and the prefetch thread may hold the next two (4 and 2 of 10 jobs).
        assert StartedJobRegistry(settings.queue, connection=client).count in (4, 8, 10)

        server.kill()  # with a batch of 4 in hand, so its finish() hits a dead socket
        reader.release.set()
        wait_for(lambda: "redis unavailable" in caplog.text, what="the worker to hit the outage")
        assert thread.is_alive(), "the worker died with Redis"
        server.start()

        after = PlateProducer(settings, connection=client).submit_many([CROP] * 3)
        wanted = set(before + after)
        wait_for(
            lambda: {r.job_id for r in readings(client, settings.results_stream)} >= wanted,
            what="a reading for every job, the 4 in hand recovered after their lease",
        )

        got = readings(client, settings.results_stream)
        assert thread.is_alive()
        assert sorted(r.job_id for r in got) == sorted(wanted)  # one reading each
        assert all(r.status == "ok" for r in got)
        assert len({r.reading_id for r in got}) == len(got)
    finally:
        reader.release.set()
        worker.request_stop()
        thread.join(timeout=10)
        client.close()
    assert not thread.is_alive(), "request_stop() did not end the loop"


def test_submit_rides_out_a_short_outage(server: DataNode, settings_for: Settings) -> None:
    producer = PlateProducer(settings_for, reconnect_deadline_s=10.0)
    producer.submit(CROP)  # connected once: the pool now holds a socket that is about to die
    server.kill()
    restarter = threading.Timer(1.0, server.start)
    restarter.start()
    try:
        t0 = time.monotonic()
        job_id = producer.submit(CROP)
        waited_s = time.monotonic() - t0
    finally:
        restarter.join()
        producer.close()

    assert waited_s >= 0.9, "submit cannot have succeeded while Redis was down"
    client = redis.Redis.from_url(server.url)
    assert job_id.encode() in client.lrange(f"rq:queue:{settings_for.queue}", 0, -1)
    assert client.llen(f"rq:queue:{settings_for.queue}") == 2  # the first job survived too
    client.close()


def test_submit_gives_up_with_redis_unavailable_after_its_deadline(
    server: DataNode, settings_for: Settings
) -> None:
    producer = PlateProducer(settings_for, reconnect_deadline_s=1.0)
    server.kill()

    t0 = time.monotonic()
    with pytest.raises(RedisUnavailable, match="unreachable"):
        producer.submit(CROP)
    gave_up_after_s = time.monotonic() - t0

    assert gave_up_after_s < 3.0  # the deadline, plus one connect attempt at most
    producer.close()


def test_a_worker_started_while_redis_is_down_waits_for_it(
    server: DataNode, settings_for: Settings
) -> None:
    # Was a crash: rq.Worker() asked Redis for the client address in BatchWorker.__init__, and
    # work() registered the worker outside its reconnect loop.
    server.kill()
    restarter = threading.Timer(1.0, server.start)
    restarter.start()
    try:
        worker = BatchWorker(settings_for, reader=NullReader(), connection=connect(settings_for))
        thread = threading.Thread(target=worker.work, daemon=True)
        thread.start()
    finally:
        restarter.join()
    client = redis.Redis.from_url(server.url)
    try:
        job_id = PlateProducer(settings_for, connection=client).submit(CROP)
        wait_for(
            lambda: [r.job_id for r in readings(client, settings_for.results_stream)] == [job_id]
        )
        assert thread.is_alive()
    finally:
        worker.request_stop()
        thread.join(timeout=10)
        client.close()


def test_enqueue_rides_out_redis_dropping_after_it_answered(
    server: DataNode,
    settings_for: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from producer.cli import run_enqueue

    crop = tmp_path / "crop.png"
    crop.write_bytes(CROP)
    restarter = threading.Timer(1.0, server.start)
    answered = PlateProducer.ping

    def ping_then_lose_redis(self: PlateProducer) -> None:
        answered(self)  # Redis was reachable: from now on a drop is an outage, ridden out
        server.kill()
        restarter.start()

    monkeypatch.setattr(PlateProducer, "ping", ping_then_lose_redis)
    try:
        code = run_enqueue(settings_for, [crop], camera_id=None, by_reference=False, quiet=True)
    finally:
        restarter.join()
    assert code == 0 and capsys.readouterr().out == "1\n"
    client = redis.Redis.from_url(server.url)
    assert client.llen(f"rq:queue:{settings_for.queue}") == 1
    client.close()
