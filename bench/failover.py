"""Failover soak: Redis behind Sentinel loses its primary twice while jobs flow; what was lost?

    python bench/failover.py                 # REPLICAS_TO_WAIT=0 and =1, side by side
    python bench/failover.py --modes 1 --rate 200

For each PLATE_OCR_REPLICAS_TO_WAIT setting it starts, on this machine and on free ports, a
primary, a replica and three Sentinels (bench/redis_ha.py), two worker processes (the null
reader: no model, so it runs on any CPU), a producer submitting steadily and a consumer group
following the stream. The primary is SIGKILLed twice: the first time as a worker sends its START
(a take), the second as a worker sends its FINISH (the kill lands while the primary runs it, or
just before or after: it is a race, as it is in production). Sentinel promotes the replica; the
killed node is restarted as a replica of the new primary, so that the second kill also has a
replica to promote and WAIT=1 a replica to wait on.

Counted at the end, on the stream the last primary holds:
  submitted     job ids `submit` returned (acknowledged to the producer)
  readings      distinct reading_ids on the stream
  lost          acknowledged jobs with no reading on the stream
  duplicates    stream entries beyond one per reading_id
  redelivered   readings the consumer group was handed more than once (a consumer deduplicating
                on reading_id drops them; at-least-once delivery allows them)
  vanished      readings the consumer was handed that the last stream does not hold
  flow_gap_s    seconds from each kill to the next reading the consumer got

Exit status 1 when REPLICAS_TO_WAIT=1 lost or duplicated anything, or readings took more than
30 s to flow again after a kill.
"""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, cast

# Run as a script from a checkout: the repository root first, so `producer` and `worker` are this
# tree's packages even where the editable install predates them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from redis_ha import RedisHA, wait_for  # bench/ is this script's folder (not "bench.": bench.py)

from plate_ocr.connection import RedisUnavailable, connect
from plate_ocr.settings import ENV_PREFIX, Settings
from plate_ocr.stream import ReadingStream, parse_entry
from producer import PlateProducer, encode_png

__all__ = ["FailoverReport", "main", "run_failover"]

log = logging.getLogger("plate_ocr.bench.failover")

_WORKER_ARG = "_worker"
_MAX_FLOW_GAP_S = 30.0  # what "Done" asks of a failover
_QUEUE, _STREAM = "failover", "failover:readings"


@dataclass
class FailoverReport:
    replicas_to_wait: int
    submitted: int = 0
    submit_failures: int = 0
    readings: int = 0
    lost: int = 0
    duplicates: int = 0
    redelivered: int = 0
    vanished: int = 0
    flow_gap_s: list[float] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


# -- the worker child ------------------------------------------------------------------------


def _worker_main() -> int:
    """A BatchWorker with the null reader that prints `take` / `finish` as it sends START and
    FINISH, so that the parent can kill the primary at those moments."""
    from worker.batch_worker import BatchWorker
    from worker.null_reader import NullReader

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.from_env(os.environ)
    worker = BatchWorker(
        settings, reader=NullReader(delay_s=0.005), connection=connect(settings, client_name="w")
    )
    ledger: Any = worker.ledger
    start, finish = ledger._start, ledger.finish
    lock = threading.Lock()

    def mark(word: str) -> None:
        with lock:
            sys.stdout.write(word + "\n")
            sys.stdout.flush()

    def marked_start(*args: Any, **kwargs: Any) -> Any:
        mark("take")
        return start(*args, **kwargs)

    def marked_finish(*args: Any, **kwargs: Any) -> Any:
        mark("finish")
        return finish(*args, **kwargs)

    ledger._start, ledger.finish = marked_start, marked_finish
    return worker.work()


class _Workers:
    """Worker children, and the kill switch armed on their `take` / `finish` lines."""

    def __init__(self, settings: Settings, count: int, logs: Path) -> None:
        env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(Path(__file__).parents[1])}
        self._armed: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        self.procs = []
        for n in range(count):
            err = (logs / f"worker{n}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, __file__, _WORKER_ARG],
                env={**env, f"{ENV_PREFIX}WORKER_ID": f"failover-{n}"},
                stdout=subprocess.PIPE,
                stderr=err,
            )
            self.procs.append(proc)
            threading.Thread(target=self._watch, args=(proc.stdout,), daemon=True).start()

    def arm(self, word: str, action: Any) -> threading.Event:
        fired = threading.Event()

        def fire() -> None:
            action()
            fired.set()

        with self._lock:
            self._armed = (word, fire)
        return fired

    def _watch(self, stream: IO[bytes]) -> None:
        for line in stream:
            with self._lock:
                armed = self._armed
                if armed is None or line.strip().decode() != armed[0]:
                    continue
                self._armed = None
            armed[1]()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the parent --------------------------------------------------------------------------------


