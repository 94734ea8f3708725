"""plate-ocr webhook against a real HTTP receiver of the test's own, that fails, stalls and
restarts on purpose, and the README's verification snippet run on what it received."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from consumers.webhook.sender import WebhookSender, group_for, run_webhook
from consumers.webhook.signature import sign, verify
from plate_ocr.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cret-for-tests"

pytestmark = pytest.mark.redis


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers as told: `statuses`
    are used up one per request (then 200); `stall` holds requests until it is set, and
    from the `stall_from`-th request on (0-based) it is cleared before answering."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.stall = threading.Event()
        self.stall.set()
        self.stall_from: int | None = None
        self._lock = threading.Lock()
        self._start(port)

    def _start(self, port: int) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if receiver.stall_from == len(receiver.requests) - 1:
                        receiver.stall.clear()
                receiver.stall.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        with self._lock:
            return [h["X-Plate-OCR-Id"] for h, _ in self.requests]

    def stop(self) -> None:
        self.stall.set()
        self.server.shutdown()
        self.server.server_close()

    def restart(self) -> None:
        self._start(self.port)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def hook_settings(settings: Settings, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_backoff_s": 0.02,
        "webhook_max_backoff_s": 0.1,
        "webhook_timeout_s": 2.0,
        "webhook_dead_letter_stream": settings.results_stream + ":dead",
        **extra,
    }
    return settings.model_copy(update=Settings(**values).model_dump(include=set(values)))


def pending(client: redis.Redis, settings: Settings, url: str) -> int:
    return int(cast(Any, client.xpending(settings.results_stream, group_for(url)))["pending"])


def test_readings_are_posted_signed_in_order_and_acknowledged(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    s = hook_settings(settings)
    readings = [make_reading(f"j{i}", text=f"ABC{i}") for i in range(3)]
    for r in readings:
        publish(redis_client, r)
    assert WebhookSender(s, receiver.url, consumer="c").run(from_start=True, burst=True) == 3
    assert receiver.ids() == [r.reading_id for r in readings]
    for (headers, body), reading in zip(receiver.requests, readings, strict=True):
        assert json.loads(body)["reading_id"] == reading.reading_id
        assert verify(SECRET.encode(), headers["X-Plate-OCR-Signature"], body)
        assert not verify(b"another key", headers["X-Plate-OCR-Signature"], body)
        assert headers["X-Plate-OCR-Attempt"] == "1" and headers["X-Plate-OCR-Source"] == "readings"
    assert pending(redis_client, s, receiver.url) == 0


def test_5xx_and_a_receiver_restart_are_retried_until_a_2xx(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    s = hook_settings(settings, webhook_max_attempts=50)
    publish(redis_client, make_reading("j1"))
    receiver.statuses = [500, 503]
    sender = WebhookSender(s, receiver.url, consumer="c")
    done = threading.Thread(target=sender.run, kwargs={"from_start": True, "burst": True})
    done.start()
    wait_for(lambda: len(receiver.requests) >= 2, 10, "two failed attempts")
    receiver.stop()  # down: connections are refused for a while
    time.sleep(0.3)  # the sender keeps retrying against nothing (what this test is about)
    receiver.restart()
    done.join(20)
    assert not done.is_alive()
    attempts = [h["X-Plate-OCR-Attempt"] for h, _ in receiver.requests]
    assert attempts[:2] == ["1", "2"] and int(attempts[-1]) > 3  # refused tries in between
    assert sender.delivered == 1 and pending(redis_client, s, receiver.url) == 0


def test_a_stalled_receiver_times_out_and_is_retried(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    s = hook_settings(settings, webhook_timeout_s=0.3)
    publish(redis_client, make_reading("j1"))
    receiver.stall.clear()
    sender = WebhookSender(s, receiver.url, consumer="c")
    done = threading.Thread(target=sender.run, kwargs={"from_start": True, "burst": True})
    done.start()
    wait_for(lambda: len(receiver.requests) >= 2, 10, "a retry after the timeout")
    receiver.stall.set()
    done.join(10)
    assert sender.delivered == 1 and pending(redis_client, s, receiver.url) == 0


def test_after_n_attempts_the_entry_goes_to_the_dead_letter_stream(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    s = hook_settings(settings, webhook_max_attempts=3)
    publish(redis_client, make_reading("j1"))
    publish(redis_client, make_reading("j2"))
    receiver.statuses = [500, 502, 503, 400]  # j1: three 5xx; j2: a 400, never retried
    sender = WebhookSender(s, receiver.url, consumer="c")
    sender.run(from_start=True, burst=True)
    dead = cast(list[Any], redis_client.xrange(s.webhook_dead_letter_stream))
    assert [(f[b"attempts"], f[b"last_status"]) for _, f in dead] == [
        (b"3", b"503"),
        (b"1", b"400"),
    ]
    assert dead[0][1][b"url"] == receiver.url.encode()
    assert json.loads(dead[0][1][b"body"])["job_id"] == "j1"
    assert len(receiver.requests) == 4 and pending(redis_client, s, receiver.url) == 0


def test_several_urls_each_get_every_reading_in_their_own_group(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    other = Receiver()
    try:
        s = hook_settings(settings)
        for i in range(3):
            publish(redis_client, make_reading(f"j{i}"))
        run_webhook(
            s,
            urls=[receiver.url, other.url],
            source="readings",
            consumer="c",
            from_start=True,
            burst=True,
        )
        assert len(receiver.ids()) == len(other.ids()) == 3
        groups = {
            g["name"].decode() for g in cast(Any, redis_client.xinfo_groups(s.results_stream))
        }
        assert groups == {group_for(receiver.url), group_for(other.url)}
    finally:
        other.stop()


def test_a_sender_killed_mid_delivery_loses_and_repeats_nothing_it_acknowledged(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    s = hook_settings(settings)
    readings = [make_reading(f"j{i}") for i in range(5)]
    for r in readings:
        publish(redis_client, r)
    ids = [r.reading_id for r in readings]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PLATE_OCR_REDIS_URL": s.redis_url,
        "PLATE_OCR_RESULTS_STREAM": s.results_stream,
        "PLATE_OCR_WEBHOOK_SECRET": SECRET,
    }
    argv = [sys.executable, "-m", "plate_ocr.cli", "webhook", "--url", receiver.url]
    argv += ["--consumer", "c1", "--from-start"]
    receiver.stall_from = 2  # the third request hangs: the sender is killed then

    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(receiver.requests) >= 3, 30, "the third POST")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert receiver.ids() == ids[:3]
    assert pending(redis_client, s, receiver.url) == 1  # only the one in flight
    receiver.stall_from = None
    receiver.stall.set()
    done = subprocess.run([*argv, "--burst"], env=env, timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # The two acknowledged ones once, the one in flight again, the rest once: none lost.
    assert receiver.ids() == [*ids[:3], *ids[2:]]
    assert pending(redis_client, s, receiver.url) == 0


def test_the_readmes_receiver_snippet_verifies_a_real_request(
    redis_client: redis.Redis,
    settings: Settings,
    make_reading: Any,
    publish: Any,
    receiver: Receiver,
) -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- webhook-verify -->\s*```python\n(.*?)```", readme, re.S)
    assert found, "the README's webhook verification snippet is missing"
    namespace: dict[str, Any] = {}
    exec(found.group(1), namespace)  # the README's few lines, with the standard library only
    s = hook_settings(settings)
    publish(redis_client, make_reading("j1"))
    WebhookSender(s, receiver.url, consumer="c").run(from_start=True, burst=True)
    ((headers, body),) = receiver.requests
    header = headers["X-Plate-OCR-Signature"]
    assert namespace["verify"](SECRET.encode(), header, body)
    assert not namespace["verify"](SECRET.encode(), header, body + b" ")
    stale = sign(SECRET.encode(), body, timestamp=int(time.time()) - 3600)
    assert not namespace["verify"](SECRET.encode(), stale, body)
