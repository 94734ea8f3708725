import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from plate_ocr.cli import main
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from plate_ocr.stream import MalformedEntry, ReadingStream, parse_entry, run_tail, stream_fields
from schemas import CharacterReading, PlateReading, Timings

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]


def test_stream_fields_carry_the_reading_and_its_filterable_values(
    make_reading: MakeReading,
) -> None:
    reading = make_reading("job-1", camera_id="gate-3", confidence=0.8125)
    fields = stream_fields(reading)
    assert set(fields) == {
        "reading",
        "job_id",
        "reading_id",
        "status",
        "text",
        "confidence",
        "camera_id",
    }
    assert fields["job_id"] == "job-1"
    assert fields["reading_id"] == reading.reading_id
    assert (fields["status"], fields["text"], fields["camera_id"]) == ("ok", "ABC1234", "gate-3")
    assert fields["confidence"] == "0.8125"
    assert json.loads(fields["reading"])["job_id"] == "job-1"


def test_an_error_reading_carries_its_error_code_flat(make_reading: MakeReading) -> None:
    fields = stream_fields(make_reading("job-1", status="error", camera_id="gate-3"))
    assert (fields["status"], fields["error_code"], fields["text"]) == (
        "error",
        "undecodable_image",
        "",
    )
    assert fields["confidence"] == "0.0"
    assert "error_code" not in stream_fields(make_reading("job-2"))


def test_a_value_that_is_null_in_the_json_is_left_out_of_the_flat_fields(
    make_reading: MakeReading,
) -> None:
    fields = stream_fields(make_reading("job-1", camera_id=None))
    assert json.loads(fields["reading"])["camera_id"] is None
    assert "camera_id" not in fields
    # While an empty camera id, which is not null, stays an empty string.
    assert stream_fields(make_reading("job-2", camera_id=""))["camera_id"] == ""


def test_confidences_and_timings_are_kept_to_a_sensible_precision(
    make_reading: MakeReading,
) -> None:
    timings = Timings(
        queue_wait_ms=10.985999999999999, decode_ms=0.1234567, infer_ms=2.0004999, total_ms=13.1
    )
    char = CharacterReading(char="7", confidence=0.876543219, box=(1.0, 2.0, 3.0, 4.0), row=0)
    reading = make_reading("job-1", timings=timings, characters=(char,), confidence=0.876543219)
    document = json.loads(stream_fields(reading)["reading"])
    assert document["timings"] == {
        "queue_wait_ms": 10.986,
        "decode_ms": 0.123,
        "infer_ms": 2.0,
        "total_ms": 13.1,
    }
    assert document["confidence"] == document["characters"][0]["confidence"] == 0.8765
    assert stream_fields(reading)["confidence"] == "0.8765"
    assert parse_entry(stream_fields(reading)) == reading  # the round trip stays exact


def test_parse_entry_round_trips_str_and_bytes_fields(make_reading: MakeReading) -> None:
    reading = make_reading("job-1", status="error")
    fields = stream_fields(reading)
    assert parse_entry(fields) == reading
    assert parse_entry({k.encode(): v.encode() for k, v in fields.items()}) == reading


def test_parse_entry_rejects_an_entry_without_a_reading() -> None:
    with pytest.raises(MalformedEntry) as info:
        parse_entry({b"job_id": b"job-1"})
    assert info.value.fields == {b"job_id": b"job-1"}


def test_parse_entry_keeps_the_raw_fields_and_the_cause_of_a_bad_reading() -> None:
    with pytest.raises(MalformedEntry) as info:
        parse_entry({"reading": '{"job_id": "job-1"}'})
    assert info.value.fields == {"reading": '{"job_id": "job-1"}'}
    assert info.value.__cause__ is not None


@pytest.fixture
def stream(settings: Settings, redis_client: redis.Redis) -> ReadingStream:
    return ReadingStream(settings, connection=redis_client)


