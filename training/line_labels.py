"""Pseudo-label real plate crops for the line recogniser: three independent readers must agree.

    python -m training.line_labels ../shared/data/real_oid_unlabelled/images OUT.csv
        [--min-confidence 0.9] [--min-detector-confidence 0.2] [--min-chars 4] [--limit N]

A crop gets a label only where all three readers give the same normalised text, on one row of
at least `--min-chars` characters, and ours are confident:

- the fused reader (the default path: detector + PP-OCR line recogniser), calibrated
  confidence >= `--min-confidence` (0.9);
- the detector alone, reading the crop in its four views (`--reader detector`), calibrated
  confidence >= `--min-detector-confidence` (0.2: its calibration was fitted on US plates and
  is low on most of these foreign ones; on the first 20 crops a 0.9 floor kept 1 of the 4 crops
  where all three readers agree);
- RapidOCR's whole general-purpose pipeline (its own text detector and PP-OCRv4 recogniser on
  the crop; training.rapidocr_reader).

The line box is the one the fused reader reads: the union of the kept characters' boxes widened
by the reader's own margins (reader.fusion), so the recogniser learns the crops it will see.

OUT.csv is the manifest: every crop, each reader's text and confidence, whether it was kept and,
for kept crops, the label (the fused reader's text, which keeps the letter O that the agreement
test folds onto 0) and the line box. Crops are referred to by path, never copied. Never point
this at `real_us_dev`: it is for evaluation only.
"""

import argparse
import csv
import functools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reader.fusion import MARGIN_X, MARGIN_Y
from reader.image import decode_image, load_path
from reader.postprocess import OcrResult
from training.evaluate import normalise

__all__ = ["LINE_LABEL_FIELDS", "LineLabel", "decide", "line_box", "main", "read_manifest"]

_MAX_BYTES = 8 << 20
LINE_LABEL_FIELDS = (
    "file",
    "kept",
    "label",
    "x1",
    "y1",
    "x2",
    "y2",
    "fused",
    "fused_confidence",
    "detector",
    "detector_confidence",
    "rapidocr",
    "how",
)


@dataclass(frozen=True, slots=True)
class LineLabel:
    file: str
    text: str
    box: tuple[int, int, int, int]


def line_box(result: OcrResult, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The serial region the fused reader reads, rebuilt from its characters' boxes."""
    boxes = np.array([c.box for c in result.characters], dtype=np.float64)
    char_h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    height, width = shape
    return (
        max(int(boxes[:, 0].min() - MARGIN_X * char_h), 0),
        max(int(boxes[:, 1].min() - MARGIN_Y * char_h), 0),
        min(math.ceil(boxes[:, 2].max() + MARGIN_X * char_h), width),
        min(math.ceil(boxes[:, 3].max() + MARGIN_Y * char_h), height),
    )


def decide(
    fused: OcrResult,
    detector: OcrResult | None,
    rapidocr: str | None,
    *,
    min_confidence: float,
    min_detector_confidence: float,
    min_chars: int,
) -> str:
    """Why a crop is kept ("agree") or not (the first test it failed). The readers are asked
    in turn, the costly ones only while the crop may still pass: None is "not asked"."""
    if fused.rows != 1:
        return "not one row"
    if len(fused.text) < min_chars:
        return "too short"
    if fused.confidence < min_confidence:
        return "fused not confident"
    if detector is None:
        return "detector not asked"
    if detector.rows != 1 or normalise(detector.text) != normalise(fused.text):
        return "detector disagrees"
    if detector.confidence < min_detector_confidence:
        return "detector not confident"
    if rapidocr is None:
        return "rapidocr not asked"
    if normalise(rapidocr) != normalise(fused.text):
        return "rapidocr disagrees"
    return "agree"


def label_lines(
    files: Sequence[Path],
    *,
    fused: Callable[[list[npt.NDArray[np.uint8]]], list[OcrResult]],
    detector: Callable[[list[npt.NDArray[np.uint8]]], list[OcrResult]],
    rapidocr: Callable[[npt.NDArray[np.uint8]], str],
    min_confidence: float,
    min_detector_confidence: float,
    min_chars: int,
) -> Iterator[dict[str, str]]:
    """One manifest row per crop, as each is decided. A reader is asked only while the crop
    can still pass (RapidOCR's whole pipeline costs the most; most crops fail before it)."""
    judge = functools.partial(
        decide,
        min_confidence=min_confidence,
        min_detector_confidence=min_detector_confidence,
        min_chars=min_chars,
    )
    for path in files:
        image = decode_image(
            load_path(path, max_bytes=_MAX_BYTES), max_bytes=_MAX_BYTES, max_pixels=_MAX_BYTES * 2
        )
        ours = fused([image])[0]
        alone: OcrResult | None = None
        theirs: str | None = None
        how = judge(ours, alone, theirs)
        if how == "detector not asked":
            alone = detector([image])[0]
            how = judge(ours, alone, theirs)
        if how == "rapidocr not asked":
            theirs = rapidocr(image)
            how = judge(ours, alone, theirs)
        kept = how == "agree"
        box = line_box(ours, image.shape[:2]) if kept else ("", "", "", "")
        yield {
            "file": str(path),
            "kept": str(kept),
            "label": ours.text if kept else "",
            **dict(zip(("x1", "y1", "x2", "y2"), map(str, box), strict=True)),
            "fused": ours.text,
            "fused_confidence": f"{ours.confidence:.4f}",
            "detector": alone.text if alone is not None else "",
            "detector_confidence": f"{alone.confidence:.4f}" if alone is not None else "",
            "rapidocr": theirs if theirs is not None else "",
            "how": how,
        }


def read_manifest(path: Path) -> list[LineLabel]:
    """The kept crops of a manifest written by `main`."""
    with open(path, newline="", encoding="utf-8") as f:
        return [
            LineLabel(
                row["file"],
                row["label"],
                (int(row["x1"]), int(row["y1"]), int(row["x2"]), int(row["y2"])),
            )
            for row in csv.DictReader(f)
            if row["kept"] == "True"
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.line_labels", description=__doc__)
    parser.add_argument("images", type=Path, help="a folder of unlabelled plate crops (*.jpg)")
    parser.add_argument("out", type=Path, help="the manifest (CSV) to write")
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--min-detector-confidence", type=float, default=0.2)
    parser.add_argument("--min-chars", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    if "real_us_dev" in str(args.images.resolve()):
        parser.error("real_us_dev is for evaluation only; never label it")

    from reader.engine import PlateReader
    from training.rapidocr_reader import rapidocr_reader

    files = sorted(args.images.glob("*.jpg"))[: args.limit]
    rows = label_lines(
        files,
        fused=PlateReader(reader="fused").read_arrays,
        detector=PlateReader(reader="detector").read_arrays,
        rapidocr=rapidocr_reader(),
        min_confidence=args.min_confidence,
        min_detector_confidence=args.min_detector_confidence,
        min_chars=args.min_chars,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = total = 0
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LINE_LABEL_FIELDS)
        writer.writeheader()
        for row in rows:  # written as decided: a long run can be read while it goes
            writer.writerow(row)
            f.flush()
            kept += row["kept"] == "True"
            total += 1
    print(f"line_labels: {kept} of {total} crops kept (three readers agree) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
