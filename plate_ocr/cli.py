"""`plate-ocr`: the one console command. Configures logging, builds Settings once, dispatches.

Each sub-command imports its implementation lazily so that `plate-ocr enqueue` on an edge box
never loads torch.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plate_ocr.errors import PlateOcrError
from plate_ocr.settings import Settings

__all__ = ["build_parser", "main"]

log = logging.getLogger("plate_ocr.cli")

_TRAINING_TOOLS = ("synth", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plate-ocr", description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="overrides PLATE_OCR_REDIS_URL")
    parser.add_argument("--queue", help="overrides PLATE_OCR_QUEUE")
    parser.add_argument(
        "--stream", dest="results_stream", help="overrides PLATE_OCR_RESULTS_STREAM"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("read", help="read plate crops directly (the original test_ocr.py)")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (0.25)")
    p.add_argument("--model", type=Path, default=None, help="weights (default: bundled)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print the seed-compatible dict")

    p = sub.add_parser("worker", help="run a batching worker pinned to one device")
    p.add_argument("--device", default=None, help="cpu or cuda:N (never falls back)")
    p.add_argument("--devices", default=None, help="0,1,2: one worker process per GPU")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-wait-ms", type=int, default=None)
    p.add_argument("--model", dest="model_path", type=Path, default=None)
    p.add_argument("--backend", default=None, help="torch (default), onnx, openvino, engine")
    p.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz, /readyz here (--devices: PORT+N for cuda:N)",
    )

    p = sub.add_parser("enqueue", help="enqueue crops from files and folders")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--camera", dest="camera_id", default=None)
    p.add_argument("--by-reference", action="store_true", help="send file:// refs, not bytes")
    p.add_argument("--quiet", action="store_true", help="print only the count")

    p = sub.add_parser("tail", help="print readings from the results stream as JSON lines")
    p.add_argument("--group", default=None)
    p.add_argument("--consumer", default=None)
    p.add_argument("--from-start", action="store_true")
    p.add_argument("--count", type=int, default=None, help="stop after N readings")

    p = sub.add_parser("schema", help="write the JSON Schema of the job and the reading")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")

    p = sub.add_parser("demo", help="embedded Redis + CPU worker + bundled samples, end to end")
    p.add_argument("--count", type=int, default=None, help="how many samples to enqueue")

    # Listed for --help; main() hands their arguments to their own parsers.
    for name, what in (
        ("synth", "generate a synthetic YOLO plate dataset"),
        ("train", "train a YOLO11n character detector from scratch"),
    ):
        p = sub.add_parser(name, help=what, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("eval", help="score a model on DIR/labels.csv")
    p.add_argument("dir", type=Path)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--naive", action="store_true", help="left-to-right sort only (no post-proc)")
    p.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        default=None,
        help="also write the report, with every misread plate, as JSON",
    )
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        "redis_url": args.redis_url,
        "queue": args.queue,
        "results_stream": args.results_stream,
        **extra,
    }
    return Settings.from_env(os.environ, **overrides)


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "read":
        from worker.compat import run_read

        settings = _settings(args, device=args.device, model_path=args.model)
        conf = args.conf if args.conf is not None else settings.confidence
        return run_read(settings, args.images, confidence=conf, as_json=args.json)
    if cmd == "worker":
        from worker.cli import run_worker

        settings = _settings(
            args,
            device=args.device,
            batch_size=args.batch_size,
            max_wait_ms=args.max_wait_ms,
            model_path=args.model_path,
            backend=args.backend,
            metrics_port=args.metrics_port,
        )
        return run_worker(settings, devices=args.devices, burst=args.burst)
    if cmd == "enqueue":
        from producer.cli import run_enqueue

        return run_enqueue(
            _settings(args),
            args.paths,
            camera_id=args.camera_id,
            by_reference=args.by_reference,
            quiet=args.quiet,
        )
    if cmd == "tail":
        from plate_ocr.stream import run_tail

        return run_tail(
            _settings(args),
            group=args.group,
            consumer=args.consumer,
            from_start=args.from_start,
            count=args.count,
        )
    if cmd == "schema":
        from schemas import json_schemas

        text = json.dumps(json_schemas(), indent=2)
        if args.out is None:
            print(text)
        else:
            args.out.write_text(text + "\n")
        return 0
    if cmd == "demo":
        from plate_ocr.demo import run_demo

        return run_demo(os.environ, count=args.count)
    if cmd == "eval":
        from plate_ocr.training.evaluate import run_eval

        settings = _settings(args, device=args.device, model_path=args.model)
        return run_eval(
            settings,
            args.dir,
            batch_size=args.batch_size,
            imgsz=args.imgsz,
            limit=args.limit,
            naive=args.naive,
            json_out=args.json_out,
        )
    raise AssertionError(f"unhandled command {cmd}")


def _training_tool(command: str, argv: Sequence[str]) -> int:
    from plate_ocr.training import synth, train

    run = synth.main if command == "synth" else train.main
    return run(argv, prog=f"plate-ocr {command}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _TRAINING_TOOLS:
        # Offline tools with parsers of their own (and no Redis): hand them the rest verbatim.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        return _training_tool(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never let ultralytics reach for the network
    try:
        return _dispatch(args)
    except PlateOcrError as e:
        print(f"plate-ocr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
