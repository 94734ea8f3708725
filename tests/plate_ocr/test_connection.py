import random

import pytest
import redis

from plate_ocr.connection import Backoff, RedisUnavailable, connect, retry_on_disconnect
from plate_ocr.constants import REDIS_SOCKET_TIMEOUT_S
from plate_ocr.errors import PlateOcrError
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
