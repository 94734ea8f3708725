"""rq-dashboard, our users' tool, on our queue, started as deploy/docker-compose.yml starts it
and as the README says to start it by hand."""

import contextlib
import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def without_redis_url(command: list[str]) -> list[str]:
    """A dashboard's flags less its Redis URL (the test's is used)."""
    at = command.index("--redis-url")
    return command[:at] + command[at + 2 :]


def compose_dashboard_flags() -> list[str]:
    """The dashboard's flags in the compose file, less the Redis URL (the test's is used)."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return without_redis_url(list(compose["services"]["rq-dashboard"]["command"]))


def readme_argv(start: str) -> list[str]:
    """The argv of the one README line that begins with `start`, its comment left off."""
    readme = (ROOT / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"the README should have exactly one line starting {start!r}: {lines}"
    return shlex.split(lines[0], comments=True)


def readme_dashboard_flags() -> list[str]:
    """The flags the README starts rq-dashboard with by hand, less the Redis URL."""
    return without_redis_url(readme_argv(".venv/bin/rq-dashboard ")[1:])


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


@pytest.mark.parametrize(
    "flags", [compose_dashboard_flags, readme_dashboard_flags], ids=["compose", "readme"]
)
def test_the_dashboard_as_deployed_lists_finished_and_failed_jobs(
    settings: Settings, redis_client: redis.Redis, flags: Callable[[], list[str]]
) -> None:
    producer = PlateProducer(settings, connection=redis_client)
    good = producer.submit(sample_dir() / "sample_00.jpg")
    bad = producer.submit_ref("file:///etc/hostname")  # no allowed roots: path_not_allowed
    BatchWorker(settings, reader=NullReader(), connection=redis_client).work(burst=True)

    with dashboard(settings.redis_url, flags()) as base:
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


def test_the_readme_installs_the_rq_dashboard_these_tests_run() -> None:
    # The README's by-hand install pins what pyproject's test extra (which these tests run) pins.
    install = readme_argv(".venv/bin/pip install 'rq-dashboard")
    pins = set(re.findall(r'"(rq-dashboard==[^"]+)"', (ROOT / "pyproject.toml").read_text()))
    assert len(pins) == 1 and pins <= set(install) and "six" in install
