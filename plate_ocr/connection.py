"""Redis connections, and riding out a Redis restart with capped exponential backoff.

Everything about where Redis is and how to log in travels in `settings.redis_url`:
`redis://host:6379/0`, `rediss://...` for TLS, `redis://user:password@host/0` for ACL users
(`redis://:password@host` for a plain AUTH password). Behind Sentinel it is
`redis+sentinel://[user:password@]h1:26379,h2:26379/MASTER/DB` (`rediss+sentinel://` for TLS to
the Sentinels and the data nodes alike), or `settings.sentinels` + `settings.sentinel_master` with
`redis_url` giving the rest; redis-py's `redis.sentinel` then finds the primary on every
(re)connect, so a failover looks like a disconnect to every caller here, and is retried as one.
This module is the only place clients are made.
"""

import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from plate_ocr.constants import (
    RECONNECT_BASE_BACKOFF_S,
    REDIS_CONNECT_TIMEOUT_S,
    REDIS_HEALTH_CHECK_INTERVAL_S,
    REDIS_SOCKET_TIMEOUT_S,
)
from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings

__all__ = [
    "DISCONNECT_ERRORS",
    "Backoff",
    "NotReplicated",
    "RedisUnavailable",
    "SentinelTarget",
    "async_connect",
    "check_replicated",
    "connect",
    "describe",
    "oom_refusals",
    "redacted_url",
    "retry_on_disconnect",
    "sentinel_target",
]

log = logging.getLogger("plate_ocr.connection")

T = TypeVar("T")

_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}


class RedisUnavailable(PlateOcrError):
    """Raised when Redis stayed unreachable for longer than the caller was willing to wait."""


class NotReplicated(PlateOcrError):
    """A write reached the primary but WAIT saw fewer replicas acknowledge it than required.

    Retried like a disconnect: the write may yet be lost with the primary, and every write we
    wait on is safe to repeat (a job id enqueued twice is read once; FINISH publishes once per
    reading_id)."""


# What a Redis restart, failover or network blip looks like to redis-py, plus a write that did
# not reach its replicas in time and a script cache that a new primary has not got yet (a
# pipeline's EVALSHA; a lone Script call re-loads by itself). Nothing else is retried: a
# ResponseError (wrong type, unknown command, NOAUTH, OOM) would fail the same way again.
DISCONNECT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.NoScriptError,
    NotReplicated,
)

# How Redis 7.0 words a Lua script's write refused at maxmemory when memory was already over it
# as the script began: "Error running script (call to f_<sha>): @user_script:3: @user_script:
# 3: -OOM command not allowed when used memory > 'maxmemory'." (a refusal met later in the
# first write is "OOM command not allowed ... script: <sha>, on @user_script:3.", which redis-py
# raises as OutOfMemoryError). Both refuse the script whole: it has written nothing.
_SCRIPT_OOM = "-OOM command not allowed"


@contextmanager
def oom_refusals() -> Iterator[None]:
    """Raise a script's OOM refusal as the redis.exceptions.OutOfMemoryError it is, whichever way
    Redis words it (redis-py raises one wording as a plain ResponseError): a worker waits a
    full Redis out, and a producer says RedisFull, instead of failing on an unknown error."""
    try:
        yield
    except redis.exceptions.ResponseError as e:
        if isinstance(e, redis.exceptions.OutOfMemoryError) or _SCRIPT_OOM not in str(e):
            raise
        raise redis.exceptions.OutOfMemoryError(str(e)) from e


@dataclass(frozen=True)
class SentinelTarget:
    """Where Sentinel is and what to ask it for, from `sentinel_target()`."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def sentinel_target(settings: Settings) -> SentinelTarget | None:
    """The Sentinel set `settings` name, or None for a plain (or unix socket) Redis."""
    parts = urlsplit(settings.redis_url)
    scheme = parts.scheme.lower()
    if scheme in _SENTINEL_SCHEMES:
        if settings.sentinels:
            raise ConfigError("give the Sentinels in PLATE_OCR_REDIS_URL or PLATE_OCR_SENTINELS")
        hosts = parts.netloc.rpartition("@")[2]
        path = [p for p in parts.path.split("/") if p]
        if not hosts or not 1 <= len(path) <= 2:
            raise ConfigError(
                f"{redacted_url(settings.redis_url)}: a Sentinel URL is "
                f"{scheme}://[user:password@]host:port[,host:port...]/MASTER[/DB]"
            )
        return SentinelTarget(
            sentinels=_host_ports(hosts.split(","), settings.redis_url),
            master=unquote(path[0]),
            db=_db(path[1] if len(path) == 2 else "0", settings.redis_url),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            ssl=_SENTINEL_SCHEMES[scheme],
        )
    if not settings.sentinels and settings.sentinel_master is None:
        return None
    if not settings.sentinels or settings.sentinel_master is None:
        raise ConfigError("PLATE_OCR_SENTINELS and PLATE_OCR_SENTINEL_MASTER go together")
    if scheme not in ("redis", "rediss"):
        raise ConfigError(f"with PLATE_OCR_SENTINELS, PLATE_OCR_REDIS_URL must be redis:// or "
                          f"rediss:// (for the db, password and TLS), not {scheme}://")  # fmt: skip
    return SentinelTarget(
        sentinels=_host_ports(
            [h for h in settings.sentinels.split(",") if h.strip()], "PLATE_OCR_SENTINELS"
        ),
        master=settings.sentinel_master,
        db=_db(parts.path.strip("/") or "0", settings.redis_url),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=scheme == "rediss",
    )


def _host_ports(items: list[str], where: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in items:
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{redacted_url(where)}: {item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


def _db(text: str, where: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"{redacted_url(where)}: database {text!r} is not a number")
    return int(text)


def describe(settings: Settings) -> str:
    """Where `settings` point, fit for a log line or an error message (no password)."""
    target = sentinel_target(settings)
    if target is None:
        return redacted_url(settings.redis_url)
    hosts = ",".join(f"{h}:{p}" for h, p in target.sentinels)
    return f"Sentinel master {target.master!r} (db {target.db}) via {hosts}"


def _client_kwargs(
    settings: Settings, client_name: str, socket_timeout_s: float, connect_timeout_s: float
) -> dict[str, Any]:
    # TCP keepalive notices a dead peer behind a silent network; a unix socket (the embedded
    # demo server) has no such option and redis-py refuses it there.
    tcp_only = {} if settings.redis_url.startswith("unix://") else {"socket_keepalive": True}
    return {
        "decode_responses": False,
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": socket_timeout_s,
        **tcp_only,
        # Shows up in CLIENT LIST, so an operator can tell workers from producers from tails.
        "client_name": f"{client_name}@{socket.gethostname()}".replace(" ", "_"),
    }


def _sentinel_kwargs(
    settings: Settings, target: SentinelTarget, connect_timeout_s: float
) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: short timeouts (discovery moves on to the next
    one), TLS as for the data nodes, their own password if they have one."""
    password = settings.sentinel_password
    return {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": connect_timeout_s,
        "ssl": target.ssl,
        **({"password": password.get_secret_value()} if password is not None else {}),
    }


