"""The dashboard's endpoints, through starlette's TestClient, against the real test Redis."""

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from pydantic import SecretStr
from starlette.testclient import TestClient

from consumers.dashboard.app import COOKIE_NAME, create_app
from plate_ocr.demo import sample_dir
from plate_ocr.settings import Settings
from producer import PlateProducer
from schemas import ErrorCode, PlateReading, ReadingError

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]

pytestmark = pytest.mark.redis

SAMPLE = sample_dir() / "sample_00.jpg"
LOCAL = "http://127.0.0.1:8080"


@pytest.fixture
def client(settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(settings, connection=redis_client, stream_idle_timeout_s=0.3)
    with TestClient(app, base_url=LOCAL) as test_client:
        yield test_client


def _error(code: ErrorCode) -> dict[str, Any]:
    return {"status": "error", "error": ReadingError(code=code, message=f"{code} on purpose")}


def _sse(body: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) of each message in an SSE body."""
    messages = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            messages.append((lines["event"], lines["id"], json.loads(lines["data"])))
    return messages


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "plate-ocr" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        assert client.get(asset).status_code == 200


def test_readings_come_newest_first_with_a_cursor_at_the_newest_entry(
    client: TestClient,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    ids = [publish(redis_client, make_reading(f"job{i}", camera_id="gate-1")) for i in range(3)]
    answer = client.get("/api/readings").json()
    assert [v["reading"]["job_id"] for v in answer["readings"]] == ["job2", "job1", "job0"]
    assert answer["readings"][0]["entry_id"] == ids[-1].decode()
    assert answer["cursor"] == f"{ids[-1].decode()}/0-0"
    assert answer["scanned"] == 3
    assert len(client.get("/api/readings?limit=2").json()["readings"]) == 2


def test_readings_filter_by_camera_status_and_plate_text(
    client: TestClient,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    publish(redis_client, make_reading("a", camera_id="gate-1", text="ABC1234"))
    publish(redis_client, make_reading("b", camera_id="gate-2", text="XYZ9876"))
    publish(redis_client, make_reading("c", status="error", camera_id="gate-2"))
    publish(redis_client, make_reading("d", text="ABD5555"))  # no camera

    def jobs(query: str) -> list[str]:
        answer = client.get(f"/api/readings?{query}")
        assert answer.status_code == 200, answer.text
        return [v["reading"]["job_id"] for v in answer.json()["readings"]]

    assert jobs("camera=gate-2") == ["c", "b"]
    assert jobs("camera=") == ["d"]
    assert jobs("status=error") == ["c"]
    assert jobs("status=ok&camera=gate-2") == ["b"]
    assert jobs("q=abc-12") == ["a"]  # case and separators do not matter
    assert jobs("q=AB") == ["d", "a"]
    assert client.get("/api/readings?status=maybe").status_code == 400


def test_search_looks_only_at_the_configured_window(
    settings: Settings, redis_client: redis.Redis, make_reading: MakeReading, publish: Publish
) -> None:
    for job, text in (("old", "OLD1111"), ("mid", "NEW2222"), ("new", "NEW3333")):
        publish(redis_client, make_reading(job, text=text))
    narrow = settings.model_copy(update={"dashboard_window": 2})
    with TestClient(create_app(narrow, connection=redis_client), base_url=LOCAL) as client:
        answer = client.get("/api/readings?q=OLD").json()
        assert answer["readings"] == [] and answer["scanned"] == 2
        assert len(client.get("/api/readings?q=NEW").json()["readings"]) == 2


def test_events_are_shown_field_by_field(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    fields = {"text": "ABC1234", "confidence": "0.93", "camera_id": "gate-1", "track_id": "t-7"}
    fields |= {"reads": "12", "event_id": "ev-1", "something_new": "kept"}
    entry = cast(bytes, redis_client.xadd(settings.events_stream, cast(Any, fields)))
    answer = client.get("/api/events").json()
    assert answer["events"] == [{"entry_id": entry.decode(), "fields": fields}]


def test_stats_count_per_camera_and_error_code_and_read_rq_registries(
    client: TestClient,
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    publish(redis_client, make_reading("a", camera_id="gate-1"))
    publish(redis_client, make_reading("b", camera_id="gate-1"))
    publish(redis_client, make_reading("c", camera_id="gate-2", **_error(ErrorCode.EMPTY_IMAGE)))
    publish(redis_client, make_reading("d", status="error"))  # undecodable_image, no camera
    with PlateProducer(settings, connection=redis_client) as producer:
        producer.submit_many([SAMPLE, SAMPLE], camera_id="gate-1")
    stats = client.get("/api/stats").json()
    assert stats["queue"] == settings.queue and stats["queued"] == 2
    assert (stats["started"], stats["finished"], stats["failed"]) == (0, 0, 0)
    assert stats["cameras"] == {"": {"error": 1}, "gate-1": {"ok": 2}, "gate-2": {"error": 1}}
    assert stats["errors"] == {"empty_image": 1, "undecodable_image": 1}
    assert stats["window"] == 4
    assert stats["workers"] == []


def test_stats_list_live_rq_workers_and_leave_dead_ones_alone(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    queue = Queue(settings.queue, connection=redis_client, serializer=JSONSerializer)
    live = Worker([queue], connection=redis_client, name="live-one", serializer=JSONSerializer)
    dead = Worker([queue], connection=redis_client, name="dead-one", serializer=JSONSerializer)
    for worker in (live, dead):
        worker.register_birth()  # type: ignore[no-untyped-call]
    redis_client.delete(dead.key)  # its key expired: the process died without saying so
    workers = client.get("/api/stats").json()["workers"]
    assert [w["name"] for w in workers] == ["live-one"]
    assert workers[0]["heartbeat_age_s"] is not None
    # RQ's registry still names the dead worker: cleaning it up is RQ's business, not ours.
    assert dead.key.encode() in cast(set[bytes], redis_client.smembers("rq:workers"))


def test_the_crop_of_an_inline_job_is_served_as_its_image_type(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    with PlateProducer(settings, connection=redis_client) as producer:
        job_id = producer.submit(SAMPLE)
    answer = client.get(f"/api/crop/{job_id}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.content == SAMPLE.read_bytes()


def test_the_crop_of_a_redis_reference_is_read_from_its_key(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    with PlateProducer(settings, connection=redis_client) as producer:
        ref = producer.put_image(SAMPLE)
        job_id = producer.submit_ref(ref)
        assert client.get(f"/api/crop/{job_id}").content == SAMPLE.read_bytes()
        redis_client.delete(ref.removeprefix("redis://"))
        gone = client.get(f"/api/crop/{job_id}")
    assert gone.status_code == 404 and "expired" in gone.json()["error"]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (b"<html><script>alert(1)</script></html>", "not a JPEG"),
        ("file:///etc/passwd", "file:// crops are not served"),
    ],
)
def test_crops_that_are_not_images_or_are_files_are_refused(
    client: TestClient, settings: Settings, redis_client: redis.Redis, image: Any, reason: str
) -> None:
    with PlateProducer(settings, connection=redis_client) as producer:
        job_id = producer.submit(image)
    answer = client.get(f"/api/crop/{job_id}")
    assert answer.status_code == 404 and reason in answer.json()["error"]
    assert answer.headers["content-type"] == "application/json"


def test_a_crop_whose_job_has_expired_is_a_404(client: TestClient) -> None:
    answer = client.get("/api/crop/no-such-job")
    assert answer.status_code == 404 and "expired" in answer.json()["error"]
    assert client.get("/api/crop/..%2F..%2Fetc").status_code == 404


def test_the_stream_sends_readings_and_events_after_the_cursor_and_resumes(
    client: TestClient,
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    first = publish(redis_client, make_reading("job1", camera_id="gate-1")).decode()
    event = cast(bytes, redis_client.xadd(settings.events_stream, {"text": "ABC1234"})).decode()
    second = publish(redis_client, make_reading("job2", status="error")).decode()

    messages = _sse(client.get("/api/stream?cursor=0-0/0-0").text)
    kinds = sorted((kind, msg_id) for kind, msg_id, _ in messages)
    assert kinds == [
        ("event", f"{second}/{event}"),
        ("reading", f"{first}/0-0"),
        ("reading", f"{second}/0-0"),
    ]
    views = {(kind, data["entry_id"]): data for kind, _, data in messages}
    assert views["reading", first]["reading"]["camera_id"] == "gate-1"
    assert views["event", event]["fields"] == {"text": "ABC1234"}

    # A browser that reconnects sends the last id it saw, and gets only what came after.
    resumed = client.get("/api/stream", headers={"last-event-id": f"{first}/{event}"})
    assert [(k, d["entry_id"]) for k, _, d in _sse(resumed.text)] == [("reading", second)]
    assert resumed.headers["content-type"].startswith("text/event-stream")


def test_the_stream_starts_at_the_newest_entries_without_a_cursor(
    client: TestClient, redis_client: redis.Redis, make_reading: MakeReading, publish: Publish
) -> None:
    publish(redis_client, make_reading("old"))
    assert _sse(client.get("/api/stream").text) == []
    assert client.get("/api/stream?cursor=nonsense").status_code == 400


def test_nothing_the_dashboard_does_writes_to_redis(
    client: TestClient,
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    with PlateProducer(settings, connection=redis_client) as producer:
        job_id = producer.submit(SAMPLE, camera_id="gate-1")
    publish(redis_client, make_reading(job_id, camera_id="gate-1"))
    redis_client.xadd(settings.events_stream, {"text": "ABC1234"})

    def everything() -> dict[bytes, Any]:
        # Contents, not DUMP: a read may make Redis rehash a hash, which reorders its DUMP.
        read = {
            b"string": redis_client.get,
            b"hash": redis_client.hgetall,
            b"list": lambda k: redis_client.lrange(k, 0, -1),
            b"set": redis_client.smembers,
            b"zset": lambda k: redis_client.zrange(k, 0, -1, withscores=True),
            b"stream": lambda k: (redis_client.xrange(k), redis_client.xinfo_groups(k)),
        }
        keys = cast(list[bytes], redis_client.keys("*"))
        return {k: read[cast(bytes, redis_client.type(k))](k) for k in keys}

    before = everything()
    for path in ("/", "/api/readings?q=ABC", "/api/events", "/api/stats", f"/api/crop/{job_id}"):
        assert client.get(path).status_code == 200, path
    client.get("/api/stream?cursor=0-0/0-0")
    assert everything() == before


@pytest.fixture
def guarded(settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    locked = settings.model_copy(update={"dashboard_token": SecretStr("s3cret")})
    app = create_app(locked, connection=redis_client)
    with TestClient(
        app, base_url="http://dashboard.example", follow_redirects=False
    ) as test_client:
        yield test_client


def test_with_a_token_every_request_must_carry_it(guarded: TestClient) -> None:
    for path in ("/", "/api/stats", "/api/stream", "/static/dashboard.js"):
        refused = guarded.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["x-content-type-options"] == "nosniff"
    assert guarded.get("/api/stats", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/api/stats", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_a_token_in_the_address_is_traded_for_a_cookie(guarded: TestClient) -> None:
    answer = guarded.get("/?token=s3cret")
    assert answer.status_code == 303 and answer.headers["location"].endswith("/")
    assert "token" not in answer.headers["location"]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=s3cret") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert guarded.get("/api/stats").status_code == 200  # the client kept the cookie
    assert guarded.get("/?token=wrong").status_code == 200  # the cookie, not the wrong token


@pytest.mark.parametrize("base_url", ["http://localhost:8080", "http://[::1]:8080"])
def test_without_a_token_loopback_names_are_answered(
    settings: Settings, redis_client: redis.Redis, base_url: str
) -> None:
    with TestClient(create_app(settings, connection=redis_client), base_url=base_url) as client:
        assert client.get("/api/stats").status_code == 200


def test_without_a_token_other_names_are_refused_against_dns_rebinding(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = create_app(settings, connection=redis_client)
    with TestClient(app, base_url="http://attacker.example:8080") as client:
        refused = client.get("/api/readings")
    assert refused.status_code == 421 and "127.0.0.1" in refused.text


def test_a_lost_redis_is_a_503_that_says_so() -> None:
    unreachable = Settings(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    with TestClient(create_app(unreachable), base_url=LOCAL) as client:
        for path in ("/api/stats", "/api/readings", "/api/stream"):
            answer = client.get(path)
            assert answer.status_code == 503, path
            assert "Redis is unreachable" in answer.json()["error"]
        assert client.get("/").status_code == 200  # the page still loads, and says so
