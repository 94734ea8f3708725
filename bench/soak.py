"""Soak: a steady stream of jobs with poison mixed in, while workers are SIGKILLed and Redis is
killed and restarted on a schedule. At the end every submitted job must have exactly one reading.

    python bench/soak.py --jobs 20000 --workers 2
    python bench/soak.py --jobs 600                       # the short version
    python bench/soak.py --redis-url redis://127.0.0.1:6379/13   # an external server: no restarts

By default the soak starts its own `redis-server` on a spare port with AOF and
`appendfsync always`, so a SIGKILLed server comes back with every write it acknowledged: any job
missing at the end was lost by our code, not by Redis. An external server's database is flushed
first (database 0 is refused) and is never restarted.

The last line printed is `soak: submitted=N ok=N errors=N lost=N duplicates=N peak_rss_mb=N`;
the exit status is 1 when anything was lost or published twice.
"""

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Run as a script from a checkout: the repository root first, so `producer` and `worker` are this
# tree's packages even where the editable install predates them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import redis
import rq
from redis_ha import DataNode, wait_for  # bench/ is this script's folder
from rq.serializers import JSONSerializer
from soak_workers import WorkerPool

from plate_ocr.connection import Backoff, RedisUnavailable, connect, retry_on_disconnect
from plate_ocr.constants import JOB_FUNC_NAME
from plate_ocr.settings import Settings
from producer import PlateProducer, encode_png
from schemas import ErrorCode, PlateJob, PlateReading

__all__ = ["SoakReport", "main", "run_soak"]

log = logging.getLogger("plate_ocr.bench.soak")

_TICK_S = 0.02  # the producer's pacing step
_OK = "ok"


@dataclass
class SoakReport:
    submitted: int = 0
    ok: int = 0
    errors: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0  # a reading with another outcome than the job was built to have
    submit_failures: int = 0  # submit() gave up (RedisUnavailable): not counted as submitted
    worker_crashes: int = 0  # workers that died by themselves (and were replaced)
    peak_rss_mb: int = 0
    elapsed_s: float = 0.0
    jobs_per_s: float = 0.0
    kills: int = 0
    redis_restarts: int = 0
    workers: int = 0
    reader: str = "null"
    lost_examples: list[str] = field(default_factory=list)

    def closing_line(self) -> str:
        return (
            f"soak: submitted={self.submitted} ok={self.ok} errors={self.errors} "
            f"lost={self.lost} duplicates={self.duplicates} peak_rss_mb={self.peak_rss_mb}"
        )


# -- the producer ---------------------------------------------------------------------------------


class Feeder(threading.Thread):
    """Submits `jobs` jobs at `rate` per second, a fraction of them poison, remembering what
    each job should end as: "ok" or the error code its poison must produce."""

    def __init__(
        self, settings: Settings, *, jobs: int, rate: float, poison: float, images: list[bytes]
    ) -> None:
        super().__init__(name="soak-feeder", daemon=True)
        self._settings = settings
        self._jobs, self._rate, self._poison, self._images = jobs, rate, poison, images
        self._rng = random.Random(7)
        self.expected: dict[str, str] = {}
        self.submit_failures = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._feed()
        except BaseException as e:  # reported by the main thread, which owns the exit status
            self.error = e

    def _feed(self) -> None:
        client = connect(self._settings, client_name="soak-producer")
        producer = PlateProducer(self._settings, connection=client)
        queue = rq.Queue(self._settings.queue, connection=client, serializer=JSONSerializer)
        backoff = Backoff(max_s=self._settings.reconnect_max_backoff_s)
        t0, sent = time.monotonic(), 0
        while sent < self._jobs:
            due = min(self._jobs, int((time.monotonic() - t0) * self._rate) + 1) - sent
            if due <= 0:
                time.sleep(_TICK_S)  # pacing the producer, not waiting for work
                continue
            inline, raw = self._make(due)
            try:
                ids = producer.submit_many([data for _, data in inline])
                self.expected.update(zip(ids, (code for code, _ in inline), strict=True))
                if raw:
                    specs = [spec for _, spec in raw]
                    retry_on_disconnect(
                        lambda: queue.enqueue_many(specs),  # noqa: B023 - called right here
                        backoff=backoff,
                        give_up_after_s=30.0,
                        what="enqueue poison",
                    )
                    self.expected.update((spec.job_id, code) for code, spec in raw)
            except RedisUnavailable as e:
                log.error("submit gave up: %s", e)
                self.submit_failures += due
            sent += due
        producer.close()

    def _make(self, n: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, Any]]]:
        """`n` jobs: (expected outcome, bytes) for the producer, (expected, RQ spec) for raw."""
        inline: list[tuple[str, bytes]] = []
        raw: list[tuple[str, Any]] = []
        for _ in range(n):
            if self._rng.random() >= self._poison:
                inline.append((_OK, self._rng.choice(self._images)))
                continue
            kind = self._rng.choice(["corrupt", "foreign", "bad_base64"])
            if kind == "corrupt":  # a PNG signature, then garbage
                garbage = self._rng.randbytes(self._rng.randrange(1, 200))
                inline.append((ErrorCode.UNDECODABLE_IMAGE.value, b"\x89PNG\r\n\x1a\n" + garbage))
                continue
            job_id = PlateJob(image_b64=b"x").job_id
            args: list[Any]
            if kind == "foreign":
                func, args, code = "os.system", ["echo pwned"], ErrorCode.FOREIGN_FUNCTION
            else:
                func, code = JOB_FUNC_NAME, ErrorCode.INVALID_BASE64
                args = [{"job_id": job_id, "image_b64": "*not base64*"}]
            spec = rq.Queue.prepare_data(
                func, args=args, job_id=job_id, result_ttl=3600, failure_ttl=3600
            )
            raw.append((code.value, spec))
        return inline, raw


