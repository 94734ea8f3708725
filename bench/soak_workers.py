"""The soak's workers: real BatchWorker processes, replaced when killed, their RSS tracked.

Each child is this file run as a script: `python bench/soak_workers.py null|model FAILURE_RATE`,
its settings from the PLATE_OCR_ environment its pool hands it.
"""

import logging
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

# Run as a script from a checkout: the repository root first, so `reader` and `worker` are this
# tree's packages even where the editable install predates them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from plate_ocr.connection import connect
from plate_ocr.settings import ENV_PREFIX, Settings

__all__ = ["FlakyReader", "WorkerPool"]

log = logging.getLogger("plate_ocr.bench.soak")


class WorkerPool:
    """Worker processes (this file, run as a script), replaced when killed; tracks their RSS."""

    def __init__(
        self, settings: Settings, *, reader: str, failure_rate: float, log_dir: Path
    ) -> None:
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self._env.update(settings.as_env())
        self._reader = reader
        self._failure_rate = failure_rate
        self._log_dir = log_dir
        self._lock = threading.Lock()
        self.procs: list[subprocess.Popen[bytes]] = []
        self._killed: set[int] = set()
        self.peak_rss_bytes = 0
        self.crashes = 0  # workers that exited without being killed by us: always a finding

    def spawn(self) -> subprocess.Popen[bytes]:
        with open(self._log_dir / f"worker-{len(self.procs)}.log", "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, __file__, self._reader, str(self._failure_rate)],
                env=self._env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        with self._lock:
            self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [p for p in self.procs if p.poll() is None]

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.live())
        self.sample_rss()
        self._killed.add(victim.pid)
        victim.kill()
        victim.wait()
        self.spawn()

    def replace_crashed(self) -> None:
        """Start a new worker for each one that died on its own, as a Deployment would."""
        with self._lock:
            crashed = [p for p in self.procs if p.poll() is not None and p.pid not in self._killed]
            self._killed.update(p.pid for p in crashed)
        for proc in crashed:
            self.crashes += 1
            log.error("worker %d exited by itself with %s; replacing it", proc.pid, proc.returncode)
            self.spawn()

    def sample_rss(self) -> None:
        for proc in self.live():
            try:
                rss = psutil.Process(proc.pid).memory_info().rss
            except psutil.Error:  # exited between live() and here
                continue
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)

    def stop(self, grace_s: float) -> None:
        live = self.live()
        self._killed.update(p.pid for p in live)
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        for proc in live:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class FlakyReader:
    """Wraps a reader so that a fraction of its model calls raise, as a GPU out of memory
    would: the retry path then runs under the same faults as everything else."""

    def __init__(self, reader: Any, failure_rate: float) -> None:
        self._reader = reader
        self._failure_rate = failure_rate
        self._rng = random.Random(os.getpid())
        self.model_info = reader.model_info
        self.device = reader.device

    def preprocess(self, images: Any) -> Any:
        return self._reader.preprocess(images)

    def infer(self, batch: Any) -> Any:
        if self._rng.random() < self._failure_rate:
            raise RuntimeError("injected inference failure")
        return self._reader.infer(batch)

    def read_arrays(self, images: Any) -> Any:
        return self.infer(self.preprocess(images))


def _worker_main(reader_kind: str, failure_rate: float) -> int:
    # Imported here: the parent needs neither OpenCV nor (with --model) torch.
    from worker.batch_worker import BatchWorker, Reader
    from worker.null_reader import NullReader

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env(os.environ)
    reader: Reader
    if reader_kind == "model":
        from reader.engine import PlateReader

        reader = PlateReader.from_settings(settings)
    else:
        reader = NullReader()
    if failure_rate > 0:
        reader = FlakyReader(reader, failure_rate)
    connection = connect(settings, client_name="soak-worker")
    return BatchWorker(settings, reader=reader, connection=connection).work()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1], float(sys.argv[2])))
