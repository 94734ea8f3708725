"""Synthetic USA plate crops with per-character YOLO boxes, and the dataset writer.

Every plate is seeded by (seed, index), so a dataset is byte-identical for a seed whatever the
number of worker processes. Usage:

    plate-ocr synth OUT --count 20000 --seed 0 [--workers 2]
        [--supplement REAL_CROPS_DIR --supplement-repeat 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training.synth_augment import camera
from training.synth_render import render_flat
from training.synth_states import PlateDesign
from training.synth_text import CLASS_INDEX, CLASS_NAMES

__all__ = ["add_supplement", "generate_dataset", "main", "render_plate", "write_data_yaml"]

CharBox = tuple[str, float, float, float, float]


def render_plate(
    rng: np.random.Generator, design: PlateDesign | None = None
) -> tuple[np.ndarray, str, list[CharBox]]:
    """One synthetic crop: BGR uint8 image, its text, and (char, x1, y1, x2, y2) ink boxes.

    Boxes are in pixels, left to right in reading order; unlabelled decoration has no box.
    `design` forces one state's plate (synth_states.DESIGNS); by default states are drawn by
    how common they are on the road.
    """
    flat = render_flat(rng, design)
    # Re-draw the camera (same plate) when effects stacked up to an unreadable serial; the
    # threshold is low, so hard-but-legible crops stay.
    for _ in range(4):
        img, boxes, contrast = camera(rng, flat)
        if contrast >= 18.0:
            break
    return img, flat.text, [(flat.text[k], x1, y1, x2, y2) for k, x1, y1, x2, y2 in boxes]


def yolo_lines(shape: tuple[int, ...], boxes: list[CharBox]) -> list[str]:
    h, w = shape[:2]
    lines = []
    for c, x1, y1, x2, y2 in boxes:
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{CLASS_INDEX[c]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def _write_one(job: tuple[Path, int, int, str]) -> None:
    out_dir, seed, index, split = job
    img, _, boxes = render_plate(np.random.default_rng([seed, index]))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for plate {index}")
    name = f"synth_{seed}_{index:07d}"
    (out_dir / "images" / split / f"{name}.jpg").write_bytes(buf.tobytes())
    text = "\n".join(yolo_lines(img.shape, boxes)) + "\n"
    (out_dir / "labels" / split / f"{name}.txt").write_text(text)


def write_data_yaml(out_dir: Path) -> Path:
    """data.yaml for ultralytics; written by hand so the core needs no YAML library."""
    names = "\n".join(f"  {i}: '{c}'" for i, c in enumerate(CLASS_NAMES))
    path = out_dir / "data.yaml"
    path.write_text(
        f"path: {out_dir.resolve()}\ntrain: images/train\nval: images/val\nnc: {len(CLASS_NAMES)}\n"
        f"names:\n{names}\n"
    )
    return path


def generate_dataset(
    out_dir: Path,
    *,
    count: int,
    seed: int = 0,
    val_fraction: float = 0.1,
    progress: bool = False,
    workers: int = 1,
) -> Path:
    """Write `count` plates as a YOLO dataset under out_dir and return its data.yaml path.

    The first round(count * val_fraction) indices form the validation split.
    """
    out_dir = Path(out_dir)
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    n_val = round(count * val_fraction)
    jobs = [(out_dir, seed, i, "val" if i < n_val else "train") for i in range(count)]
    step = max(1, count // 20)
    if workers > 1:
        # The fork server, not fork: forked from a process with threads running (the test
        # suite's ONNX Runtime and torch pools), a worker can die on a lock it inherited and the
        # pool then waits forever (a full test run hung so once). Indices seed plates, so the
        # order in which workers finish does not change any bytes.
        with multiprocessing.get_context("forkserver").Pool(workers) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_one, jobs, chunksize=64), 1):
                if progress and done % step == 0:
                    print(f"synth: {done}/{count}", file=sys.stderr, flush=True)
    else:
        for done, job in enumerate(jobs, 1):
            _write_one(job)
            if progress and done % step == 0:
                print(f"synth: {done}/{count}", file=sys.stderr, flush=True)
    return write_data_yaml(out_dir)


def add_supplement(out_dir: Path, src_dir: Path, *, repeat: int) -> int:
    """Copy a real labelled set (images/, labels/) `repeat` times into the training split.

    Real texture is the strongest lever for real-crop accuracy, so a small real set is
    oversampled; the copies differ after ultralytics' own augmentation. Returns files added.
    """
    images = sorted((src_dir / "images").glob("*.jpg"))
    added = 0
    for r in range(repeat):
        for img in images:
            label = src_dir / "labels" / f"{img.stem}.txt"
            if not label.is_file():
                continue
            name = f"real{r}_{img.stem}"
            shutil.copyfile(img, out_dir / "images" / "train" / f"{name}.jpg")
            shutil.copyfile(label, out_dir / "labels" / "train" / f"{name}.txt")
            added += 1
    return added


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m training.synth") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("out", type=Path, help="dataset directory to create")
    p.add_argument("--count", type=int, required=True, help="synthetic plates to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=1, help="processes (output is identical)")
    p.add_argument(
        "--supplement",
        type=Path,
        action="append",
        default=[],
        help="real labelled set (images/, labels/) to oversample into train; may be repeated",
    )
    p.add_argument("--supplement-repeat", type=int, default=4)
    args = p.parse_args(argv)
    data = generate_dataset(
        args.out,
        count=args.count,
        seed=args.seed,
        val_fraction=args.val_fraction,
        progress=True,
        workers=args.workers,
    )
    for supplement in args.supplement:
        n = add_supplement(args.out, supplement, repeat=args.supplement_repeat)
        print(f"synth: added {n} real supplement files from {supplement}", file=sys.stderr)
    print(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