def connect(
    settings: Settings,
    *,
    client_name: str = "plate-ocr",
    socket_timeout_s: float = REDIS_SOCKET_TIMEOUT_S,
    connect_timeout_s: float = REDIS_CONNECT_TIMEOUT_S,
) -> "redis.Redis":
    """A client for the Redis `settings` name, returning bytes (images and JSON are decoded by
    us); behind Sentinel, a client of the current primary that follows a failover.

    Connecting is lazy: this does no I/O, so a producer can be built while Redis is down.
    """
    kwargs = _client_kwargs(settings, client_name, socket_timeout_s, connect_timeout_s)
    kwargs["health_check_interval"] = REDIS_HEALTH_CHECK_INTERVAL_S
    target = sentinel_target(settings)
    if target is None:
        return redis.Redis.from_url(settings.redis_url, **kwargs)
    sentinel = redis.sentinel.Sentinel(
        target.sentinels, sentinel_kwargs=_sentinel_kwargs(settings, target, connect_timeout_s)
    )
    client: redis.Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **kwargs,
    )
    return client


def async_connect(
    settings: Settings,
    *,
    client_name: str = "plate-ocr",
    socket_timeout_s: float = REDIS_SOCKET_TIMEOUT_S,
    connect_timeout_s: float = REDIS_CONNECT_TIMEOUT_S,
) -> "redis.asyncio.Redis":
    """`connect()` for asyncio (the dashboard's live stream)."""
    kwargs = _client_kwargs(settings, client_name, socket_timeout_s, connect_timeout_s)
    target = sentinel_target(settings)
    if target is None:
        return redis.asyncio.Redis.from_url(settings.redis_url, **kwargs)
    sentinel = redis.asyncio.sentinel.Sentinel(
        target.sentinels, sentinel_kwargs=_sentinel_kwargs(settings, target, connect_timeout_s)
    )
    client: redis.asyncio.Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **kwargs,
    )
    return client


def check_replicated(acked: object, settings: Settings, what: str) -> None:
    """Raise NotReplicated unless WAIT's reply `acked` meets `settings.replicas_to_wait`."""
    wanted = settings.replicas_to_wait
    if int(acked) < wanted:  # type: ignore[call-overload]
        raise NotReplicated(
            f"{what}: {acked} of {wanted} replicas acknowledged it within "
            f"{settings.replicas_wait_timeout_ms} ms"
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
    retry_on: tuple[type[Exception], ...] = DISCONNECT_ERRORS,
) -> T:
    """Run `call`, retrying it with `backoff` for as long as Redis is unreachable.

    Retries forever when `give_up_after_s` is None (a worker must outlive a Redis restart rather
    than crash-loop); otherwise raises RedisUnavailable once that much time has gone by.
    `should_stop` lets a worker that was asked to shut down stop retrying (the last error is then
    raised as RedisUnavailable too); pass `sleep=stop_event.wait` so that the wait ends early.
    `call` must be safe to repeat: after a timeout nobody knows whether Redis applied it.
    `retry_on`: what counts as Redis being away (a worker adds a full Redis's OOM refusal).
    """
    deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    while True:
        try:
            result = call()
        except retry_on as e:
            delay_s = backoff.next_delay_s()
            stopping = should_stop is not None and should_stop()
            if stopping or (deadline is not None and time.monotonic() + delay_s > deadline):
                full = isinstance(e, redis.exceptions.OutOfMemoryError)
                why = "Redis is full (maxmemory)" if full else "Redis is unreachable"
                raise RedisUnavailable(f"{what} failed, {why}: {e}") from e
            log.warning("%s failed (%s); retrying in %.2f s", what, e, delay_s)
            sleep(delay_s)
        else:
            backoff.reset()
            return result
