"""`plate-ocr tail --no-follow` / `ReadingStream.read_now()`: what the stream holds now, then exit.

Against the real Redis. The command runs on a thread with a deadline, so that a tail that waits
for new readings (what `--no-follow` exists to avoid) fails the test instead of hanging it.
"""

import json
import threading
from collections.abc import Callable, Sequence

import pytest
import redis

from plate_ocr.cli import main
from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream
from schemas import PlateReading

pytestmark = pytest.mark.redis

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]

DEADLINE_S = 10.0  # far above a few non-blocking reads; a blocking tail never returns at all


def tail(settings: Settings, capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    """Runs `plate-ocr tail FLAGS` to its end; the job ids it printed."""
    argv = ["--redis-url", settings.redis_url, "--stream", settings.results_stream, "tail"]
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main([*argv, *flags])), daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"tail {' '.join(flags)} did not exit within {DEADLINE_S} s"
    assert codes == [0]
    return [json.loads(line)["job_id"] for line in capsys.readouterr().out.splitlines()]


def publish_jobs(
    client: redis.Redis, publish: Publish, make_reading: MakeReading, names: Sequence[str]
) -> None:
    for name in names:
        publish(client, make_reading(name))


def test_no_follow_prints_what_the_stream_holds_and_exits(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = [f"job-{i}" for i in range(5)]
    publish_jobs(redis_client, publish, make_reading, jobs)
    # The case: a count larger than the stream, which a following tail waits on forever.
    assert tail(settings, capsys, "--from-start", "--count", "10", "--no-follow") == jobs
    assert tail(settings, capsys, "--no-follow") == jobs
    # --count takes from the end, as `tail -n` does; --from-start from the beginning.
    assert tail(settings, capsys, "--no-follow", "--count", "2") == ["job-3", "job-4"]
    assert tail(settings, capsys, "--no-follow", "--count", "2", "--from-start") == jobs[:2]


def test_no_follow_on_an_empty_or_missing_stream_prints_nothing_and_exits(
    settings: Settings, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tail(settings, capsys, "--no-follow") == []
    assert tail(settings, capsys, "--no-follow", "--group", "g", "--from-start") == []


def test_no_follow_in_a_group_prints_its_pending_then_its_new_readings_and_acknowledges(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = ReadingStream(settings, connection=redis_client)
    publish_jobs(redis_client, publish, make_reading, ["job-0", "job-1"])
    crashed = stream.follow("g", "me", from_start=True, block_ms=100)
    assert next(crashed).job_id == "job-0"
    crashed.close()  # died handling job-0: job-0 and job-1 stay pending for "me"
    publish_jobs(redis_client, publish, make_reading, ["job-2"])
    assert redis_client.xpending(settings.results_stream, "g")["pending"] == 2

    group = ("--no-follow", "--group", "g", "--consumer", "me")
    assert tail(settings, capsys, *group) == ["job-0", "job-1", "job-2"]
    assert redis_client.xpending(settings.results_stream, "g")["pending"] == 0
    assert tail(settings, capsys, *group) == []  # the group has handed everything out
    # A new group starts at the stream's end unless told otherwise, as `tail --group` does.
    assert tail(settings, capsys, "--no-follow", "--group", "fresh") == []
    assert tail(settings, capsys, "--no-follow", "--group", "replay", "--from-start") == [
        "job-0",
        "job-1",
        "job-2",
    ]


def test_no_follow_in_a_group_with_a_count_takes_only_what_it_prints(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish_jobs(redis_client, publish, make_reading, [f"job-{i}" for i in range(5)])
    group = ("--no-follow", "--group", "g", "--from-start", "--count", "3")
    assert tail(settings, capsys, *group) == ["job-0", "job-1", "job-2"]
    assert redis_client.xpending(settings.results_stream, "g")["pending"] == 0
    assert tail(settings, capsys, *group) == ["job-3", "job-4"]


def test_read_now_stops_at_the_newest_entry_when_it_was_called(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    stream = ReadingStream(settings, connection=redis_client)
    publish(redis_client, make_reading("before"))
    readings = stream.read_now()
    publish(redis_client, make_reading("after"))  # published before the first reading is taken
    assert [r.job_id for r in readings] == ["before"]


def test_read_now_counts_only_readings_from_the_end(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    stream = ReadingStream(settings, connection=redis_client)
    publish_jobs(redis_client, publish, make_reading, ["job-0", "job-1", "job-2"])
    redis_client.xadd(settings.results_stream, {"job_id": "garbage"})  # not a reading
    assert [r.job_id for r in stream.read_now(count=2)] == ["job-1", "job-2"]
    # Over more than one page of entries, backwards.
    publish_jobs(redis_client, publish, make_reading, [f"more-{i}" for i in range(250)])
    assert [r.job_id for r in stream.read_now(count=252)][:3] == ["job-1", "job-2", "more-0"]
    assert len(list(stream.read_now(from_start=True))) == 253
