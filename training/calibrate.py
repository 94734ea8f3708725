"""Fit the plate-confidence calibration (`worker/models/calibration.json`) on a labelled folder.

    python -m training.calibrate ../shared/data/real_us_dev [--out worker/models/calibration.json]

Reads every plate with each reader (fused and detector), fits a logistic model of "read exactly
right" on the reading's features (worker.calibration), and prints, for each reader, the
reliability table and precision at 50/70/90% coverage from 5-fold cross-validation: each
plate's confidence then comes from a fit that did not see it, so the figures are honest about
plates outside the set. The file written is the fit on all plates.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plate_ocr.settings import Settings
from training.evaluate import load_labels, normalise
from training.reliability import Reliability
from worker.calibration import FEATURES, bundled_calibration_path, fit_logistic
from worker.image import decode_image, load_path
from worker.postprocess import OcrResult

__all__ = ["cross_validated", "main"]

_FOLDS = 5


def cross_validated(
    x: np.ndarray, y: np.ndarray, *, folds: int = _FOLDS, seed: int = 0
) -> np.ndarray:
    """Each plate's calibrated confidence from a fit on the other folds."""
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    out = np.zeros(len(y))
    for k in range(folds):
        weights, intercept = fit_logistic(x[fold != k].tolist(), y[fold != k].tolist())
        out[fold == k] = 1.0 / (1.0 + np.exp(-(x[fold == k] @ np.asarray(weights) + intercept)))
    return out


def _read_all(reader: object, files: Sequence[Path], settings: Settings) -> list[OcrResult]:
    results: list[OcrResult] = []
    for start in range(0, len(files), 32):
        images = [
            decode_image(
                load_path(f, max_bytes=settings.max_image_bytes),
                max_bytes=settings.max_image_bytes,
                max_pixels=settings.max_image_pixels,
            )
            for f in files[start : start + 32]
        ]
        results += reader.read_arrays(images)  # type: ignore[attr-defined]
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__)
    parser.add_argument("dir", type=Path, help="a folder with labels.csv and its images")
    parser.add_argument("--out", type=Path, default=bundled_calibration_path())
    parser.add_argument("--model", type=Path, default=None, help="detector weights")
    args = parser.parse_args(argv)

    from worker.engine import PlateReader

    rows = load_labels(args.dir)
    settings = Settings(model_path=args.model)
    fitted: dict[str, dict[str, object]] = {}
    for kind in ("fused", "detector"):
        reader = PlateReader.from_settings(settings, reader=kind)
        results = _read_all(reader, [r.file for r in rows], settings)
        right = np.array(
            [normalise(r.text) == normalise(o.text) for r, o in zip(rows, results, strict=True)]
        )
        has = np.array([o.features is not None and o.text != "" for o in results])
        x = np.array(
            [o.features.vector() if o.features else [0.0] * len(FEATURES) for o in results]
        )
        confidence = np.zeros(len(rows))
        confidence[has] = cross_validated(x[has], right[has])
        weights, intercept = fit_logistic(x[has].tolist(), right[has].tolist())
        fitted[kind] = {"weights": list(weights), "intercept": intercept}
        print(f"{kind}: {right.mean():.1%} exact on {len(rows)} plates; cross-validated:")
        print(Reliability.of(confidence.tolist(), right.tolist()).format_table())
    args.out.write_text(
        json.dumps(
            {
                "features": list(FEATURES),
                "fitted_on": f"{args.dir.name} ({len(rows)} plates)",
                "readers": fitted,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
