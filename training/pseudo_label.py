"""Pseudo-label unlabelled real plate crops: keep a crop only where two independent readers agree.

    python -m training.pseudo_label ../shared/data/real_oid_unlabelled/images OUT [--min-chars 4]

The two readers are ours (`--reader`: the default fused reader, or the detector alone) and
RapidOCR's own general-purpose pipeline (training.rapidocr_reader, PP-OCRv4 detection and
recognition on the whole crop). When their normalised texts agree on a single-row plate of at
least `--min-chars` characters the text is very likely right. The fused reader shares PP-OCR's
recogniser with RapidOCR but reads another region (the serial our boxes bound, fused with our
class scores), and it is what makes the labels worth having: they teach the detector plates it
misreads alone. The boxes are the reading's: the detector's box for each character, and for a
character only the recogniser saw, the box the fusion placed.

OUT gets `images/` and `labels/` (YOLO: class cx cy w h) in the layout that
`plate-ocr synth --supplement OUT` oversamples into a training set, and `pseudo_labels.csv`
(file, text, our read, RapidOCR's read, kept) so every decision can be checked by eye. The
crops are copied, never committed; credit their source (for the Open Images crops: CC BY 2.0,
by their Flickr authors) in the model card of weights trained on them.
"""

import argparse
import csv
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from reader.image import decode_image, load_path
from reader.postprocess import OcrResult
from training.evaluate import normalise

__all__ = ["PseudoLabel", "main", "pseudo_label", "yolo_lines"]

_MAX_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class PseudoLabel:
    file: Path
    detector: str
    rapidocr: str
    kept: bool


def yolo_lines(result: OcrResult, shape: tuple[int, int]) -> list[str]:
    """The reading's character boxes as YOLO label lines (class cx cy w h, normalised)."""
    height, width = shape
    lines = []
    for char in result.characters:
        x1, y1, x2, y2 = (max(v, 0.0) for v in char.box)
        x2, y2 = min(x2, width), min(y2, height)
        lines.append(
            f"{CLASS_NAMES.index(char.char)} {(x1 + x2) / 2 / width:.6f} "
            f"{(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    return lines


def pseudo_label(
    files: Sequence[Path],
    out_dir: Path,
    *,
    detector: Callable[[list[npt.NDArray[np.uint8]]], list[OcrResult]],
    second: Callable[[npt.NDArray[np.uint8]], str],
    min_chars: int = 4,
) -> list[PseudoLabel]:
    """Read each crop with both readers; write the crops they agree on to `out_dir`."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    decided = []
    for path in files:
        image = decode_image(
            load_path(path, max_bytes=_MAX_BYTES), max_bytes=_MAX_BYTES, max_pixels=_MAX_BYTES * 2
        )
        ours = detector([image])[0]
        theirs = normalise(second(image))
        kept = ours.rows == 1 and len(ours.text) >= min_chars and normalise(ours.text) == theirs
        if kept:
            shutil.copyfile(path, out_dir / "images" / f"{path.stem}.jpg")
            lines = yolo_lines(ours, image.shape[:2])
            (out_dir / "labels" / f"{path.stem}.txt").write_text("\n".join(lines) + "\n")
        decided.append(PseudoLabel(path, ours.text, theirs, kept))
    with open(out_dir / "pseudo_labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "text", "detector", "rapidocr", "kept"])
        for d in decided:
            writer.writerow(
                [d.file.name, d.detector if d.kept else "", d.detector, d.rapidocr, d.kept]
            )
    return decided


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pseudo_label", description=__doc__)
    parser.add_argument("images", type=Path, help="a folder of unlabelled plate crops (*.jpg)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--min-chars", type=int, default=4)
    parser.add_argument("--model", type=Path, default=None, help="detector weights")
    parser.add_argument("--reader", choices=("fused", "detector"), default="fused")
    args = parser.parse_args(argv)

    from reader.engine import PlateReader
    from training.rapidocr_reader import rapidocr_reader

    reader = PlateReader(args.model, reader=args.reader)
    files = sorted(args.images.glob("*.jpg"))
    decided = pseudo_label(
        files,
        args.out,
        detector=reader.read_arrays,
        second=rapidocr_reader(),
        min_chars=args.min_chars,
    )
    kept = sum(d.kept for d in decided)
    print(f"pseudo_label: {kept} of {len(decided)} crops kept (both readers agree) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
