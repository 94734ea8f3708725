"""Do the fast paths read what the reference reads? Input shapes and backends on a labelled set.

    python bench/agreement.py DIR [--model PATH] [--limit 300] [--backends onnxruntime,onnx]
        [--shapes 256x256,128x256,160x320] [--threads 1] [--rounds 3]
        [--device cuda:0 --backends engine]

For every input shape (HxW; the first is the reference, torch) the accuracy and CER of
`training.evaluate` on DIR/labels.csv; then, at the plate-shaped input, for every
backend the share of plates read with exactly torch's text, and the largest difference of a
character's confidence and box among those. `onnxruntime` is the light install's runtime (the
shipped ONNX, numpy NMS, no torch). Throughput: every backend reads the whole set once per
round, the backends taking turns within each round, so a loaded machine slows them alike; the
median round is reported. An evaluation set stays where it is: nothing is copied or trained on.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from reader.image import decode_image, load_path
from training.evaluate import evaluate, load_labels

__all__ = ["main"]


def _shape(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width)


def _read_all(reader: Any, images: Sequence[np.ndarray], batch: int) -> tuple[list[Any], float]:
    started, readings = time.perf_counter(), []
    for start in range(0, len(images), batch):
        readings += reader.read_arrays(images[start : start + batch])
    return readings, len(images) / (time.perf_counter() - started)


def _agreement(ref: Sequence[Any], got: Sequence[Any]) -> dict[str, Any]:
    same = [(a, b) for a, b in zip(ref, got, strict=True) if a.text == b.text]
    pairs = [(x, y) for a, b in same for x, y in zip(a.characters, b.characters, strict=True)]
    return {
        "identical_texts": len(same),
        "plates": len(ref),
        "share": len(same) / len(ref),
        "max_confidence_diff": max((abs(x.confidence - y.confidence) for x, y in pairs), default=0),
        "max_box_diff_px": max(
            (float(np.max(np.abs(np.subtract(x.box, y.box)))) for x, y in pairs), default=0.0
        ),
        "differences": [
            (a.text, b.text) for a, b in zip(ref, got, strict=True) if a.text != b.text
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="agreement.py", description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--backends", default="onnxruntime,onnx,openvino")
    p.add_argument("--shapes", default="256x256,128x256")
    p.add_argument("--device", default="cpu", help="cuda:0 for --backends engine")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds, backends in turn")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from reader.engine import PlateReader

    torch.set_num_threads(args.threads)
    rows = load_labels(args.dir, limit=args.limit)
    images = [decode_image(load_path(r.file, max_bytes=1 << 24), max_bytes=1 << 24,
                           max_pixels=1 << 26) for r in rows]  # fmt: skip
    report: dict[str, Any] = {"model": str(args.model), "plates": len(rows), "shapes": {}}
    for text in [s for s in args.shapes.split(",") if s]:
        reader = PlateReader(args.model, device=args.device, input_hw=_shape(text), backend="torch")
        scores = evaluate(reader, rows, batch_size=args.batch_size).overall
        _, rate = _read_all(reader, images, args.batch_size)
        report["shapes"][text] = {**scores.to_dict(), "plates_per_s": rate}
        print(
            f"{text:>8}: accuracy {scores.accuracy:.1%}, CER {scores.cer:.1%}, {rate:.1f} plates/s"
        )
    # The plate-shaped default, on torch: the path every other runtime must agree with.
    reference = PlateReader(args.model, device=args.device, backend="torch")
    ref, _ = _read_all(reference, images, args.batch_size)
    readers = {"torch": reference}
    report["backends"] = {"torch": {}}
    for backend in [b for b in args.backends.split(",") if b]:
        # onnx, openvino and onnxruntime run on the CPU only; the reference is torch there too.
        threads = args.threads if backend == "onnxruntime" else None
        reader = PlateReader(args.model, device=args.device, backend=backend, threads=threads)
        got, _ = _read_all(reader, images, args.batch_size)
        found = _agreement(ref, got)
        readers[backend], report["backends"][backend] = reader, found
        print(
            f"{backend:>11}: {found['identical_texts']}/{found['plates']} identical texts "
            f"({found['share']:.1%}), max conf diff {found['max_confidence_diff']:.1e}, "
            f"max box diff {found['max_box_diff_px']:.1e} px; "
            f"differences {found['differences'][:8]}"
        )
    rates: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, reader in readers.items():
            rates[name].append(_read_all(reader, images, args.batch_size)[1])
    print(
        f"throughput at {reference.input_hw}, batch {args.batch_size}, {args.threads} "
        f"thread(s), median of {args.rounds} interleaved rounds "
        f"(load avg {os.getloadavg()[0]:.1f}):"
    )
    for name, found_rates in rates.items():
        median = float(np.median(found_rates))
        report["backends"][name] |= {"plates_per_s": median, "rounds_plates_per_s": found_rates}
        ratio = median / float(np.median(rates["torch"]))
        print(
            f"{name:>11}: {median:.1f} plates/s ({ratio:.2f}x torch), rounds "
            + ", ".join(f"{r:.1f}" for r in found_rates)
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
