"""Producer -> Redis -> worker with the bundled model -> results stream, as a user runs it."""

import csv
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from plate_ocr.demo import run_demo, sample_dir
from plate_ocr.settings import Settings
from plate_ocr.stream import ReadingStream
from producer import PlateProducer
from reader.engine import PlateReader, bundled_model_path
from reader.fast_reader import bundled_fast_reader_path
from schemas import PlateReading
from worker.batch_worker import BatchWorker

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]

pytestmark = [pytest.mark.redis, pytest.mark.model]


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    if not bundled_model_path().exists():
        pytest.skip("no bundled weights")
    return PlateReader(device="cpu")


def samples() -> list[tuple[Path, str]]:
    with (sample_dir() / "labels.csv").open(newline="") as f:
        return [(sample_dir() / row["file"], row["text"]) for row in csv.DictReader(f)]


def test_real_readings_flow_from_producer_to_the_stream(
    settings: Settings, redis_client: redis.Redis, reader: PlateReader
) -> None:
    crops = [path.read_bytes() for path, _ in samples()]
    producer = PlateProducer(settings, connection=redis_client)
    ids = producer.submit_many([*crops, b"\x89PNG\r\n\x1a\n broken"], camera_id="lane-2")

    BatchWorker(settings, reader=reader, connection=redis_client).work(burst=True)

    got = {r.job_id: r for r in ReadingStream(settings, connection=redis_client).read_all()}
    assert sorted(got) == sorted(ids)
    # The models that read them: the bundled ones the reader loaded (reader.locator).
    model = reader.model_path
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert model in (bundled_model_path(), bundled_fast_reader_path())
    ok = [got[i] for i in ids[:-1]]
    assert all(r.status == "ok" and r.model.sha256 == sha and r.camera_id == "lane-2" for r in ok)
    assert reader.recogniser_info is not None
    assert all(r.recogniser == reader.recogniser_info for r in ok)
    assert all(r.rows in (1, 2) for r in ok if r.text)
    assert any(r.text for r in ok)
    broken = got[ids[-1]]
    assert broken.error is not None and broken.error.code == "undecodable_image"
    # Request/response on top of the stream gives the same reading.
    assert producer.wait(ids[0], timeout_s=5).reading_id == got[ids[0]].reading_id


def test_the_demo_runs_on_its_embedded_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo({}, count=3) == 0
    out = capsys.readouterr().out
    assert "enqueued 3 sample crops" in out
    assert "3 readings" in out


def test_the_demo_on_a_configured_redis_ignores_readings_already_on_the_stream(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(redis_client, make_reading("someone-elses-job"))
    environ = {
        "PLATE_OCR_REDIS_URL": settings.redis_url,
        "PLATE_OCR_QUEUE": settings.queue,
        "PLATE_OCR_RESULTS_STREAM": settings.results_stream,
    }
    assert run_demo(environ, count=2) == 0
    out = capsys.readouterr().out
    assert "2 readings" in out
    assert "someone-elses-job" not in out
