import random

import pytest
import redis
import redis.sentinel

from plate_ocr.connection import (
    Backoff,
    RedisUnavailable,
    SentinelTarget,
    async_connect,
    connect,
    describe,
    oom_refusals,
    retry_on_disconnect,
    sentinel_target,
)
from plate_ocr.constants import REDIS_SOCKET_TIMEOUT_S
from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings


def test_connect_takes_everything_from_the_url_and_returns_bytes() -> None:
    client = connect(Settings(redis_url="redis://reader:s3cret@redis.example:6380/4"))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 4)
    assert (kwargs["username"], kwargs["password"]) == ("reader", "s3cret")
    assert kwargs["decode_responses"] is False
    assert kwargs["socket_timeout"] == REDIS_SOCKET_TIMEOUT_S
    assert kwargs["health_check_interval"] > 0
    assert kwargs["client_name"].startswith("plate-ocr")


def test_connect_uses_tls_for_rediss_urls() -> None:
    client = connect(Settings(redis_url="rediss://redis.example:6380/0"))
    assert client.connection_pool.connection_class is redis.SSLConnection


def test_connect_does_no_io_so_it_works_while_redis_is_down() -> None:
    connect(Settings(redis_url="redis://127.0.0.1:1/0"))  # nothing listens on port 1


@pytest.mark.redis
def test_connect_talks_to_a_real_redis_under_its_client_name(
    settings: Settings, redis_client: redis.Redis
) -> None:
    client = connect(settings, client_name="plate-ocr-test")
    assert client.ping()
    assert str(client.client_getname()).startswith("plate-ocr-test@")
    client.close()


