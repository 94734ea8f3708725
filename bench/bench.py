"""Throughput near the model's limit, measured side by side in one run (issue 4).

    python bench/bench.py --redis-url redis://127.0.0.1:6379/9 [--model PATH] [--n N] [--quick]
        [--device cpu|cuda:0] [--backend torch|onnxruntime|onnx|openvino|engine] [--json OUT]

One table, four sections, all on the same synthetic crops (`training.synth`):
1. raw model: `PlateReader.read_arrays` in this process, plates/s per batch size, then at the
   worker's batch size per thread count (1..CPUs, ONNX Runtime spinning as it likes): the best
   of those is what the worker is held to;
2. bookkeeping ceiling: submit_many -> BatchWorker(NullReader, burst) -> results stream, jobs/s;
3. end to end: producer -> 1 and 2 worker processes with the real model -> results stream, at
   saturation (all enqueued up front) and at a paced 50% of that rate; latency is each reading's
   `timings.total_ms` (enqueued_at -> reading built). The workers run at `plate-ocr worker`'s
   defaults (threads, decoding, spinning) unless --threads is given, and decode the JPEGs
   themselves: `e2e_1w_defaults_over_best_raw_b*` is the worker's share of the best raw rate;
4. baselines: RQ's SimpleWorker running `worker.job.read_plate_job` one job at a time (model
   loaded once), and the seed script's way (a fresh YOLO(path) per crop, then predict).

The Redis database named by `--redis-url` is flushed, so it must be named on the command line:
there is no default, and PLATE_OCR_REDIS_URL (the service's own database) is never used
(database 0 is refused). On a shared CPU the figures move
by tens of percent between runs: the load average is recorded next to them.
"""

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script from a checkout: this tree's packages first, whatever the venv has installed
# (bench_queue, beside this file, is found because a script's folder is on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import redis
from bench_queue import (
    bench_bookkeeping,
    bench_end_to_end,
    bench_rq_baseline,
    worker_main,
)

from plate_ocr.settings import Settings
from training.synth import render_plate

__all__ = ["format_table", "main", "run_bench"]

WORKER_ARG = "_worker"
_UNIQUE_CROPS = 64  # rendered once and cycled: rendering costs more than reading


def make_crops(count: int, *, seed: int = 4) -> list[np.ndarray]:
    """`count` synthetic plate crops (BGR), the same ones on every run."""
    return [render_plate(np.random.default_rng([seed, i]))[0] for i in range(count)]


