"""The queue-side sections of bench.py: bookkeeping ceiling, end to end, and RQ's own worker.

Worker processes are this bench run as `bench.py _worker THREADS`, configured through the
PLATE_OCR_* environment exactly like a deployed worker, so they read with `--backend` too.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis

from plate_ocr.settings import ENV_PREFIX, Settings
from plate_ocr.stream import parse_entry
from producer import PlateProducer, encode_png
from schemas import PlateReading

__all__ = ["bench_bookkeeping", "bench_end_to_end", "bench_rq_baseline", "worker_main"]

_READY_KEY = "plate-ocr-bench:ready"  # each worker process INCRs it once its model is warm
_READY_TIMEOUT_S = 600.0  # two cold processes loading torch on a busy 2-core box
_SUBMIT_CHUNK = 500  # jobs per submit_many when everything is enqueued up front
_TICK_S = 0.005  # the paced producer's step
_STOP_GRACE_S = 60.0


def worker_main(argv: Sequence[str]) -> int:
    """`bench.py _worker [THREADS]`: one BatchWorker with the real model, until SIGTERM. With
    no THREADS it runs at `plate-ocr worker`'s defaults (what the ratio to raw is about)."""
    from plate_ocr.connection import connect
    from reader.engine import PlateReader
    from worker.batch_worker import BatchWorker

    if argv and argv[0]:
        import torch

        torch.set_num_threads(int(argv[0]))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.from_env(os.environ)
    reader = PlateReader.from_settings(settings)
    client = connect(settings, client_name="bench-worker")
    worker = BatchWorker(settings, reader=reader, connection=client)
    client.incr(_READY_KEY)
    return worker.work()


def bench_bookkeeping(settings: Settings, client: redis.Redis, *, n: int) -> dict[str, Any]:
    """NullReader through one in-process BatchWorker in burst mode. The crops are 16x32 PNGs so
    that what is measured is the queue's bookkeeping, not image decoding."""
    from worker.batch_worker import BatchWorker
    from worker.null_reader import NullReader

    client.flushdb()
    tiny = encode_png(np.full((16, 32, 3), 127, dtype=np.uint8))
    producer = PlateProducer(settings, connection=client)
    started = time.perf_counter()
    for start in range(0, n, _SUBMIT_CHUNK):
        producer.submit_many([tiny] * min(_SUBMIT_CHUNK, n - start))
    enqueue_s = time.perf_counter() - started
    reader = NullReader()
    worker = BatchWorker(settings, reader=reader, connection=client)
    redis_cpu_before = _redis_cpu_s(client)
    with _own_signal_handlers():
        started, cpu_started = time.perf_counter(), time.process_time()
        worker.work(burst=True)
        drain_s = time.perf_counter() - started
        worker_cpu_s = time.process_time() - cpu_started  # the worker runs in this process
    redis_cpu_s = _redis_cpu_s(client) - redis_cpu_before
    published = int(client.xlen(settings.results_stream))
    if published != n:
        raise RuntimeError(f"bookkeeping run published {published} readings for {n} jobs")
    return {
        "jobs": n,
        "jobs_per_s": n / drain_s,
        # Robust to other load on a shared box: jobs per CPU-second of the worker, and of the
        # Redis server (its INFO counters: every client of that server is counted).
        "jobs_per_worker_cpu_s": n / worker_cpu_s,
        "jobs_per_redis_cpu_s": n / redis_cpu_s if redis_cpu_s > 0 else None,
        "enqueue_jobs_per_s": n / enqueue_s,
        "mean_batch": float(np.mean(reader.batches)),
    }


def bench_end_to_end(
    settings: Settings,
    client: redis.Redis,
    jpegs: Sequence[bytes],
    *,
    n: int,
    workers: Sequence[int],
    script: Path,
    worker_arg: str,
    threads: int | None,
    steady_s: float,
) -> list[dict[str, Any]]:
    """Saturation, then a paced 50% of the measured saturation rate, per worker count."""
    rows = []
    for count in workers:
        client.flushdb()
        with _worker_processes(settings, client, count, script, worker_arg, threads) as pids:
            full = _run_load(settings, client, jpegs, n=n, rate=None, pids=pids)
            rate = full["plates_per_s"] / 2
            steady_n = max(20, min(n, int(rate * steady_s)))
            half = _run_load(settings, client, jpegs, n=steady_n, rate=rate, pids=pids)
        rows += [
            {"workers": count, "load": "saturation", **full},
            {"workers": count, "load": "steady_50pct", **half},
        ]
    return rows