class _Consumer(threading.Thread):
    """A consumer group member recording each reading it is handed, and when."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="consumer", daemon=True)
        self._stream = ReadingStream(settings)
        # (when received, reading_id, job_id, when its stream entry was made), wall clock
        self.received: list[tuple[float, str, str, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            follow = self._stream.follow(
                group="bench", consumer="c1", from_start=True, block_ms=200, idle_timeout_s=1.0
            )
            for reading in follow:
                entry_id = cast(bytes, self._stream.last_entry_id)
                made_s = int(entry_id.split(b"-")[0]) / 1000.0
                self.received.append((time.time(), reading.reading_id, reading.job_id, made_s))

    def flowing_again(self, killed_at: float) -> float:
        """When the consumer got its first reading published after `killed_at`: by a new
        primary, since the old one was dead (entry ids are the server's clock, this machine's)."""

        def first() -> float | None:
            after = (got for got, _, _, made in self.received if made > killed_at)
            return next(after, None)

        wait_for(lambda: first() is not None, timeout_s=60, what="readings to flow again")
        return cast(float, first())


class _Producer(threading.Thread):
    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(name="producer", daemon=True)
        self._producer = PlateProducer(settings)
        self._period_s = 5 / rate  # submit_many of 5
        self.acked: list[str] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.wait(self._period_s):
            crops = [encode_png(np.full((8, 16 + (n + i) % 64, 3), 7, np.uint8)) for i in range(5)]
            n += 5
            try:
                self.acked += self._producer.submit_many(crops)
            except RedisUnavailable as e:
                self.failures += 5
                log.warning("submit gave up: %s", e)
        self._producer.close()


def _kill_on(workers: _Workers, word: str, ha: RedisHA) -> tuple[float, Any]:
    """SIGKILL the primary as soon as a worker says `word`; returns when, and the node."""
    killed: list[tuple[float, Any]] = []

    def kill() -> None:
        node = ha.kill_primary()
        killed.append((time.time(), node))  # after: the old primary is gone by now

    fired = workers.arm(word, kill)
    assert fired.wait(timeout=30), f"no worker sent a {word}"
    return killed[0]


def run_failover(
    replicas_to_wait: int, *, rate: float, between_s: float, root: Path
) -> FailoverReport:
    report = FailoverReport(replicas_to_wait)
    t0 = time.monotonic()
    with RedisHA(root) as ha:
        settings = Settings(
            redis_url=ha.url(),
            queue=_QUEUE,
            results_stream=_STREAM,
            replicas_to_wait=replicas_to_wait,
            replicas_wait_timeout_ms=500,
            batch_size=16,
            max_wait_ms=5,
            # Jobs a lost write left started come back this soon (at WAIT=0 that is how a
            # reading lost with the primary is read again).
            lease_s=5,
            recovery_interval_s=0.5,
            reconnect_max_backoff_s=1.0,
        )
        consumer = _Consumer(settings)
        consumer.start()
        workers = _Workers(settings, 2, root)
        producer = _Producer(settings, rate)
        producer.start()
        try:
            wait_for(lambda: len(consumer.received) > 20, timeout_s=60, what="readings to flow")
            for word in ("take", "finish"):
                time.sleep(between_s)
                killed_at, node = _kill_on(workers, word, ha)
                report.kills.append(f"{word}: killed :{node.port}")
                ha.wait_promoted(node)
                ha.rejoin(node)
                report.flow_gap_s.append(round(consumer.flowing_again(killed_at) - killed_at, 2))
            time.sleep(between_s)
        finally:
            producer.stopping.set()
            producer.join(timeout=60)
        acked = set(producer.acked)
        client = connect(settings)

        def final() -> dict[str, list[str]]:
            by_job: dict[str, list[str]] = {}
            for _, fields in cast(list[Any], client.xrange(_STREAM)):
                reading = parse_entry(fields)
                by_job.setdefault(reading.job_id, []).append(reading.reading_id)
            return by_job

        try:  # drained: every acknowledged job read, or a lease and a sweep past that
            wait_for(lambda: acked <= set(final()), timeout_s=60, what="the queue to drain")
        except AssertionError as e:
            log.warning("%s", e)
        workers.stop()
        consumer.stopping.set()
        consumer.join(timeout=10)
        by_job = final()
        ids = [r for rs in by_job.values() for r in rs]
        got = Counter(rid for _, rid, _, _ in consumer.received)
        report.submitted, report.submit_failures = len(acked), producer.failures
        report.readings = len(set(ids))
        report.lost = len(acked - set(by_job))
        report.duplicates = len(ids) - len(set(ids))
        report.redelivered = sum(n - 1 for n in got.values())
        report.vanished = len(set(got) - set(ids))
        client.close()
    report.elapsed_s = round(time.monotonic() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="0,1", help="REPLICAS_TO_WAIT settings to run (0,1)")
    parser.add_argument("--rate", type=float, default=100.0, help="jobs submitted per second")
    parser.add_argument("--between-s", type=float, default=8.0, help="seconds between kills")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    reports = []
    for mode in (int(m) for m in args.modes.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"failover-{mode}-") as tmp:
            reports.append(
                run_failover(mode, rate=args.rate, between_s=args.between_s, root=Path(tmp))
            )
    rows = ["submitted", "submit_failures", "readings", "lost", "duplicates", "redelivered",
            "vanished", "flow_gap_s", "elapsed_s"]  # fmt: skip
    print(f"{'REPLICAS_TO_WAIT':<18}" + "".join(f"{r.replicas_to_wait:>16}" for r in reports))
    for row in rows:
        cells = "".join(f"{getattr(r, row)!s:>16}" for r in reports)
        print(f"{row:<18}{cells}")
    for r in reports:
        print(f"kills at {r.replicas_to_wait}: {'; '.join(r.kills)}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    bad = [
        r
        for r in reports
        if r.replicas_to_wait >= 1
        and (r.lost or r.duplicates or any(g > _MAX_FLOW_GAP_S for g in r.flow_gap_s))
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == [_WORKER_ARG]:
        sys.exit(_worker_main())
    sys.exit(main())