@pytest.mark.redis
def test_read_all_returns_every_reading_oldest_first(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    readings = [make_reading(f"job-{i}") for i in range(3)]
    for reading in readings:
        publish(redis_client, reading)
    assert stream.read_all() == readings


@pytest.mark.redis
def test_follow_without_from_start_sees_only_what_is_published_after_the_call(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    publish(redis_client, make_reading("old"))
    readings = stream.follow(count=1, idle_timeout_s=2)
    publish(redis_client, make_reading("new"))
    assert [r.job_id for r in readings] == ["new"]


@pytest.mark.redis
def test_follow_from_start_reads_the_backlog_then_stops_at_count(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    for i in range(5):
        publish(redis_client, make_reading(f"job-{i}"))
    got = list(stream.follow(from_start=True, count=3, idle_timeout_s=2))
    assert [r.job_id for r in got] == ["job-0", "job-1", "job-2"]


@pytest.mark.redis
def test_follow_stops_once_nothing_arrives_for_the_idle_timeout(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    publish(redis_client, make_reading("job-0"))
    assert [r.job_id for r in stream.follow(from_start=True, idle_timeout_s=0.2)] == ["job-0"]


@pytest.mark.redis
def test_follow_skips_malformed_entries_and_says_so(
    stream: ReadingStream,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.xadd(stream.name, {"job_id": "garbage"})
    publish(redis_client, make_reading("job-1"))
    with caplog.at_level(logging.ERROR, logger="plate_ocr.stream"):
        got = list(stream.follow(from_start=True, idle_timeout_s=0.2))
    assert [r.job_id for r in got] == ["job-1"]
    assert "skipping malformed entry" in caplog.text


def test_follow_refuses_a_consumer_without_a_group(
    settings: Settings, fake_redis: redis.Redis
) -> None:
    with pytest.raises(ConfigError):
        ReadingStream(settings, connection=fake_redis).follow(consumer="alice")


@pytest.mark.redis
def test_group_consumers_share_the_readings_between_them(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    alice = stream.follow("g", "alice", idle_timeout_s=0.2)
    bob = stream.follow("g", "bob", idle_timeout_s=0.2)
    publish(redis_client, make_reading("job-0"))
    assert next(alice).job_id == "job-0"
    for i in range(1, 4):
        publish(redis_client, make_reading(f"job-{i}"))
    assert [r.job_id for r in bob] == ["job-1", "job-2", "job-3"]
    assert list(alice) == []  # never handed what bob was given
    assert redis_client.xpending(stream.name, "g")["pending"] == 0


@pytest.mark.redis
def test_a_new_group_starts_at_the_oldest_entry_only_with_from_start(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    publish(redis_client, make_reading("old"))
    assert [r.job_id for r in stream.follow("fresh", "c", idle_timeout_s=0.2)] == []
    got = stream.follow("replay", "c", from_start=True, idle_timeout_s=0.2)
    assert [r.job_id for r in got] == ["old"]


@pytest.mark.redis
def test_tail_from_start_on_a_new_group_replays_and_on_an_existing_group_says_it_cannot(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(redis_client, make_reading("before-the-group"))
    argv = ["--redis-url", settings.redis_url, "--stream", settings.results_stream, "tail"]
    assert main([*argv, "--group", "replay", "--from-start", "--count", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "before-the-group"
    # A second --from-start cannot rewind the group for everyone: it is told, not silently ignored.
    publish(redis_client, make_reading("after"))
    with caplog.at_level(logging.INFO, logger="plate_ocr.stream"):
        assert main([*argv, "--group", "replay", "--from-start", "--count", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "after"
    assert "from_start applies only to a new group" in caplog.text


def test_the_readme_says_where_a_new_group_starts() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "starts at `$`" in readme
    assert 'follow(group="anpr", consumer="anpr-1", from_start=True)' in readme
    assert "tail --group G --from-start" in readme


@pytest.mark.redis
def test_a_reading_is_acknowledged_only_when_the_next_is_asked_for(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    readings = stream.follow("g", "worker-1", from_start=True, idle_timeout_s=0.2)
    for i in range(2):
        publish(redis_client, make_reading(f"job-{i}"))
    assert next(readings).job_id == "job-0"
    assert redis_client.xpending(stream.name, "g")["pending"] == 2  # both delivered, none acked
    assert next(readings).job_id == "job-1"
    assert redis_client.xpending(stream.name, "g")["pending"] == 1  # job-0 acked
    readings.close()  # the consumer dies while handling job-1


@pytest.mark.redis
def test_a_restarted_consumer_gets_its_unacknowledged_readings_again_first(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    for i in range(3):
        publish(redis_client, make_reading(f"job-{i}"))
    crashed = stream.follow("g", "worker-1", from_start=True, block_ms=100)
    assert next(crashed).job_id == "job-0"
    crashed.close()  # crashed while handling job-0: it stays pending, and so do the prefetched ones
    publish(redis_client, make_reading("job-3"))

    restarted = list(stream.follow("g", "worker-1", idle_timeout_s=0.2))
    assert [r.job_id for r in restarted] == ["job-0", "job-1", "job-2", "job-3"]
    assert redis_client.xpending(stream.name, "g")["pending"] == 0


@pytest.mark.redis
def test_a_consumer_takes_over_what_a_dead_consumer_left_pending_past_the_claim_time(
    settings: Settings, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    patient = ReadingStream(settings, connection=redis_client)  # claims after 5 minutes
    eager = ReadingStream(
        settings.model_copy(update={"stream_claim_idle_ms": 1}), connection=redis_client
    )
    for i in range(3):
        publish(redis_client, make_reading(f"job-{i}"))
    dead = patient.follow("g", "dead", from_start=True, block_ms=100)
    assert next(dead).job_id == "job-0"
    dead.close()  # its name never comes back: job-0..2 stay pending for "dead"

    assert list(patient.follow("g", "alive", idle_timeout_s=0.2)) == []
    taken = [r.job_id for r in eager.follow("g", "alive", idle_timeout_s=0.2)]
    assert taken == ["job-0", "job-1", "job-2"]
    assert redis_client.xpending(patient.name, "g")["pending"] == 0


@pytest.mark.redis
def test_a_pending_entry_trimmed_from_the_stream_is_acknowledged_and_skipped(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    entry_id = publish(redis_client, make_reading("job-0"))
    publish(redis_client, make_reading("job-1"))
    crashed = stream.follow("g", "w", from_start=True, idle_timeout_s=0.2)
    next(crashed)
    crashed.close()
    redis_client.xdel(stream.name, entry_id)
    assert [r.job_id for r in stream.follow("g", "w", idle_timeout_s=0.2)] == ["job-1"]
    assert redis_client.xpending(stream.name, "g")["pending"] == 0


@pytest.mark.redis
def test_follow_recreates_its_group_when_redis_lost_it(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    readings = stream.follow("g", "w", from_start=True, idle_timeout_s=1)
    publish(redis_client, make_reading("job-0"))
    assert next(readings).job_id == "job-0"
    redis_client.delete(stream.name)  # as after a restart without persistence
    publish(redis_client, make_reading("job-1"))
    assert next(readings).job_id == "job-1"


@pytest.mark.redis
def test_run_tail_prints_json_lines_and_stops_after_count(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for i in range(3):
        publish(redis_client, make_reading(f"job-{i}"))
    code = run_tail(settings, group=None, consumer=None, from_start=True, count=2)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [json.loads(line)["job_id"] for line in lines] == ["job-0", "job-1"]


@pytest.mark.redis
def test_run_tail_in_a_group_acknowledges_what_it_printed(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for i in range(2):
        publish(redis_client, make_reading(f"job-{i}"))
    assert run_tail(settings, group="audit", consumer="me", from_start=True, count=2) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert redis_client.xpending(settings.results_stream, "audit")["pending"] == 0


@pytest.mark.redis
def test_tail_in_a_group_with_a_count_takes_only_what_it_prints(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for i in range(10):
        publish(redis_client, make_reading(f"job-{i}"))
    argv = ["--redis-url", settings.redis_url, "--stream", settings.results_stream, "tail"]
    tail = [*argv, "--group", "g1", "--from-start", "--count", "3"]
    assert main(tail) == 0
    assert [json.loads(line)["job_id"] for line in capsys.readouterr().out.splitlines()] == [
        "job-0",
        "job-1",
        "job-2",
    ]
    # Nothing left pending for a consumer that will never come back for it...
    assert redis_client.xpending(settings.results_stream, "g1")["pending"] == 0
    # ... so the next member of the group carries on from where it stopped.
    assert main(tail) == 0
    printed = [json.loads(line)["job_id"] for line in capsys.readouterr().out.splitlines()]
    assert printed == ["job-3", "job-4", "job-5"]
    assert redis_client.xpending(settings.results_stream, "g1")["pending"] == 0


@pytest.mark.redis
def test_plate_ocr_tail_goes_through_the_command_line(
    settings: Settings,
    redis_client: redis.Redis,
    publish: Publish,
    make_reading: MakeReading,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(redis_client, make_reading("job-0"))
    argv = ["--redis-url", settings.redis_url, "--stream", settings.results_stream, "tail"]
    assert main([*argv, "--from-start", "--count", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "job-0"


def test_plate_ocr_tail_refuses_a_consumer_without_a_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--redis-url", "redis://127.0.0.1:1/0", "tail", "--consumer", "me"]) == 2
    assert "consumer group" in capsys.readouterr().err


@pytest.mark.redis
def test_create_group_fixes_where_a_new_group_starts_before_anyone_reads(
    stream: ReadingStream, redis_client: redis.Redis, publish: Publish, make_reading: MakeReading
) -> None:
    publish(redis_client, make_reading("before"))
    stream.create_group("g")
    publish(redis_client, make_reading("after"))  # before the group's first read
    assert [r.job_id for r in stream.follow("g", "c", idle_timeout_s=0.2)] == ["after"]
    stream.create_group("g", from_start=True)  # exists: goes on from where it stands
    assert list(stream.follow("g", "c", idle_timeout_s=0.2)) == []