def jpeg(crop: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def bench_raw(
    reader: Any,
    crops: Sequence[np.ndarray],
    sizes: Sequence[int],
    *,
    budget_s: float,
) -> list[dict[str, float]]:
    """plates/s of preprocess + infer (= read_arrays) per batch size, for `budget_s` and at least
    3 batches each, plus the median batch's split between the two."""
    rows = []
    for size in sizes:
        batch = [crops[i % len(crops)] for i in range(size)]
        reader.read_arrays(batch)  # first call at a new batch shape pays allocator warm-up
        pre_ms: list[float] = []
        infer_ms: list[float] = []
        plates, started = 0, time.perf_counter()
        cpu_started = time.process_time()
        while len(pre_ms) < 3 or time.perf_counter() - started < budget_s:
            t0 = time.perf_counter()
            prepared = reader.preprocess(batch)
            t1 = time.perf_counter()
            reader.infer(prepared)
            pre_ms.append((t1 - t0) * 1000)
            infer_ms.append((time.perf_counter() - t1) * 1000)
            plates += size
        cpu_s = time.process_time() - cpu_started
        elapsed = sum(pre_ms) + sum(infer_ms)
        rows.append(
            {
                "batch": size,
                "plates_per_s": plates * 1000 / elapsed,
                "plates_per_cpu_s": plates / cpu_s,
                "batch_ms": float(np.median(np.add(pre_ms, infer_ms))),
                "preprocess_ms": float(np.median(pre_ms)),
                "infer_ms": float(np.median(infer_ms)),
            }
        )
    return rows


def bench_seed(
    model: Path, crops: Sequence[np.ndarray], device: str, folder: Path
) -> dict[str, float]:
    """The seed's test_ocr.py: `YOLO(path)` then `model(image_path, conf)` for every crop."""
    from ultralytics.models.yolo.model import YOLO

    paths = []
    for i, crop in enumerate(crops):
        paths.append(folder / f"seed_{i}.jpg")
        paths[-1].write_bytes(jpeg(crop))
    started = time.perf_counter()
    for path in paths:
        YOLO(str(model), task="detect").predict(str(path), conf=0.25, device=device, verbose=False)
    return {"plates": len(paths), "plates_per_s": len(paths) / (time.perf_counter() - started)}


def raw_reader(settings: Settings, threads: int | None) -> Any:
    """A reader for the raw section: the worker's model and settings, at `threads` (None: the
    runtime's default), ONNX Runtime's threads left to spin (raw's best, not the worker's)."""
    from reader.engine import PlateReader

    if threads is not None and settings.backend not in ("auto", "onnxruntime"):
        import torch

        torch.set_num_threads(threads)
    return PlateReader(
        settings.model_path,
        device=settings.device,
        confidence=settings.confidence,
        imgsz=settings.imgsz,
        reader=settings.reader,
        backend=settings.backend,
        max_batch=settings.batch_size,
        threads=threads,
        spinning=True,
    )


def bench_raw_threads(
    settings: Settings, crops: Sequence[np.ndarray], counts: Sequence[int], *, budget_s: float
) -> list[dict[str, float]]:
    """plates/s at the worker's batch size for each thread count."""
    rows = []
    for count in counts:
        reader = raw_reader(settings, count)
        row = bench_raw(reader, crops, [settings.batch_size], budget_s=budget_s)[0]
        rows.append({"threads": count, **row})
    return rows


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = Settings(
        redis_url=args.redis_url,
        queue="bench-plates",
        results_stream="bench:readings",
        model_path=args.model,
        device=args.device,
        backend=args.backend,
        reader=args.reader,
        imgsz=args.imgsz,
        batch_size=args.batch_size,
        max_queue_depth=1_000_000,
    )
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    load_before = os.getloadavg()[0]
    crops = make_crops(min(_UNIQUE_CROPS, args.n))
    jpegs = [jpeg(c) for c in crops]
    reader = raw_reader(settings, args.threads)
    report: dict[str, Any] = {
        "config": {
            "model": str(args.model),
            "device": args.device,
            "backend": args.backend,
            "input_hw": list(reader.input_hw),
            "threads_per_process": args.threads,  # None: each runtime's default
            "reader": args.reader,
            "batch_size": args.batch_size,
            "n": args.n,
            "quick": args.quick,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "raw": bench_raw(reader, crops, args.sizes, budget_s=args.budget_s),
        "raw_threads": bench_raw_threads(settings, crops, args.raw_threads, budget_s=args.budget_s),
    }
    report["bookkeeping"] = bench_bookkeeping(settings, client, n=args.null_n)
    report["end_to_end"] = bench_end_to_end(
        settings,
        client,
        jpegs,
        n=args.n,
        workers=args.workers,
        script=Path(__file__),
        worker_arg=WORKER_ARG,
        threads=args.threads,
        steady_s=args.steady_s,
    )
    # Again after the end-to-end runs: on a shared box the load moves between sections, and
    # the ratio to raw compares against the mean of the two.
    best = max(report["raw_threads"], key=lambda r: r["plates_per_s"])
    report["raw_after"] = bench_raw(
        raw_reader(settings, int(best["threads"])), crops, [args.batch_size], budget_s=args.budget_s
    )
    report["raw_after"][0]["threads"] = best["threads"]
    report["baselines"] = {
        "rq_simple_worker": bench_rq_baseline(settings, client, reader, jpegs, n=args.rq_n),
        "seed_script": bench_seed(args.model, crops[: args.seed_n], args.device, args.tmp),
    }
    report["config"]["load_avg_1m"] = [load_before, os.getloadavg()[0]]
    report["ratios"], report["targets"] = _verdicts(report, args.batch_size)
    client.flushdb()
    return report


def _verdicts(report: dict[str, Any], batch: int) -> tuple[dict[str, float], dict[str, Any]]:
    before = {r["batch"]: r for r in report["raw"]}.get(batch, report["raw"][-1])
    after = report["raw_after"][0]
    raw_rate = (before["plates_per_s"] + after["plates_per_s"]) / 2
    raw_cpu_rate = (before["plates_per_cpu_s"] + after["plates_per_cpu_s"]) / 2
    batch_ms = (before["batch_ms"] + after["batch_ms"]) / 2
    e2e = {(r["workers"], r["load"]): r for r in report["end_to_end"]}
    one = e2e[(1, "saturation")]
    base = report["baselines"]
    # The best thread setting before, and the same setting again after the end-to-end runs.
    best_before = max(r["plates_per_s"] for r in report["raw_threads"])
    best_raw = (best_before + after["plates_per_s"]) / 2
    ratios = {
        f"e2e_1w_defaults_over_best_raw_b{batch}": one["plates_per_s"] / best_raw,
        f"e2e_1w_over_raw_b{batch}": one["plates_per_s"] / raw_rate,
        f"e2e_1w_over_raw_b{batch}_per_cpu_s": one["plates_per_worker_cpu_s"] / raw_cpu_rate,
        "e2e_1w_over_rq_simple_worker": one["plates_per_s"]
        / base["rq_simple_worker"]["plates_per_s"],
        "e2e_1w_over_seed_script": one["plates_per_s"] / base["seed_script"]["plates_per_s"],
    }
    if (2, "saturation") in e2e:
        ratios["e2e_2w_over_1w"] = e2e[(2, "saturation")]["plates_per_s"] / one["plates_per_s"]
    p99 = e2e[(1, "steady_50pct")]["p99_ms"]
    targets = {
        "e2e_ge_90pct_best_raw": ratios[f"e2e_1w_defaults_over_best_raw_b{batch}"] >= 0.9,
        "null_ge_10000_jobs_per_s": report["bookkeeping"]["jobs_per_s"] >= 10_000,
        "p99_at_50pct_le_3x_batch_ms": p99 <= 3 * batch_ms,
        "p99_limit_ms": round(3 * batch_ms, 1),
    }
    return ratios, targets


def format_table(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"plate-ocr bench: {Path(c['model']).name} on {c['device']} ({c['backend']}), input "
        f"{c['input_hw'][0]}x{c['input_hw'][1]}, {c['threads_per_process']} thread(s)/process, "
        f"{c['cpu_count']} CPUs, load avg {c['load_avg_1m'][0]:.1f}->{c['load_avg_1m'][1]:.1f}",
        f"{'section':40} {'/s':>8} {'/cpu-s':>8} {'p50 ms':>8} {'p99 ms':>8}  notes",
    ]

    def row(name: str, rate: float, cpu: float | None, p50: str, p99: str, note: str) -> None:
        cpu_text = f"{cpu:8.1f}" if cpu is not None else f"{'':8}"
        lines.append(f"{name:40} {rate:8.1f} {cpu_text} {p50:>8} {p99:>8}  {note}")

    rows = report["raw"] + [{**r, "at": f"{r['threads']} thread(s)"} for r in report["raw_threads"]]
    for r in rows + [
        {**r, "at": f"{r['threads']} thread(s), again after 3"} for r in report["raw_after"]
    ]:
        name = f"1 raw model, batch {r['batch']}" + (f", {r['at']}" if "at" in r else "")
        note = f"{r['batch_ms']:.1f} ms/batch = pre {r['preprocess_ms']:.1f} + infer"
        row(name, r["plates_per_s"], r["plates_per_cpu_s"], "", "", f"{note} {r['infer_ms']:.1f}")
    b = report["bookkeeping"]
    redis_rate = b.get("jobs_per_redis_cpu_s") or 0.0
    note = (
        f"{b['jobs']} jobs, mean batch {b['mean_batch']:.0f}; enqueue "
        f"{b['enqueue_jobs_per_s']:.0f}/s; {redis_rate:.0f} per Redis cpu-s"
    )
    row("2 bookkeeping, NullReader, 1 worker", b["jobs_per_s"], b["jobs_per_worker_cpu_s"],
        "", "", note)  # fmt: skip
    for r in report["end_to_end"]:
        offered = f"offered {r['offered_per_s']}/s" if r["offered_per_s"] else "all up front"
        row(f"3 end to end, {r['workers']} worker(s), {r['load']}", r["plates_per_s"],
            r["plates_per_worker_cpu_s"], f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}",
            f"{r['plates']} plates, {offered}, mean batch {r['mean_batch']:.1f}")  # fmt: skip
    for name, r in report["baselines"].items():
        row(f"4 baseline, {name}", r["plates_per_s"], None, "", "", f"{r['plates']} plates")
    lines.append("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in report["ratios"].items()))
    lines.append("targets: " + ", ".join(f"{k} {v}" for k, v in report["targets"].items()))
    return "\n".join(lines)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="weights (default: bundled)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnxruntime", "onnx", "openvino", "engine"),
        help="default: the worker's (auto)",
    )
    p.add_argument("--reader", default="fused", choices=("fused", "detector"))
    p.add_argument("--n", type=int, default=None, help="plates per end-to-end run")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    p.add_argument(
        "--redis-url",
        default=None,
        help="a Redis database the bench may FLUSH (required; database 0 is refused)",
    )
    p.add_argument("--workers", default=None, help="worker process counts, e.g. 1,2")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per process for raw and workers (default: the worker's defaults, and raw "
        "at every count from 1 to the CPUs)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=256)
    args = p.parse_args(argv)
    if args.redis_url is None:
        p.error(
            "the bench flushes the Redis database it runs on, so name one that holds nothing "
            "you want to keep: --redis-url redis://127.0.0.1:6379/9 (PLATE_OCR_REDIS_URL is "
            "never used for this)"
        )
    db = redis.Redis.from_url(args.redis_url).connection_pool.connection_kwargs.get("db", 0)
    if db == 0:  # the bench flushes its database
        p.error("refusing to flush database 0; pass a --redis-url with another db, e.g. .../9")
    if args.model is None:
        from reader.engine import bundled_model_path

        args.model = bundled_model_path()
    quick = args.quick
    args.n = args.n or (60 if quick else 2000)
    args.workers = [int(w) for w in (args.workers or ("1" if quick else "1,2")).split(",")]
    args.sizes = (1, 8, 32) if quick else (1, 8, 32, 64)
    args.budget_s, args.steady_s = (1.0, 5.0) if quick else (8.0, 30.0)
    args.null_n = 1000 if quick else 20_000
    cpus = os.cpu_count() or 1
    args.raw_threads = (
        [args.threads] if args.threads else sorted({1, cpus} if quick else range(1, cpus + 1))
    )
    args.rq_n, args.seed_n = (10, 3) if quick else (200, 20)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never let ultralytics reach for the network
    if argv[:1] == [WORKER_ARG]:
        return int(worker_main(argv[1:]))
    args = _parse(argv)
    # A bench stopped with SIGTERM must still stop its worker processes (the `finally` in
    # bench_queue._worker_processes): left running, they take the next run's jobs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="plate-ocr-bench-") as tmp:
        args.tmp = Path(tmp)
        report = run_bench(args)
    print(format_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
