"""Fit the plate-confidence calibration (`worker/models/calibration.json`) on a labelled folder.

    python -m training.calibrate ../shared/data/real_us_dev [--out worker/models/calibration.json]

First fits the detector's character presence model (worker.presence): each confident box the
detector reads is labelled a serial character or not by aligning its reading with the plate's
label, and a logistic model of its features is fitted; the exact-match rate of the detector
alone is printed with presence from 5-fold cross-validation. Then reads every plate with each
reader (fused and detector, the detector with that presence model), fits a logistic model of
"read exactly right" on the reading's features (worker.calibration), and prints, for each
reader, the reliability table and precision at 50/70/90% coverage from 5-fold
cross-validation: each plate's confidence then comes from a fit that did not see it, so the
figures are honest about plates outside the set. The file written is the fit on all plates.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from plate_ocr.settings import Settings
from training.evaluate import LabelRow, alignment, load_labels, normalise
from training.reliability import Reliability
from worker.calibration import FEATURES, Calibration, bundled_calibration_path, fit_logistic
from worker.detections import Detections
from worker.image import decode_image, load_path
from worker.postprocess import OcrResult, order_characters
from worker.presence import PRESENCE_FEATURES, PresenceModel, presence_features

if TYPE_CHECKING:
    from worker.engine import PlateReader

__all__ = ["cross_validated", "main", "serial_marks"]

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


def serial_marks(label: str, read: str) -> list[bool]:
    """For each character of `read`, whether a minimal alignment with `label` pairs it with a
    label character (read right or wrong) rather than counting it extra."""
    marks = [False] * len(read)
    for i, j in alignment(normalise(label), read):
        if i is not None and j is not None:
            marks[j] = True
    return marks


def _images(files: Sequence[Path], settings: Settings) -> Iterator[list[npt.NDArray[np.uint8]]]:
    for start in range(0, len(files), 32):
        yield [
            decode_image(
                load_path(f, max_bytes=settings.max_image_bytes),
                max_bytes=settings.max_image_bytes,
                max_pixels=settings.max_image_pixels,
            )
            for f in files[start : start + 32]
        ]


def _read_all(reader: "PlateReader", files: Sequence[Path], settings: Settings) -> list[OcrResult]:
    return [o for images in _images(files, settings) for o in reader.read_arrays(images)]


def _box_samples(
    reader: "PlateReader", rows: Sequence[LabelRow], settings: Settings
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]]:
    """Per plate: the presence features of the detector's confident boxes (none: an empty
    array), and which of them are serial characters by the label."""
    found: list[Detections] = []
    for images in _images([r.file for r in rows], settings):
        found += reader.detect(reader.preprocess(images))
    samples = []
    for row, f in zip(rows, found, strict=True):
        ordered = order_characters(f.xyxy, f.scores, f.classes, confidence=settings.confidence)
        chars = ordered.characters
        x = presence_features(
            [c.box for c in chars], [c.confidence for c in chars], [c.row for c in chars]
        )
        samples.append((x, np.array(serial_marks(row.text, normalise(ordered.text)), dtype=bool)))
    return samples


def _fit_presence(
    samples: Sequence[tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]],
) -> PresenceModel:
    x = np.vstack([s[0] for s in samples])
    y = np.concatenate([s[1] for s in samples])
    weights, intercept = fit_logistic(x.tolist(), y.tolist())
    return PresenceModel(weights=weights, intercept=intercept)


def _fit_presence_cross_validated(rows: Sequence[LabelRow], settings: Settings) -> PresenceModel:
    """The presence model fitted on all plates, after printing the detector alone's exact-match
    rate with each fold read by a model fitted on the other folds."""
    from worker.engine import PlateReader

    samples = _box_samples(PlateReader.from_settings(settings, reader="detector"), rows, settings)
    fold = np.random.default_rng(0).permutation(len(rows)) % _FOLDS
    right = 0
    for k in range(_FOLDS):
        presence = _fit_presence([s for s, f in zip(samples, fold, strict=True) if f != k])
        reader = PlateReader.from_settings(
            settings, reader="detector", calibration=Calibration(models={}, presence=presence)
        )
        test = [r for r, f in zip(rows, fold, strict=True) if f == k]
        results = _read_all(reader, [r.file for r in test], settings)
        right += sum(
            normalise(r.text) == normalise(o.text) for r, o in zip(test, results, strict=True)
        )
    extra = sum(int((~y).sum()) for _, y in samples)
    boxes = sum(len(y) for _, y in samples)
    print(f"presence: {extra} of {boxes} confident boxes are not serial characters; the detector")
    print(f"alone reads {right / len(rows):.1%} exactly with presence cross-validated")
    return _fit_presence(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__)
    parser.add_argument("dir", type=Path, help="a folder with labels.csv and its images")
    parser.add_argument("--out", type=Path, default=bundled_calibration_path())
    parser.add_argument("--model", type=Path, default=None, help="detector weights")
    args = parser.parse_args(argv)

    from worker.engine import PlateReader

    rows = load_labels(args.dir)
    settings = Settings(model_path=args.model)
    presence = _fit_presence_cross_validated(rows, settings)
    fitted: dict[str, dict[str, object]] = {}
    for kind in ("fused", "detector"):
        reader = PlateReader.from_settings(
            settings, reader=kind, calibration=Calibration(models={}, presence=presence)
        )
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
                "presence": {
                    "features": list(PRESENCE_FEATURES),
                    "weights": list(presence.weights),
                    "intercept": presence.intercept,
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
