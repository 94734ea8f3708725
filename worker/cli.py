"""`plate-ocr worker`: one batching worker pinned to one device, or one per GPU with --devices."""

import logging
import multiprocessing
import os
import signal
import sys
from types import FrameType

from plate_ocr.connection import connect
from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings

__all__ = ["run_worker"]

log = logging.getLogger("plate_ocr.worker.cli")


def run_worker(settings: Settings, *, devices: str | None = None, burst: bool = False) -> int:
    if devices:
        return _run_per_gpu(settings, devices, burst=burst)
    return _run_one(settings, burst=burst)


def _run_one(settings: Settings, *, burst: bool) -> int:
    # Heavy imports here, not at module level: `plate-ocr --help` must stay instant.
    from worker.batch_worker import BatchWorker
    from worker.engine import PlateReader
    from worker.metrics import WorkerMetrics
    from worker.probes import ProbeServer

    metrics = WorkerMetrics()
    # Up before the model loads: /healthz answers "starting" and /readyz 503 meanwhile.
    probes = None
    if settings.metrics_port is not None:
        probes = ProbeServer(metrics, settings, port=settings.metrics_port).start()
    try:
        # Resolves the device before loading anything: a missing GPU is a loud error.
        reader = PlateReader.from_settings(settings)
        worker = BatchWorker(
            settings,
            reader=reader,
            connection=connect(settings, client_name="worker"),
            metrics=metrics,
        )
        return worker.work(burst=burst)
    finally:
        if probes is not None:
            probes.close()


def _run_per_gpu(settings: Settings, devices: str, *, burst: bool) -> int:
    """One process per GPU, each pinned to its device; SIGTERM is passed on to every child."""
    try:
        indices = [int(d) for d in devices.split(",") if d.strip()]
    except ValueError as e:
        raise ConfigError(f"--devices takes GPU indices like 0,1,2, not {devices!r}") from e
    if not indices:
        raise ConfigError("--devices names no GPU")
    # spawn, not fork: a CUDA context must never be inherited across a fork.
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(
            target=_child,
            args=(_pinned(settings, i), burst),
            name=f"plate-ocr-worker-cuda{i}",
        )
        for i in indices
    ]
    for child in children:
        child.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        log.info("passing %s on to %d workers", signal.Signals(signum).name, len(children))
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    codes = [child.exitcode or 0 for child in children]
    failed = [(c.name, code) for c, code in zip(children, codes, strict=True) if code != 0]
    for name, code in failed:
        log.error("%s exited with %d", name, code)
    return max(codes, default=0)


def _pinned(settings: Settings, index: int) -> Settings:
    """The settings of the process for cuda:`index`: its device, and a port of its own
    (metrics_port + index), since each process serves its own metrics and probes."""
    update: dict[str, object] = {"device": f"cuda:{index}"}
    if settings.metrics_port is not None:
        update["metrics_port"] = settings.metrics_port + index
    return settings.model_copy(update=update)


def _child(settings: Settings, burst: bool) -> None:

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sys.exit(_run_one(settings, burst=burst))
    except PlateOcrError as e:
        print(f"plate-ocr worker ({settings.device}): error: {e}", file=sys.stderr)
        sys.exit(2)