def _plate_images(count: int, *, drawn: bool) -> list[bytes]:
    rng = np.random.default_rng(3)
    if not drawn:  # the NullReader only looks at the shape
        return [encode_png(rng.integers(0, 256, (24, 60 + i, 3), np.uint8)) for i in range(count)]
    import cv2

    images = []
    for _ in range(count):
        text = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"), 7))
        image = np.full((80, 300, 3), 255, np.uint8)
        cv2.putText(image, text, (12, 58), cv2.FONT_HERSHEY_DUPLEX, 1.7, (0, 0, 0), 3)
        images.append(encode_png(image))
    return images


# -- checking -------------------------------------------------------------------------------------


def _collect(
    client: redis.Redis, stream: str, wanted: set[str], *, timeout_s: float
) -> list[dict[bytes, bytes]]:
    """Every entry on the stream, reading until each wanted job has one or the time is up."""
    entries: list[dict[bytes, bytes]] = []
    seen: set[str] = set()
    cursor = b"0-0"
    backoff = Backoff(max_s=1.0)
    deadline = time.monotonic() + timeout_s
    while (left_s := deadline - time.monotonic()) > 0 and not wanted <= seen:
        reply: Any = retry_on_disconnect(
            lambda: client.xread({stream: cursor}, count=5000, block=int(min(left_s, 1) * 1000)),  # noqa: B023
            backoff=backoff,
            give_up_after_s=60.0,
            what="XREAD readings",
        )
        for entry_id, fields in reply[0][1] if reply else []:
            cursor = entry_id
            entries.append(fields)
            seen.add(fields[b"job_id"].decode())
    return entries


def _check(report: SoakReport, entries: list[dict[bytes, bytes]], expected: dict[str, str]) -> None:
    per_reading = Counter(fields[b"reading_id"] for fields in entries)
    report.duplicates = sum(n - 1 for n in per_reading.values())
    outcome: dict[str, str] = {}
    for fields in entries:
        job_id = fields[b"job_id"].decode()
        if fields[b"status"] == b"ok":
            outcome[job_id] = _OK
        else:
            error = PlateReading.model_validate_json(fields[b"reading"]).error
            outcome[job_id] = error.code.value if error else "?"
    lost = [job_id for job_id in expected if job_id not in outcome]
    report.lost, report.lost_examples = len(lost), lost[:20]
    got = Counter(outcome[j] for j in expected if j in outcome)
    report.ok = got.pop(_OK, 0)
    report.errors = sum(got.values())
    report.errors_by_code = dict(sorted(got.items()))
    report.unexpected = sum(1 for j, e in expected.items() if j in outcome and outcome[j] != e)


# -- the run --------------------------------------------------------------------------------------


