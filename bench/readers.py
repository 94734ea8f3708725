"""Side by side on a labelled folder, in one run: the default path, the detector alone, RapidOCR.

    python bench/readers.py ../shared/data/real_us_dev [--limit N] [--json OUT]

Scores exactly as `plate-ocr eval` does (uppercase, 0-9A-Z only, letter O folded to digit 0):
exact-match %, CER, and ms/plate on this machine (each reader's own time: ours batched 32 at a
time as the worker reads, RapidOCR one image at a time as its API reads).

    fused     the product's default reading path (detector + PP-OCR line recogniser, fused)
    detector  the character detector alone (`--reader detector`), in its test-time views
    detector-torch  the same on PyTorch (needs the `gpu` extra)
    detector-1view  the detector alone on each crop as it is, one view, as it read when issue 9
              was written: the reference of the rule that the default path stays at least half
              as fast. Its corrections (presence, class bias) are fitted on this folder first, so
              its exact figure is a fit, not a cross-validated one (training.calibrate prints that).
    rapidocr  RapidOCR's own general-purpose pipeline (PP-OCRv4 text detection, angle
              classifier, recognition): the tallest text line it finds is the plate, and with no
              line found its recogniser reads the whole crop. Needs `pip install
              rapidocr-onnxruntime` (the `bench` extra).
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reader.image import decode_image, load_path  # noqa: E402
from training.evaluate import GroupScore, LabelRow, align, load_labels, normalise  # noqa: E402
from training.rapidocr_reader import rapidocr_reader  # noqa: E402

if TYPE_CHECKING:
    from reader.calibration import Calibration

Image = npt.NDArray[np.uint8]
BATCH = 32


def _ours(
    kind: str, backend: str = "auto", calibration: "Calibration | None" = None
) -> Callable[[Sequence[Image]], list[str]]:
    """Our reader as the worker builds it from its settings (threads and all)."""
    from plate_ocr.settings import Settings
    from reader.engine import PlateReader

    reader = PlateReader.from_settings(
        Settings(backend=backend),
        reader=kind,  # type: ignore[arg-type]
        calibration=calibration,
    )
    return lambda images: [r.text for r in reader.read_arrays(images)]


def _one_view(rows: Sequence[LabelRow]) -> Callable[[Sequence[Image]], list[str]]:
    from plate_ocr.settings import Settings
    from reader.views import IDENTITY
    from training.calibrate import detector_corrections

    return _ours("detector", calibration=detector_corrections(rows, Settings(), (IDENTITY,)))


def _rapidocr() -> Callable[[Sequence[Image]], list[str]]:
    read_one = rapidocr_reader()
    return lambda images: [read_one(image) for image in images]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--readers", default="fused,detector,detector-torch,detector-1view,rapidocr"
    )
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = load_labels(args.dir, limit=args.limit)
    limit = 8 << 20
    images = [
        decode_image(load_path(r.file, max_bytes=limit), max_bytes=limit, max_pixels=limit * 2)
        for r in rows
    ]
    makers = {
        "fused": lambda: _ours("fused"),
        "detector": lambda: _ours("detector"),
        "detector-torch": lambda: _ours("detector", "torch"),
        "detector-1view": lambda: _one_view(rows),
    }
    makers["rapidocr"] = _rapidocr
    results: dict[str, dict[str, Any]] = {}
    print(f"{len(rows)} plates from {args.dir}")
    print(f"{'reader':15} {'exact %':>8} {'CER':>7} {'ms/plate':>9}")
    for name in args.readers.split(","):
        read = makers[name]()
        read(images[:2])  # warm-up outside the timing
        texts: list[str] = []
        started = time.perf_counter()
        for start in range(0, len(images), BATCH):
            texts += read(images[start : start + BATCH])
        elapsed_s = time.perf_counter() - started
        score = GroupScore()
        for row, text in zip(rows, texts, strict=True):
            label, got = normalise(row.text), normalise(text)
            score.add(exact=label == got, edits=len(align(label, got)), label_chars=len(label))
        ms = 1000 * elapsed_s / len(rows)
        results[name] = {**score.to_dict(), "ms_per_plate": ms}
        print(f"{name:15} {score.accuracy:>8.1%} {score.cer:>7.1%} {ms:>9.1f}", flush=True)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
