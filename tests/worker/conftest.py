"""The worker's fixtures: RQ's own command line against the test Redis."""

import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def rq_cli(redis_url: str) -> Callable[..., list[str]]:
    """The argv of RQ's own command line against the test Redis, as an operator runs it:
    `rq_cli("requeue", "--all", "--queue", q)` is `rq requeue --url URL --all --queue q`."""

    def argv(command: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "rq.cli", command, "--url", redis_url, *args]

    return argv
