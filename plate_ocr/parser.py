"""The `plate-ocr` command line as argparse sees it: every command and its flags, no behaviour.

`plate_ocr.cli` builds Settings from the parsed arguments and runs the command.
"""

import argparse
from pathlib import Path
from typing import Any

from plate_ocr.constants import READERS

__all__ = ["TRAINING_TOOLS", "build_parser"]

# Commands whose arguments their own parsers read (training.synth, training.train).
TRAINING_TOOLS = ("synth", "train")

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


def _add_reader_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reader",
        choices=READERS,
        default=None,
        help="fused (default: the detector locates, a line recogniser reads, both fused), "
        "detector (the character detector alone) or fast (one small network on the whole crop)",
    )


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


def _add_group_flags(
    parser: argparse.ArgumentParser, *, burst_help: str = "drain the stream, then exit"
) -> None:
    """The flags of every command that follows a stream in a consumer group of its own."""
    parser.add_argument("--consumer", default=None, help="default: the host name")
    parser.add_argument(
        "--from-start", action="store_true", help="a new group reads the whole stream"
    )
    parser.add_argument("--burst", action="store_true", help=burst_help)


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
    _add_reader_flag(p)

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
    _add_reader_flag(p)
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
    p.add_argument(
        "--no-follow",
        action="store_true",
        help="print what the stream holds now and exit (in --group: its pending readings and "
        "those not yet delivered); without --group, --count N is the newest N (the oldest N "
        "with --from-start)",
    )

    p = sub.add_parser("events", help="one PlateEvent per vehicle track, on the events stream")
    _add_group_flags(p, burst_help="drain, close every track, exit")
    p.add_argument("--idle-timeout-s", type=float, default=None, help="close a quiet track")
    p.add_argument("--max-duration-s", type=float, default=None, help="close a long track")
    p.add_argument("--single-reads", action="store_true", default=None, help="untracked too")

    p = sub.add_parser("mqtt", help="publish readings to an MQTT broker (Home Assistant)")
    p.add_argument("--host", default=None, help="overrides PLATE_OCR_MQTT_HOST")
    p.add_argument("--port", type=int, default=None, help="overrides PLATE_OCR_MQTT_PORT")
    p.add_argument("--topic-prefix", default=None, help="plate-ocr")
    p.add_argument("--discovery", action="store_true", default=None, help="Home Assistant")
    _add_group_flags(p)

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

    _add_consumer_commands(sub)

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
    p.add_argument(
        "--fast-reader", type=Path, default=None, help="the fast reader's network (ONNX)"
    )
    p.add_argument("--calibration", type=Path, default=None, help=_CALIBRATION_HELP)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--naive", action="store_true", help="left-to-right sort only (no post-proc)")
    p.add_argument(
        "--audit",
        type=Path,
        default=None,
        help="score against a label audit's corrections (training/labels/*_audit.csv)",
    )
    _add_reader_flag(p)
    p.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        default=None,
        help="also write the report, with every misread plate, as JSON",
    )

    for name, command in sub.choices.items():
        if name not in TRAINING_TOOLS:  # those hand their arguments to parsers of their own
            _add_global_flags(command, default=argparse.SUPPRESS)
    return parser


def _add_consumer_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("watch", help="alert when a plate on a watch list is read")
    p.add_argument("--source", choices=("readings", "events"), default="readings")
    p.add_argument("--threshold", type=float, default=None, help="PLATE_OCR_WATCH_THRESHOLD")
    _add_group_flags(p)

    p = sub.add_parser("lists", help="watch lists: add NAME --file F, remove NAME, show [NAME]")
    p.add_argument("action", choices=("add", "remove", "show"))
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--file", type=Path, default=None, help="CSV: plate,label[,camera][,expires]")
    p.add_argument("--plate", action="append", default=[], help="remove only these plates")

    p = sub.add_parser("webhook", help="POST readings, events or alerts to URLs, signed")
    p.add_argument("--url", action="append", required=True, help="repeat for several URLs")
    p.add_argument("--source", choices=("readings", "events", "alerts"), default="readings")
    _add_group_flags(p)

    p = sub.add_parser("store", help="readings and events into PostgreSQL, searchable")
    p.add_argument("--dsn", default=None, help="postgresql://... (PLATE_OCR_HISTORY_DSN)")
    _add_group_flags(p, burst_help="drain the streams, then exit")
