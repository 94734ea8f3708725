"""rq-dashboard, our users' tool, on our queue, started as deploy/docker-compose.yml starts it."""

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from plate_ocr.demo import sample_dir
from plate_ocr.settings import Settings
from producer import PlateProducer
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader

pytestmark = pytest.mark.redis

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose_dashboard_flags() -> list[str]:
    """The dashboard's flags in the compose file, less the Redis URL (the test's is used)."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    command: list[str] = list(compose["services"]["rq-dashboard"]["command"])
    at = command.index("--redis-url")
    return command[:at] + command[at + 2 :]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def dashboard(redis_url: str, flags: list[str]) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "rq_dashboard", *flags, "--redis-url", redis_url]
    process = subprocess.Popen(
        [*argv, "--bind", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # up once it answers; polled with a deadline, as it has no readiness signal
            try:
                urllib.request.urlopen(f"{base}/0/data/queues.json", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "rq-dashboard did not start within 30 s"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def test_the_dashboard_as_deployed_lists_finished_and_failed_jobs(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    good = producer.submit(sample_dir() / "sample_00.jpg")
    bad = producer.submit_ref("file:///etc/hostname")  # no allowed roots: path_not_allowed
    BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)

    with dashboard(settings.redis_url, compose_dashboard_flags()) as base:
        for registry, job_id in (("finished", good), ("failed", bad)):
            status, body = get(f"{base}/0/data/jobs/{settings.queue}/{registry}/8/asc/1.json")
            assert status == 200, body[-2000:]
            jobs = json.loads(body)["jobs"]
            assert [job["id"] for job in jobs] == [job_id], registry
        status, body = get(f"{base}/0/data/job/{good}.json")
        assert status == 200, body[-2000:]


def test_without_json_the_dashboard_cannot_list_our_jobs(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # Why the compose file passes --json: our jobs are RQ JSON, and the default unpickles.
    producer = PlateProducer(settings, connection=redis_client)
    producer.submit(sample_dir() / "sample_00.jpg")
    BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)
    flags = [f for f in compose_dashboard_flags() if f != "--json"]
    with dashboard(settings.redis_url, flags) as base:
        status, _ = get(f"{base}/0/data/jobs/{settings.queue}/finished/8/asc/1.json")
    assert status == 500