def bench_rq_baseline(
    settings: Settings, client: redis.Redis, reader: Any, jpegs: Sequence[bytes], *, n: int
) -> dict[str, Any]:
    """RQ's SimpleWorker (JSON serializer, burst) running read_plate_job one job at a time."""
    import rq
    from rq.serializers import JSONSerializer

    from reader import compat

    client.flushdb()
    # read_plate_job reads with the bundled weights; hand it this bench's reader instead, so
    # the baseline reads with the same weights, input shape and backend, loaded once.
    compat._reader = lambda model_path, device, kind: reader
    PlateProducer(settings, connection=client).submit_many(
        [jpegs[i % len(jpegs)] for i in range(n)]
    )
    queue = rq.Queue(settings.queue, connection=client, serializer=JSONSerializer)
    worker = rq.SimpleWorker([queue], connection=client, serializer=JSONSerializer)
    with _own_signal_handlers():
        started = time.perf_counter()
        worker.work(burst=True, logging_level="WARNING")
        elapsed = time.perf_counter() - started
    finished = queue.finished_job_registry.count
    if finished != n:
        raise RuntimeError(f"RQ SimpleWorker finished {finished} of {n} jobs")
    return {"plates": n, "plates_per_s": n / elapsed}


def _run_load(
    settings: Settings,
    client: redis.Redis,
    jpegs: Sequence[bytes],
    *,
    n: int,
    rate: float | None,
    pids: Sequence[int],
) -> dict[str, Any]:
    client.delete(settings.results_stream)
    cpu_before = _cpu_s(pids)
    producer = PlateProducer(settings, connection=client)
    crops = [jpegs[i % len(jpegs)] for i in range(n)]
    started = datetime.now(UTC)
    if rate is None:  # saturation: everything up front
        for start in range(0, n, _SUBMIT_CHUNK):
            producer.submit_many(crops[start : start + _SUBMIT_CHUNK])
    else:
        feeder = threading.Thread(target=_paced, args=(producer, crops, rate), daemon=True)
        feeder.start()
    readings = _collect(client, settings.results_stream, n, timeout_s=max(120.0, 10 * n / 5))
    worker_cpu_s = _cpu_s(pids) - cpu_before
    if rate is not None:
        feeder.join()
    last = max(r.created_at for r in readings)
    latencies = [r.timings.total_ms for r in readings]
    failed = sum(r.status != "ok" for r in readings)
    if failed:
        raise RuntimeError(f"{failed} of {n} jobs failed end to end")
    return {
        "plates": n,
        "offered_per_s": round(rate, 1) if rate is not None else None,
        "plates_per_s": n / (last - started).total_seconds(),
        # Robust to other load on a shared box: plates per second of the workers' own CPU.
        "plates_per_worker_cpu_s": n / worker_cpu_s,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_batch": _mean_batch(readings),
    }


def _redis_cpu_s(client: redis.Redis) -> float:
    info: dict[str, float] = client.info("cpu")  # type: ignore[assignment]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _paced(producer: PlateProducer, crops: Sequence[bytes], rate: float) -> None:
    """Submit crops at `rate` per second, a few at a time, on a fixed schedule (no drift)."""
    started, sent = time.perf_counter(), 0
    while sent < len(crops):
        due = min(len(crops), int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            producer.submit_many(crops[sent:due])
            sent = due
        time.sleep(_TICK_S)


def _cpu_s(pids: Sequence[int]) -> float:
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return float(sum(t.user + t.system for t in times))


def _collect(client: redis.Redis, stream: str, n: int, *, timeout_s: float) -> list[PlateReading]:
    deadline = time.monotonic() + timeout_s
    while int(client.xlen(stream)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {client.xlen(stream)} of {n} readings in {timeout_s} s")
        time.sleep(0.02)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
    return [parse_entry(fields) for _, fields in entries]


def _mean_batch(readings: Sequence[PlateReading]) -> float:
    # Readings of one batch share their worker and the moment it took them, which is each
    # reading's created_at less the time from being taken to being built.
    batches = {
        (
            r.worker_id,
            round(r.created_at.timestamp() * 1000 - r.timings.total_ms + r.timings.queue_wait_ms),
        )
        for r in readings
    }
    return len(readings) / max(len(batches), 1)


@contextmanager
def _worker_processes(
    settings: Settings,
    client: redis.Redis,
    count: int,
    script: Path,
    worker_arg: str,
    threads: int | None,
) -> Iterator[list[int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings.as_env())
    client.delete(_READY_KEY)
    procs = [
        subprocess.Popen([sys.executable, str(script), worker_arg, str(threads or "")], env=env)
        for _ in range(count)
    ]
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while int(client.get(_READY_KEY) or 0) < count:
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError("a bench worker exited or did not warm up in time")
            time.sleep(0.1)
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)  # finish the batch in hand, then exit
        for proc in procs:
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _own_signal_handlers() -> Iterator[None]:
    """In-process workers install SIGTERM/SIGINT handlers; put the bench's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
