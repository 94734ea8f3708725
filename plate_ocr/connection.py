"""Redis connections, and riding out a Redis restart with capped exponential backoff.

Everything about where Redis is and how to log in travels in `settings.redis_url`:
`redis://host:6379/0`, `rediss://...` for TLS, `redis://user:password@host/0` for ACL users
(`redis://:password@host` for a plain AUTH password).
"""

import logging
import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis

from plate_ocr.constants import (
    RECONNECT_BASE_BACKOFF_S,
    REDIS_CONNECT_TIMEOUT_S,
    REDIS_HEALTH_CHECK_INTERVAL_S,
    REDIS_SOCKET_TIMEOUT_S,
)
from plate_ocr.errors import PlateOcrError
from plate_ocr.settings import Settings

__all__ = [
    "DISCONNECT_ERRORS",
    "Backoff",
    "RedisUnavailable",
    "connect",
    "redacted_url",
    "retry_on_disconnect",
]

log = logging.getLogger("plate_ocr.connection")

T = TypeVar("T")

# What a Redis restart, failover or network blip looks like to redis-py. Nothing else is retried:
# a ResponseError (wrong type, unknown command, NOAUTH) would fail the same way forever.
DISCONNECT_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


class RedisUnavailable(PlateOcrError):
    """Raised when Redis stayed unreachable for longer than the caller was willing to wait."""


def connect(settings: Settings, *, client_name: str = "plate-ocr") -> "redis.Redis":
    """A client for `settings.redis_url`, returning bytes (images and JSON are decoded by us).

    Connecting is lazy: this does no I/O, so a producer can be built while Redis is down.
    """
    # TCP keepalive notices a dead peer behind a silent network; a unix socket (the embedded
    # demo server) has no such option and redis-py refuses it there.
    tcp_only = {} if settings.redis_url.startswith("unix://") else {"socket_keepalive": True}
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        health_check_interval=REDIS_HEALTH_CHECK_INTERVAL_S,
        **tcp_only,
        # Shows up in CLIENT LIST, so an operator can tell workers from producers from tails.
        client_name=f"{client_name}@{socket.gethostname()}".replace(" ", "_"),
    )


def redacted_url(url: str) -> str:
    """`url` with its password replaced by `***`, fit for a log line or an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Backoff:
    """Capped exponential backoff with jitter: about base, 2·base, 4·base ... up to `max_s`.

    The jitter keeps a fleet of workers that lost Redis together from reconnecting in lockstep;
    it draws from [delay/2, delay] rather than [0, delay] so that no retry comes back at once.
    """

    def __init__(
        self,
        *,
        max_s: float,
        base_s: float = RECONNECT_BASE_BACKOFF_S,
        rng: random.Random | None = None,
    ) -> None:
        self.max_s = max_s
        self.base_s = min(base_s, max_s)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay_s(self) -> float:
        ceiling = min(self.max_s, self.base_s * 2.0**self.attempt)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        """Call after a success, so that the next outage starts again from a short delay."""
        self.attempt = 0


def retry_on_disconnect(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    give_up_after_s: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    what: str = "redis call",
) -> T:
    """Run `call`, retrying it with `backoff` for as long as Redis is unreachable.

    Retries forever when `give_up_after_s` is None (a worker must outlive a Redis restart rather
    than crash-loop); otherwise raises RedisUnavailable once that much time has gone by.
    `should_stop` lets a worker that was asked to shut down stop retrying (the last error is then
    raised as RedisUnavailable too); pass `sleep=stop_event.wait` so that the wait ends early.
    `call` must be safe to repeat: after a timeout nobody knows whether Redis applied it.
    """
    deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    while True:
        try:
            result = call()
        except DISCONNECT_ERRORS as e:
            delay_s = backoff.next_delay_s()
            stopping = should_stop is not None and should_stop()
            if stopping or (deadline is not None and time.monotonic() + delay_s > deadline):
                raise RedisUnavailable(f"{what} failed, Redis is unreachable: {e}") from e
            log.warning("%s failed (%s); retrying in %.2f s", what, e, delay_s)
            sleep(delay_s)
        else:
            backoff.reset()
            return result
