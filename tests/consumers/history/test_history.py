"""plate-ocr store and the history search, against the real PostgreSQL (.ci/run starts one).

TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres) must reach a server where
the test may create the database `plate_ocr_test`; each test works in a schema of its own.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import redis
from psycopg import sql
from starlette.testclient import TestClient

from consumers.dashboard.app import create_app
from consumers.events.event import event_fields
from consumers.group import GroupReader
from consumers.history.migrations import MIGRATIONS, migrate
from consumers.history.search import History
from consumers.history.store import HistoryStore
from plate_ocr.constants import STORE_GROUP
from plate_ocr.settings import Settings
from schemas import PlateEvent

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def store_settings(settings: Settings, dsn: str) -> Settings:
    token = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "events_stream": f"test-events:{token}",
            **Settings(history_dsn=dsn).model_dump(include={"history_dsn"}),
        }
    )


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as db:
        row = db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        return int(cast(tuple[int], row.fetchone())[0])


def test_migrations_run_once_and_make_the_search_indices(dsn: str) -> None:
    with psycopg.connect(dsn) as db:
        assert migrate(db) == len(MIGRATIONS)
        assert migrate(db) == 0
        indices = {
            name
            for (name,) in db.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
    assert {"readings_seen_at", "readings_camera_seen_at", "readings_plate"} <= indices
    assert {"readings_plate_trgm", "events_plate_trgm"} <= indices


def test_readings_and_events_are_stored_once_however_often_delivered(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings
    readings = [make_reading(f"j{i}", text=f"ABC{i:03d}", camera_id="gate") for i in range(5)]
    for r in readings:
        publish(redis_client, r)
    publish(redis_client, readings[0])  # the same reading twice on the stream
    now = datetime.now(UTC)
    event = PlateEvent(
        event_id="e1", text="ABC000", confidence=0.9, reads=2, agreeing_reads=2,
        best_reading_id=readings[0].reading_id, best_job_id="j0",
        reading_ids=(readings[0].reading_id,), first_seen=now, last_seen=now, closed_by="idle",
    )  # fmt: skip
    redis_client.xadd(s.events_stream, cast(Any, event_fields(event)))
    # A store that took the readings and died before committing: they are its pending ones.
    GroupReader(redis_client, s.results_stream, STORE_GROUP, "c", from_start=True).read(
        count=3, block_ms=10
    )
    stored = HistoryStore(s, consumer="c").run(from_start=True, burst=True)
    assert stored == {"readings": 6, "events": 1}  # rows offered; the duplicate wrote nothing
    dsn = cast(Any, s.history_dsn).get_secret_value()
    assert count(dsn, "readings") == 5 and count(dsn, "events") == 1
    info = cast(Any, redis_client.xpending(s.results_stream, STORE_GROUP))
    assert info["pending"] == 0


def test_a_store_killed_mid_run_loses_and_repeats_nothing(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings
    total = 3000
    pipe = redis_client.pipeline(transaction=False)
    for i in range(total):
        r = make_reading(f"k{i}", text=f"K{i:06d}")
        from plate_ocr.stream import stream_fields

        pipe.xadd(s.results_stream, cast(Any, stream_fields(r)))
    pipe.execute()
    dsn = cast(Any, s.history_dsn).get_secret_value()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PLATE_OCR_REDIS_URL": s.redis_url,
        "PLATE_OCR_RESULTS_STREAM": s.results_stream,
        "PLATE_OCR_EVENTS_STREAM": s.events_stream,
        "PLATE_OCR_HISTORY_DSN": dsn,
    }
    argv = [sys.executable, "-m", "plate_ocr.cli", "store", "--consumer", "c1", "--from-start"]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:  # until some batches are committed, and not all
            try:
                stored = count(dsn, "readings")
            except psycopg.errors.UndefinedTable:
                stored = 0
            if stored > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    at_kill = count(dsn, "readings")
    assert 0 < at_kill < total
    done = subprocess.run([*argv, "--burst"], env=env, timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert count(dsn, "readings") == total
    with psycopg.connect(dsn) as db:
        row = db.execute("SELECT count(DISTINCT reading_id) FROM readings").fetchone()
    assert row == (total,)
    assert cast(Any, redis_client.xpending(s.results_stream, STORE_GROUP))["pending"] == 0


def test_retention_deletes_only_older_rows(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings.model_copy(update={"history_retention_days": 30})
    publish(redis_client, make_reading("old", created_at=datetime.now(UTC) - timedelta(days=31)))
    publish(redis_client, make_reading("new"))
    store = HistoryStore(s, consumer="c")
    store.run(from_start=True, burst=True)  # stores both, the first round's retention ran first
    dsn = cast(Any, s.history_dsn).get_secret_value()
    assert count(dsn, "readings") == 2
    store._next_retention_at = 0.0  # the next round is due now
    store.run(burst=True)
    with psycopg.connect(dsn) as db:
        assert db.execute("SELECT job_id FROM readings").fetchall() == [("new",)]


def test_the_search_finds_a_plate_by_part_and_by_likeness_newest_first(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings
    base = datetime.now(UTC) - timedelta(days=90)
    plates = [("ABC123", "gate"), ("ABC128", "gate"), ("XYZ789", "yard"), ("ABC123", "yard")]
    for i, (plate, camera) in enumerate(plates):
        created = base + timedelta(days=i)
        publish(
            redis_client, make_reading(f"j{i}", text=plate, camera_id=camera, created_at=created)
        )
    HistoryStore(s, consumer="c").run(from_start=True, burst=True)
    history = History(cast(Any, s.history_dsn).get_secret_value())
    try:
        found = history.find("abc-12")
        assert [f["reading"]["job_id"] for f in found] == ["j3", "j1", "j0"]
        assert {f["match"] for f in found} == {"contains"}
        at_gate = history.find("ABC123", camera="gate")  # the plate, then a lookalike
        assert [(f["reading"]["job_id"], f["match"]) for f in at_gate] == [
            ("j0", "contains"),
            ("j1", "similar"),
        ]
        assert history.find("ABC123", camera="gate", fuzzy=False)[0]["reading"]["job_id"] == "j0"
        similar = history.find("ABC1Z3")  # a misread: Z for 2
        assert {f["reading"]["job_id"] for f in similar} >= {"j0", "j3"}
        assert all(f["match"] == "similar" for f in similar)
        assert history.find("QQQ") == [] and history.find("--") == []
        assert [f["reading"]["job_id"] for f in history.find("XY")] == ["j2"]  # a prefix
    finally:
        history.close()


def test_the_dashboard_searches_the_history_when_it_is_configured(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings
    publish(redis_client, make_reading("months-ago", text="OLD123", camera_id="gate"))
    HistoryStore(s, consumer="c").run(from_start=True, burst=True)
    redis_client.delete(s.results_stream)  # long trimmed from the stream
    app = create_app(s, connection=redis_client, stream_idle_timeout_s=0.3)
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        answer = client.get("/api/readings", params={"q": "old-12"}).json()
        assert [v["reading"]["job_id"] for v in answer["readings"]] == ["months-ago"]
        assert answer["source"] == "history"
        plain = client.get("/api/readings").json()  # no query: the stream, as before
        assert plain["readings"] == [] and plain.get("source", "stream") == "stream"


def test_a_row_postgresql_refuses_is_skipped_and_the_others_stored(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    s = store_settings
    publish(redis_client, make_reading("good-1"))
    publish(redis_client, make_reading("bad", camera_id="gate\x003"))  # text cannot hold NUL
    publish(redis_client, make_reading("good-2"))
    HistoryStore(s, consumer="c").run(from_start=True, burst=True)
    dsn = cast(Any, s.history_dsn).get_secret_value()
    with psycopg.connect(dsn) as db:
        stored = db.execute("SELECT job_id FROM readings ORDER BY job_id").fetchall()
    assert stored == [("good-1",), ("good-2",)]
    assert cast(Any, redis_client.xpending(s.results_stream, STORE_GROUP))["pending"] == 0


def test_a_store_rides_out_losing_postgresql(
    redis_client: redis.Redis, store_settings: Settings, make_reading: Any, publish: Any
) -> None:
    import threading

    s = store_settings
    dsn = cast(Any, s.history_dsn).get_secret_value()
    store = HistoryStore(s, consumer="c")
    runner = threading.Thread(target=store.run, kwargs={"from_start": True})
    runner.start()
    try:
        publish(redis_client, make_reading("first"))
        deadline = time.monotonic() + 20
        while store.stored["readings"] < 1:
            assert time.monotonic() < deadline, "the first reading was never stored"
            time.sleep(0.02)
        with psycopg.connect(dsn, autocommit=True) as admin:  # as a PostgreSQL restart would
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'plate-ocr-store' AND datname = current_database()"
            ).fetchall()
        assert killed == [(True,)]
        for i in range(3):
            publish(redis_client, make_reading(f"after-{i}"))
        while count(dsn, "readings") < 4:
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.05)
    finally:
        store.stop()
        runner.join(20)
    assert not runner.is_alive()
    assert count(dsn, "readings") == 4
    assert cast(Any, redis_client.xpending(s.results_stream, STORE_GROUP))["pending"] == 0
