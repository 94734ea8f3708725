"""A full Redis (maxmemory, policy noeviction) and an evicting one, on a redis-server of our own.

The producer's push is refused whole (RedisFull, never a job hash with one field of seventeen);
a worker whose FINISH is refused keeps its batch and publishes it once Redis has room; a worker
refuses to start against a Redis that may evict keys.
"""

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import redis

from bench.redis_ha import DataNode, wait_for
from plate_ocr.errors import ConfigError, RedisFull
from plate_ocr.settings import Settings
from producer import PlateProducer
from worker.batch_worker import BatchWorker
from worker.null_reader import GatedReader, NullReader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH"),
]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[DataNode]:
    server = DataNode(tmp_path, 0, ["--maxmemory-policy", "noeviction"])
    server.start()
    yield server
    server.kill()


def settings_for(node: DataNode, **update: object) -> Settings:
    return Settings(
        redis_url=f"redis://127.0.0.1:{node.port}/0",
        queue="full",
        results_stream="full:readings",
        reconnect_max_backoff_s=0.2,
        **update,  # type: ignore[arg-type]
    )


def fill_limit(client: redis.Redis, headroom_bytes: int) -> None:
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + headroom_bytes)


def test_a_full_redis_refuses_a_push_whole_and_says_so(node: DataNode) -> None:
    client = node.client()
    settings = settings_for(node)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, 20_000, np.uint8).tobytes() for _ in range(200)]
    with PlateProducer(settings) as producer:
        producer.submit(crops[0])  # a complete job to compare with
        fill_limit(client, 1_000_000)
        ids: list[str] = []
        with pytest.raises(RedisFull, match=r"is full .* nothing of it was written"):
            for i in range(1, len(crops), 4):
                ids += producer.submit_many(crops[i : i + 4])
        assert len(ids) > 8  # it filled up on the way, not at once
    listed = cast(list[bytes], client.lrange("rq:queue:full", 0, -1))
    queued = [j.decode() for j in listed]
    hashes = sorted(bytes(k).decode() for k in client.scan_iter("rq:job:*"))
    assert len(queued) == len(ids) + 1
    assert hashes == sorted(f"rq:job:{j}" for j in queued)  # no hash without its queue entry
    fields = {client.hlen(key) for key in hashes}
    assert fields == {client.hlen(f"rq:job:{queued[0]}")} and fields != {1}  # none half-written

    # The command line says it in a line, not a traceback.
    image = node.dir / "crop.bin"
    image.write_bytes(rng.integers(0, 256, 2_000_000, np.uint8).tobytes())  # over the headroom
    done = subprocess.run(
        [sys.executable, "-m", "plate_ocr.cli", "--redis-url", settings.redis_url, "--queue",
         "full", "enqueue", str(image)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "plate-ocr: error:" in done.stderr and "is full" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_keeps_its_batch_while_redis_is_full_and_publishes_it_after(
    node: DataNode, caplog: pytest.LogCaptureFixture
) -> None:
    client = node.client()
    settings = settings_for(node, batch_size=4, lease_s=60)
    with PlateProducer(settings) as producer:
        from producer import encode_png

        ids = producer.submit_many(
            [encode_png(np.full((8, 20 + i, 3), 9, np.uint8)) for i in range(4)]
        )
    reader = GatedReader()
    worker = BatchWorker(settings, reader=reader, connection=node.client())
    thread = threading.Thread(target=worker.work, name="full-worker")
    caplog.set_level(logging.WARNING, logger="plate_ocr.connection")
    thread.start()
    try:
        assert reader.inside.wait(timeout=30)
        client.config_set("maxmemory", 1)  # full: every write refused from now on
        reader.release.set()
        refused = "publishing a batch failed, retrying: maxmemory"
        wait_for(
            lambda: any(
                "publishing a batch failed" in r.getMessage() and "maxmemory" in r.getMessage()
                for r in caplog.records
            ),
            what=refused,
        )
        assert client.xlen(settings.results_stream) == 0
        client.config_set("maxmemory", 0)
        wait_for(lambda: client.xlen(settings.results_stream) == 4, what="the batch published")
    finally:
        reader.release.set()
        worker.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert all(client.hget(f"rq:job:{j}", "status") == b"finished" for j in ids)


def test_a_worker_refuses_a_redis_that_may_evict_keys(node: DataNode) -> None:
    client = node.client()
    client.config_set("maxmemory", 50_000_000)
    client.config_set("maxmemory-policy", "allkeys-lru")
    worker = BatchWorker(settings_for(node), reader=NullReader(), connection=node.client())
    with pytest.raises(ConfigError, match=r"maxmemory-policy is 'allkeys-lru'.*noeviction"):
        worker.work(burst=True)