def run_soak(args: argparse.Namespace) -> SoakReport:
    workdir = Path(tempfile.mkdtemp(prefix="plate-ocr-soak-"))
    own = None if args.redis_url else DataNode(workdir, 0, [])
    if own is not None:
        own.start(timeout_s=60)  # a long soak's AOF takes a while to load
    url = args.redis_url or f"redis://127.0.0.1:{own.port}/13"  # type: ignore[union-attr]
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0:
        raise SystemExit(f"refusing to flush database 0 of {url}: give the soak its own db")
    client.flushdb()
    settings = Settings(
        redis_url=url,
        queue="soak",
        results_stream="soak:readings",
        stream_maxlen=args.jobs * 2 + 10_000,  # never trim: the check reads every entry back
        batch_size=args.batch_size,
        lease_s=args.lease_s,
        recovery_interval_s=args.recovery_interval_s,
        reconnect_max_backoff_s=1.0,
        shutdown_grace_s=5.0,
        model_path=args.model_path,
        device=args.device,
    )
    pool = WorkerPool(
        settings,
        reader="model" if args.model else "null",
        failure_rate=args.inference_failure_rate,
        log_dir=workdir,
    )
    report = SoakReport(workers=args.workers, reader="model" if args.model else "null")
    rng = random.Random(11)
    t0 = time.monotonic()
    try:
        for _ in range(args.workers):
            pool.spawn()
        workers_key = f"rq:workers:{settings.queue}"
        wait_for(lambda: client.scard(workers_key) >= args.workers, timeout_s=120, what="workers")

        feeder = Feeder(
            settings,
            jobs=args.jobs,
            rate=args.rate,
            poison=args.poison,
            images=_plate_images(16, drawn=args.model),
        )
        feed_s = args.jobs / args.rate
        faults = _schedule(args, feed_s, restarts_possible=own is not None)
        log.info("feeding %d jobs over %.0f s; faults at %s", args.jobs, feed_s, faults)
        t_feed = time.monotonic()
        feeder.start()
        for at_s, kind in faults:
            while time.monotonic() - t_feed < at_s:
                pool.sample_rss()
                pool.replace_crashed()
                time.sleep(0.1)  # the fault schedule's clock
            if kind == "kill":
                pool.kill_one(rng)
                report.kills += 1
            elif own is not None:
                own.kill()
                time.sleep(args.redis_down_s)  # the outage itself
                own.start(timeout_s=60)
                report.redis_restarts += 1
            log.info("fault %s at %.1f s", kind, time.monotonic() - t_feed)
        while feeder.is_alive():
            pool.sample_rss()
            pool.replace_crashed()
            feeder.join(timeout=0.25)
        if feeder.error is not None:
            raise RuntimeError("the feeder failed") from feeder.error

        expected = dict(feeder.expected)
        entries = _collect(
            client, settings.results_stream, set(expected), timeout_s=args.drain_timeout_s
        )
        report.elapsed_s = round(time.monotonic() - t0, 1)
        pool.sample_rss()
        report.submitted, report.submit_failures = len(expected), feeder.submit_failures
        _check(report, entries, expected)
        report.jobs_per_s = round(report.submitted / max(time.monotonic() - t_feed, 1e-9), 1)
        report.peak_rss_mb = round(pool.peak_rss_bytes / 2**20)
        pool.replace_crashed()
        report.worker_crashes = pool.crashes
    finally:
        pool.stop(grace_s=10.0)
        client.close()
        if own is not None:
            own.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.info("worker logs and AOF kept in %s", workdir)
    return report


def _schedule(
    args: argparse.Namespace, feed_s: float, *, restarts_possible: bool
) -> list[tuple[float, str]]:
    """Faults spread over the feeding window, kills and restarts interleaved, never together."""
    # At least one of each by default: a soak without a fault proves nothing.
    kills = args.kills if args.kills is not None else max(1, int(feed_s // args.kill_every_s))
    restarts = 0
    if restarts_possible:
        every = max(1, int(feed_s // args.restart_every_s))
        restarts = args.restarts if args.restarts is not None else every
    events = [(feed_s * (i + 1) / (kills + 1), "kill") for i in range(kills)]
    # Offset by a third of a kill interval, so a restart never lands on a kill.
    offset_s = feed_s / (kills + 1) / 3
    events += [(feed_s * (i + 1) / (restarts + 1) + offset_s, "restart") for i in range(restarts)]
    return sorted(events)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=400.0, help="jobs submitted per second")
    p.add_argument("--poison", type=float, default=0.05, help="fraction of poison jobs")
    p.add_argument("--model", action="store_true", help="the real PlateReader, not NullReader")
    p.add_argument("--model-path", type=Path, help="weights for --model (default: the bundled)")
    p.add_argument("--device", default="cpu", help="device for --model, e.g. cuda:0")
    p.add_argument("--redis-url", help="an external server (e.g. redis://127.0.0.1:6379/13)")
    p.add_argument(
        "--inference-failure-rate",
        type=float,
        default=0.01,
        help="fraction of model calls that raise (exercises the retries)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lease-s", type=int, default=3)
    p.add_argument("--recovery-interval-s", type=float, default=0.5)
    p.add_argument("--kill-every-s", type=float, default=3.0)
    p.add_argument("--restart-every-s", type=float, default=8.0)
    p.add_argument("--kills", type=int, help="exact number of worker SIGKILLs (overrides -every)")
    p.add_argument("--restarts", type=int, help="exact number of Redis restarts")
    p.add_argument("--redis-down-s", type=float, default=1.0, help="length of each outage")
    p.add_argument("--drain-timeout-s", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="write the report here as JSON")
    p.add_argument("--keep", action="store_true", help="keep the worker logs and the AOF")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.redis_url is None and shutil.which("redis-server") is None:
        raise SystemExit("no redis-server on PATH: install it or pass --redis-url")
    if args.model:
        # Checked here: workers that cannot load weights would only crash-loop for the whole run.
        from reader.engine import bundled_model_path

        weights = args.model_path or bundled_model_path()
        if not weights.is_file():
            raise SystemExit(f"--model: no weights at {weights}; pass --model-path")
    report = run_soak(args)
    print(json.dumps(asdict(report), indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    print(report.closing_line(), flush=True)
    return 1 if report.lost or report.duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
