"""Side by side on a labelled folder, in one run: the default path, the detector alone, RapidOCR.

    python bench/readers.py ../shared/data/real_us_dev [--limit N] [--json OUT] [--audit CSV]

Scores exactly as `plate-ocr eval` does (uppercase, 0-9A-Z only, letter O folded to digit 0):
exact-match %, CER, ms/plate on this machine (each reader's own time: ours batched 32 at a
time as the worker reads, RapidOCR one image at a time as its API reads), and the share read
right among the 80% the reader is most sure of (its calibrated confidence as shipped, fitted on
this set: training.calibrate prints the cross-validated figure; RapidOCR's has none here).

    default   the product's default reading path as the settings give it (PLATE_OCR_LOCATOR,
              PLATE_OCR_CASCADE_CONFIDENCE: by default the fused reader located by the detector)
    fused     the fused reader as it read before the fast reader: the detector locates, the line
              recogniser reads, both fused, every crop in two stages
    fused-fast  the fused reader located by the fast reader (`PLATE_OCR_LOCATOR=fast`)
    cascade   fused-fast with the fast reader's cascade in front at a calibrated confidence of
              0.95 (`PLATE_OCR_CASCADE_CONFIDENCE=0.95`): its readings kept at 0.95 or more
    fast      the fast reader (`--reader fast`): one small network on the whole crop
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
from training.label_audit import LabelAudit  # noqa: E402
from training.rapidocr_reader import rapidocr_reader  # noqa: E402
from training.reliability import Reliability  # noqa: E402

if TYPE_CHECKING:
    from reader.calibration import Calibration

Image = npt.NDArray[np.uint8]
BATCH = 32


Read = Callable[[Sequence[Image]], list[tuple[str, float | None]]]


def _ours(
    kind: str, backend: str = "auto", calibration: "Calibration | None" = None, **overrides: Any
) -> Read:
    """Our reader as the worker builds it from its settings (threads and all), `overrides`
    replacing some of them."""
    from plate_ocr.settings import Settings
    from reader.engine import PlateReader

    reader = PlateReader.from_settings(
        Settings(backend=backend).model_copy(update=overrides),
        reader=kind,  # type: ignore[arg-type]
        calibration=calibration,
    )
    return lambda images: [(r.text, r.confidence) for r in reader.read_arrays(images)]


def _one_view(rows: Sequence[LabelRow]) -> Read:
    from plate_ocr.settings import Settings
    from reader.views import IDENTITY
    from training.calibrate import detector_corrections

    return _ours("detector", calibration=detector_corrections(rows, Settings(), (IDENTITY,)))


def _rapidocr() -> Read:
    read_one = rapidocr_reader()
    return lambda images: [(read_one(image), None) for image in images]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--readers",
        default="default,fused,fused-fast,cascade,fast,detector,detector-torch,detector-1view,"
        "rapidocr",
    )
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    parser.add_argument(
        "--audit", type=Path, default=None, help="score against a label audit's corrections"
    )
    args = parser.parse_args(argv)

    labelled = load_labels(args.dir)
    rows = labelled[: args.limit]
    # The same readings scored a second time against the audit's corrections, where given.
    audited: list[LabelRow] | None = None
    if args.audit is not None:
        audit = LabelAudit.load(args.audit)
        audited = audit.apply(labelled, args.dir)[: args.limit]
        print(audit.describe())
    limit = 8 << 20
    images = [
        decode_image(load_path(r.file, max_bytes=limit), max_bytes=limit, max_pixels=limit * 2)
        for r in rows
    ]
    makers = {
        "default": lambda: _ours("fused"),
        "fused": lambda: _ours("fused", cascade_confidence=None, locator="detector"),
        "fused-fast": lambda: _ours("fused", cascade_confidence=None, locator="fast"),
        "cascade": lambda: _ours("fused", cascade_confidence=0.95, locator="fast"),
        "fast": lambda: _ours("fast"),
        "detector": lambda: _ours("detector"),
        "detector-torch": lambda: _ours("detector", "torch"),
        "detector-1view": lambda: _one_view(rows),
    }
    makers["rapidocr"] = _rapidocr
    results: dict[str, dict[str, Any]] = {}
    print(f"{len(rows)} plates from {args.dir}")
    header = f"{'reader':15} {'exact %':>8} {'CER':>7} {'ms/plate':>9} {'prec@80%':>9}"
    if audited is not None:
        header += f" | audited: {'exact %':>8} {'CER':>7} {'prec@80%':>9}"
    print(header)
    for name in args.readers.split(","):
        read = makers[name]()
        read(images[:2])  # warm-up outside the timing
        readings: list[tuple[str, float | None]] = []
        started = time.perf_counter()
        for start in range(0, len(images), BATCH):
            readings += read(images[start : start + BATCH])
        elapsed_s = time.perf_counter() - started
        ms = 1000 * elapsed_s / len(rows)
        score, precision = _scored(rows, readings)
        results[name] = {**score.to_dict(), "ms_per_plate": ms, "precision_at_80": precision}
        line = f"{name:15} {_columns(score, precision, ms)}"
        if audited is not None:
            score, precision = _scored(audited, readings)
            results[name]["audited"] = {**score.to_dict(), "precision_at_80": precision}
            line += f" | {'':8} {_columns(score, precision, None)}"
        print(line, flush=True)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _scored(
    rows: Sequence[LabelRow], readings: Sequence[tuple[str, float | None]]
) -> tuple[GroupScore, float | None]:
    """Exact and CER against `rows`' labels, and the share right among the 80% most sure."""
    score = GroupScore()
    right = []
    for row, (text, _) in zip(rows, readings, strict=True):
        label, got = normalise(row.text), normalise(text)
        right.append(label == got)
        score.add(exact=label == got, edits=len(align(label, got)), label_chars=len(label))
    confidences = [c for _, c in readings]
    if None in confidences:
        return score, None
    return score, Reliability.of([c or 0.0 for c in confidences], right).at_coverage(0.8)[0]


def _columns(score: GroupScore, precision: float | None, ms: float | None) -> str:
    shown = f"{precision:>9.1%}" if precision is not None else f"{'-':>9}"
    timing = f" {ms:>9.1f}" if ms is not None else ""
    return f"{score.accuracy:>8.1%} {score.cer:>7.1%}{timing} {shown}"


if __name__ == "__main__":
    sys.exit(main())
