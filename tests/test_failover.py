"""Redis behind Sentinel: a real primary, replica and three Sentinels (bench/redis_ha.py), started
on free ports for these tests, and a primary SIGKILLed while a worker holds a batch.

Needs `redis-server` on PATH (Sentinel is `redis-server CONF --sentinel`). One HA set is shared
by the tests that kill nothing; each test that kills a primary starts its own.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import redis

from bench.redis_ha import RedisHA, wait_for
from consumers.dashboard.snapshot import Snapshot
from consumers.events.consolidator import Consolidator
from plate_ocr.connection import NotReplicated, RedisUnavailable, async_connect, connect
from plate_ocr.constants import RQ_RESULTS_KEY_PREFIX
from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream
from producer import PlateProducer, encode_png
from schemas import PlateReading
from worker import ledger_scripts
from worker.batch_worker import BatchWorker
from worker.intake import Envelope
from worker.ledger import Ledger, Outcome
from worker.metrics import WorkerMetrics
from worker.null_reader import GatedReader, NullReader, NullResult
from worker.probes import ProbeServer
from worker.readings import ReadingFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH"),
]


def crop(width: int) -> bytes:
    return encode_png(np.full((10, width, 3), 60, np.uint8))


@pytest.fixture(scope="module")
def shared_ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHA]:
    with RedisHA(tmp_path_factory.mktemp("ha")) as ha:
        yield ha


@pytest.fixture
def own_ha(tmp_path: Path) -> Iterator[RedisHA]:
    with RedisHA(tmp_path) as ha:
        yield ha


def ha_settings(ha: RedisHA, name: str, **update: Any) -> Settings:
    return Settings(
        redis_url=ha.url(),
        queue=name,
        results_stream=f"{name}:readings",
        reconnect_max_backoff_s=0.2,
        replicas_wait_timeout_ms=300,
        **update,
    )


def stream_readings(client: redis.Redis, stream: str) -> list[PlateReading]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
    return [PlateReading.model_validate_json(fields[b"reading"]) for _, fields in entries]


# --- every client finds the primary through Sentinel -------------------------------------------


def test_every_client_talks_to_the_primary_that_sentinel_names(shared_ha: RedisHA) -> None:
    settings = ha_settings(shared_ha, "everyone")
    primary = shared_ha.primary().client()
    with PlateProducer(settings) as producer:
        job_id = producer.submit(crop(30))
    assert primary.hget(f"rq:job:{job_id}", "status") == b"queued"
    # The results stream's readers, the events consolidator, the dashboard (sync and async)
    # and the probes: each is built from the settings alone and reaches the same primary.
    primary.xadd(settings.results_stream, {"probe": "1"})
    assert ReadingStream(settings)._newest_id() != b"0-0"
    Consolidator(settings)._redis.ping()
    assert Snapshot(settings, connect(settings)).redis.xlen(settings.results_stream) == 1

    async def newest() -> Any:
        client = async_connect(settings)
        try:
            return await client.xlen(settings.results_stream)
        finally:
            await client.aclose()

    assert asyncio.run(newest()) == 1
    metrics = WorkerMetrics()
    metrics.describe(NullReader().model_info, device="cpu", backend="null")  # the model is in
    probes = ProbeServer(metrics, settings, port=0, host="127.0.0.1").start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{probes.port}/readyz", timeout=5) as r:
            assert r.status == 200
    finally:
        probes.close()


# --- writes you can wait on --------------------------------------------------------------------


def test_submit_returns_once_the_replica_has_the_job(shared_ha: RedisHA) -> None:
    settings = ha_settings(shared_ha, "waited", replicas_to_wait=1)
    replica = next(n for n in shared_ha.nodes if n is not shared_ha.primary())
    with PlateProducer(settings) as producer:
        job_ids = producer.submit_many([crop(20), crop(21)])
    # WAIT said the replica has them: read there, with no waiting of our own.
    with replica.client() as c:
        assert [c.hget(f"rq:job:{j}", "status") for j in job_ids] == [b"queued", b"queued"]


def test_rq_info_follows_sentinel_with_the_readme_config_module(
    shared_ha: RedisHA, tmp_path: Path
) -> None:
    settings = ha_settings(shared_ha, "rq-info")
    with PlateProducer(settings) as producer:
        producer.submit_many([crop(30), crop(31), crop(32)])
    # The README's rqconf.py, as an operator writes it.
    (tmp_path / "rqconf.py").write_text(
        f'SENTINEL = {{"INSTANCES": [("127.0.0.1", {shared_ha.sentinel_ports[0]})], '
        f'"MASTER_NAME": "{shared_ha.master_name}", "DB": 0}}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "info", "-c", "rqconf", "--serializer",
         "rq.serializers.JSONSerializer", "rq-info"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rq-info" in done.stdout and "3, 0 executing" in done.stdout


def test_a_sync_that_never_comes_up_is_reported_with_every_nodes_role_and_log(
    shared_ha: RedisHA,
) -> None:
    primary = shared_ha.primary()
    replica = next(n for n in shared_ha.nodes if n is not primary)
    report = shared_ha._sync_report(replica, lines=200)
    head, *parts = report.split("\n:")
    assert head == f"the Sentinels name :{primary.port} primary; :{replica.port} is rejoining"
    by_port = {part.split(" ", 1)[0]: part for part in parts}
    assert set(by_port) == {str(primary.port), str(replica.port)}
    # each part carries its node's own role and log: the replica synced from the primary
    assert by_port[str(replica.port)].startswith(f"{replica.port} says slave; redis.log:")
    assert "MASTER <-> REPLICA sync" in by_port[str(replica.port)]
    assert by_port[str(primary.port)].startswith(f"{primary.port} says master; redis.log:")
    assert "Synchronization with replica" in by_port[str(primary.port)]


def test_submit_gives_up_when_too_few_replicas_acknowledge(shared_ha: RedisHA) -> None:
    settings = ha_settings(shared_ha, "unwaited", replicas_to_wait=2)  # there is one replica
    with (
        PlateProducer(settings, reconnect_deadline_s=1.0) as producer,
        pytest.raises(RedisUnavailable, match="1 of 2 replicas acknowledged"),
    ):
        producer.submit(crop(22))


def test_an_unconfirmed_finish_is_retried_and_publishes_each_reading_once(
    shared_ha: RedisHA,
) -> None:
    settings = ha_settings(shared_ha, "refinish", batch_size=4)
    with PlateProducer(settings) as producer:
        ids = [producer.submit(crop(30 + i), job_id=f"refinish-{i}") for i in range(3)]
    client = connect(settings)
    ledger = Ledger(settings, client, worker_name="w")
    taken = ledger.take(4, block_s=0.0, fill_wait_s=0.0)
    assert sorted(t.job_id for t in taken) == ids
    readings = ReadingFactory(NullReader().model_info, "cpu", "w")
    now = datetime.now(UTC)
    outcomes = [
        Outcome(
            t,
            readings.ok(
                Envelope(job_id=t.job_id, camera_id=None, metadata={}),
                NullResult("X", 1.0, (), 1),
                enqueued_at=None,
                taken_at=now,
                decode_ms=0.0,
                infer_ms=0.0,
            ),
        )
        for t in taken
    ]
    # Two replicas wanted, one there: every WAIT comes back short.
    waiting = Ledger(settings.model_copy(update={"replicas_to_wait": 2}), client, worker_name="w")
    published: list[bool] = [False] * len(outcomes)
    for _ in range(3):  # as the worker does: the same batch again while WAIT comes back short
        with pytest.raises(NotReplicated, match="1 of 2 replicas"):
            waiting.finish(outcomes, published=published)
    assert published == [True, True, True]
    got = stream_readings(client, settings.results_stream)
    assert sorted(r.job_id for r in got) == ids
    assert len({r.reading_id for r in got}) == 3
    # Nor is the rest of the bookkeeping written again: one RQ result per job, counted once.
    assert [client.xlen(f"{RQ_RESULTS_KEY_PREFIX}{j}") for j in ids] == [1, 1, 1]
    assert client.hget(waiting.rq_worker.key, "successful_job_count") == b"3"


# --- a failover in the middle of a worker's batch ---------------------------------------------


def test_a_primary_killed_mid_batch_loses_and_duplicates_nothing(own_ha: RedisHA) -> None:
    settings = ha_settings(own_ha, "midbatch", replicas_to_wait=1, batch_size=8, lease_s=60)
    producer = PlateProducer(settings)
    ids = producer.submit_many([crop(20 + i) for i in range(8)])
    follower = ReadingStream(settings).follow(group="g", consumer="c", block_ms=200)
    reader = GatedReader()
    worker = BatchWorker(settings, reader=reader, connection=connect(settings))
    thread = threading.Thread(target=worker.work, name="failover-worker")
    thread.start()
    try:
        assert reader.inside.wait(timeout=30), "the worker never took the batch"
        old = own_ha.primary()
        replica = next(n for n in own_ha.nodes if n is not old)
        with replica.client() as c:
            wait_for(
                lambda: all(c.hget(f"rq:job:{j}", "status") == b"started" for j in ids),
                what="the replica to see the batch started",
            )
            finish_sha = c.script_load(ledger_scripts.FINISH)  # its sha, on a node to be primary
            c.script_flush()  # a new primary's script cache is empty: FINISH meets NOSCRIPT
            assert c.script_exists(finish_sha) == [False]
        own_ha.kill_primary()
        new = own_ha.wait_promoted(old)
        reader.release.set()  # FINISH goes to the new primary, which has no replica yet
        own_ha.rejoin(old)  # until this, WAIT says 0 of 1 and the worker retries publishing
        client = new.client()
        wait_for(
            lambda: client.xlen(settings.results_stream) >= len(ids),
            what="the batch's readings on the new primary",
        )
        got = stream_readings(client, settings.results_stream)
        assert sorted(r.job_id for r in got) == sorted(ids)
        assert len({r.reading_id for r in got}) == len(ids)  # none published twice
        assert all(client.hget(f"rq:job:{j}", "status") == b"finished" for j in ids)
        # The consumer group and the producer followed the failover too.
        after = producer.submit(crop(99))
        seen = [next(follower).job_id for _ in range(len(ids) + 1)]
        assert sorted(seen) == sorted([*ids, after])
    finally:
        reader.release.set()
        worker.request_stop()
        thread.join(timeout=30)
        follower.close()
        producer.close()
    assert not thread.is_alive()
