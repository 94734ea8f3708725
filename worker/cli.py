"""`plate-ocr worker`: one batching worker pinned to one device, or one per GPU with --devices,
and N per device with --procs-per-device (one process cannot feed a large GPU: its Python side,
taking, decoding and publishing, tops out first)."""

import logging
import multiprocessing
import os
import signal
import sys
from types import FrameType

from plate_ocr.connection import connect
from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings

__all__ = ["pin_cuda_device", "run_worker"]

log = logging.getLogger("plate_ocr.worker.cli")


def run_worker(
    settings: Settings,
    *,
    devices: str | None = None,
    burst: bool = False,
    procs_per_device: int = 1,
) -> int:
    if procs_per_device < 1:
        raise ConfigError(f"--procs-per-device must be at least 1, not {procs_per_device}")
    if devices or procs_per_device > 1:
        targets = _devices(devices) if devices else [settings.device]
        return _run_many(settings, targets * procs_per_device, burst=burst)
    return _run_one(settings, burst=burst)


def _run_one(settings: Settings, *, burst: bool) -> int:
    # Heavy imports here, not at module level: `plate-ocr --help` must stay instant.
    from reader.engine import PlateReader
    from worker.batch_worker import BatchWorker
    from worker.metrics import WorkerMetrics
    from worker.probes import ProbeServer

    metrics = WorkerMetrics()
    # Up before the model loads: /healthz answers "starting" and /readyz 503 meanwhile.
    probes = None
    if settings.metrics_port is not None:
        probes = ProbeServer(metrics, settings, port=settings.metrics_port).start()
    try:
        # Resolves the device before loading anything: a missing GPU is a loud error.
        pin_cuda_device(settings.device)
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


def _devices(devices: str) -> list[str]:
    try:
        indices = [int(d) for d in devices.split(",") if d.strip()]
    except ValueError as e:
        raise ConfigError(f"--devices takes GPU indices like 0,1,2, not {devices!r}") from e
    if not indices:
        raise ConfigError("--devices names no GPU")
    return [f"cuda:{i}" for i in indices]


def _run_many(settings: Settings, devices: list[str], *, burst: bool) -> int:
    """One process per entry of `devices`, each pinned to its device (a device listed N times
    gets N processes); SIGTERM is passed on to every child."""
    # spawn, not fork: a CUDA context must never be inherited across a fork.
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(
            target=_child,
            args=(_pinned(settings, device, n), burst),
            name=f"plate-ocr-worker-{device.replace(':', '')}-{n}",
        )
        for n, device in enumerate(devices)
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


def _pinned(settings: Settings, device: str, n: int) -> Settings:
    """The settings of the `n`-th process (0-based, in launch order): its device, a name of its
    own when a worker id is set (or `rq info` would list one worker), and a metrics port of its
    own (metrics_port + n), since each process serves its own metrics and probes."""
    update: dict[str, object] = {"device": device}
    if settings.worker_id:
        update["worker_id"] = f"{settings.worker_id}-{n}"
    if settings.metrics_port is not None:
        update["metrics_port"] = settings.metrics_port + n
    return settings.model_copy(update=update)


def _child(settings: Settings, burst: bool) -> None:
    # A process group of its own: Ctrl-C at a terminal signals the whole foreground group, so
    # each child would get SIGINT from the terminal and again from the parent, and a second
    # signal means "stop now, without draining". Now the parent passes it on, once.
    os.setpgrp()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sys.exit(_run_one(settings, burst=burst))
    except PlateOcrError as e:
        print(f"plate-ocr worker ({settings.device}): error: {e}", file=sys.stderr)
        sys.exit(2)


def pin_cuda_device(device: str) -> None:
    """Make `device` this process's current CUDA device before anything touches CUDA.

    CUDA's current device is per thread and starts at 0: without this, a child for `cuda:3`
    creates a context on GPU 0 too, and work its libraries launch without naming a device
    lands there (reader.torch_detector also enters the device around every call, for the
    reader's stage-pool threads). The device itself stays named by its index here, as readings
    and metrics report it, so CUDA_VISIBLE_DEVICES is left as it is.
    """
    if not device.startswith("cuda"):
        return
    from reader.device import resolve_device  # the light install never gets here with cuda

    resolved = resolve_device(device)  # a missing GPU is this child's loud error, not GPU 0
    import torch

    torch.cuda.set_device(torch.device(resolved))