def test_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(max_s=1.0, base_s=0.1, rng=random.Random(7))
    delays = [backoff.next_delay_s() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_starts_over_after_reset() -> None:
    backoff = Backoff(max_s=5.0, base_s=0.1)
    for _ in range(6):
        backoff.next_delay_s()
    backoff.reset()
    assert backoff.next_delay_s() <= 0.1


class Flaky:
    """Fails with `error` the first `failures` calls, then returns "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_retry_rides_out_disconnects_with_growing_delays() -> None:
    slept: list[float] = []
    call = Flaky(4, redis.ConnectionError("Connection refused"))
    backoff = Backoff(max_s=10.0, base_s=0.1)
    assert retry_on_disconnect(call, backoff=backoff, sleep=slept.append) == "ok"
    assert call.calls == 5
    assert len(slept) == 4
    assert slept == sorted(slept)  # each ceiling doubles; the jitter stays in the upper half
    assert backoff.attempt == 0  # reset by the success


def test_retry_treats_timeouts_as_disconnects() -> None:
    call = Flaky(1, redis.TimeoutError("Timeout reading from socket"))
    assert retry_on_disconnect(call, backoff=Backoff(max_s=1.0), sleep=lambda _: None) == "ok"


def test_retry_does_not_retry_errors_that_would_repeat() -> None:
    call = Flaky(1, redis.ResponseError("WRONGTYPE"))
    with pytest.raises(redis.ResponseError):
        retry_on_disconnect(call, backoff=Backoff(max_s=1.0), sleep=lambda _: None)
    assert call.calls == 1


def test_retry_gives_up_after_its_deadline_with_the_cause_chained() -> None:
    call = Flaky(10**9, redis.ConnectionError("Connection refused"))
    with pytest.raises(RedisUnavailable) as info:
        # The first backoff (>= 0.5 s) would overrun a 0.1 s deadline: give up without sleeping.
        retry_on_disconnect(
            call, backoff=Backoff(max_s=1.0, base_s=1.0), give_up_after_s=0.1, what="PING"
        )
    assert isinstance(info.value, PlateOcrError)
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert "PING" in str(info.value)
    assert call.calls == 1


def test_retry_stops_when_asked_to() -> None:
    call = Flaky(10**9, redis.ConnectionError("Connection refused"))
    with pytest.raises(RedisUnavailable):
        retry_on_disconnect(
            call,
            backoff=Backoff(max_s=1.0),
            should_stop=lambda: call.calls >= 3,
            sleep=lambda _: None,
        )
    assert call.calls == 3


def test_retry_against_a_dead_server_raises_redis_unavailable() -> None:
    client = connect(Settings(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(RedisUnavailable):
        retry_on_disconnect(
            client.ping, backoff=Backoff(max_s=0.05, base_s=0.01), give_up_after_s=0.3
        )


# --- Sentinel ----------------------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_the_master_the_db_and_the_login() -> None:
    settings = Settings(redis_url="redis+sentinel://app:s%40cret@s1:26379,s2:26380/plates/3")
    assert sentinel_target(settings) == SentinelTarget(
        sentinels=(("s1", 26379), ("s2", 26380)),
        master="plates",
        db=3,
        username="app",
        password="s@cret",
        ssl=False,
    )
    assert "s@cret" not in describe(settings) and "plates" in describe(settings)


def test_sentinels_can_come_as_two_settings_with_the_url_giving_db_password_and_tls() -> None:
    settings = Settings.from_env(
        {
            "PLATE_OCR_SENTINELS": "s1:26379, s2:26379",
            "PLATE_OCR_SENTINEL_MASTER": "plates",
            "PLATE_OCR_REDIS_URL": "rediss://:pw@ignored:6379/2",
        }
    )
    target = sentinel_target(settings)
    assert target is not None
    assert target.sentinels == (("s1", 26379), ("s2", 26379))
    assert (target.master, target.db, target.password, target.ssl) == ("plates", 2, "pw", True)


def test_a_plain_url_is_no_sentinel() -> None:
    assert sentinel_target(Settings(redis_url="redis://h:6379/0")) is None


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("redis+sentinel://s1:26379", {}, "a Sentinel URL is"),
        ("redis+sentinel://s1/plates/0", {}, "is not host:port"),
        ("redis+sentinel://s1:26379/plates/x", {}, "is not a number"),
        ("redis+sentinel://s1:26379/m/0", {"PLATE_OCR_SENTINELS": "s1:1"}, "or PLATE_OCR_SENT"),
        ("redis://h:6379/0", {"PLATE_OCR_SENTINELS": "s1:26379"}, "go together"),
    ],
)
def test_a_malformed_sentinel_setting_is_a_clear_error(
    url: str, env: dict[str, str], message: str
) -> None:
    settings = Settings.from_env({"PLATE_OCR_REDIS_URL": url, **env})
    with pytest.raises(ConfigError, match=message):
        connect(settings)


def test_connect_behind_sentinel_asks_sentinel_for_the_primary_lazily() -> None:
    settings = Settings(redis_url="rediss+sentinel://:pw@127.0.0.1:1/plates/5")
    client = connect(settings, client_name="plate-ocr-test")  # nothing listens on port 1: no I/O
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "plates"
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["decode_responses"]) == (5, "pw", False)
    assert pool.connection_class is redis.sentinel.SentinelManagedSSLConnection
    assert async_connect(settings).connection_pool.service_name == "plates"  # type: ignore[attr-defined]


def test_a_scripts_oom_refusal_is_raised_as_out_of_memory_whichever_way_it_is_worded() -> None:
    # Redis 7.0's wording when memory was over maxmemory as the script began (seen in
    # tests/test_redis_full.py): redis-py raises it as a plain ResponseError.
    worded = (
        "Error running script (call to f_c8a2): @user_script:56: @user_script: 56: -OOM command "
        "not allowed when used memory > 'maxmemory'."
    )
    with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"), oom_refusals():
        raise redis.exceptions.ResponseError(worded)
    # Any other script error stays what it was.
    with pytest.raises(redis.exceptions.ResponseError) as raised, oom_refusals():
        raise redis.exceptions.ResponseError("Error running script: WRONGTYPE")
    assert type(raised.value) is redis.exceptions.ResponseError
