"""Fit the plate-confidence calibration (`reader/models/calibration.json`) on a labelled folder.

    python -m training.calibrate ../shared/data/real_us_dev [--out reader/models/calibration.json]

First fits the detector's own corrections: each confident box the detector reads is paired with
a label character or found extra by aligning its reading with the plate's label; a logistic
presence model of its features (reader.presence) and a class bias over its class scores
(reader.calibration) are fitted on those pairs, and the detector alone's exact-match rate is
printed with both fitted 5-fold cross-validated. The boxes are those the detector finds under
its test-time views (reader.views.DETECTOR_VIEWS; `--single-view` for the crop as it is), and
the file names the views: the corrections hold for them only.

Then reads every plate with each reader (fused, detector, fast, and fused_fast: the fused reader
located by the fast reader; with those corrections), fits a
logistic model of "read exactly right" on the reading's features (reader.calibration), and
prints, for each reader, the reliability table and precision at 50/70/80/90% coverage from 5-fold
cross-validation, repeated over ten random splits: each plate's confidence is the mean of its
confidences from fits that did not see it, so the figures are honest about plates outside the
set and do not hang on one split. The file written is the fit on all plates.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.settings import Settings
from reader.calibration import FEATURES, Calibration, bundled_calibration_path, fit_logistic
from reader.detections import Detections
from reader.image import decode_image, load_path
from reader.locator import FAST_LOCATED
from reader.postprocess import OcrResult
from reader.presence import PRESENCE_FEATURES, PresenceModel, presence_features
from reader.two_stage import detector_characters
from reader.views import DETECTOR_VIEWS, IDENTITY, View
from training.evaluate import LabelRow, alignment, load_labels, normalise
from training.label_audit import LabelAudit
from training.reliability import Reliability

if TYPE_CHECKING:
    from reader.engine import PlateReader

__all__ = [
    "CLASS_BIAS_L2",
    "DetectorFit",
    "cross_validated",
    "detector_corrections",
    "fit_class_bias",
    "fit_detector_cross_validated",
    "label_targets",
    "main",
]

_FOLDS = 5
# Splits of the set into folds, averaged. One split alone moved the fused reader's precision at 80%
# coverage by up to a quarter of a point: 98.8 to 99.1% over ten splits of the real dev set (as
# audited, December 2026), 14 to 11 wrong readings among the 1 210 most confident.
_REPEATS = 10
# The class bias's L2 penalty, in boxes' worth of evidence. On the real dev set (2-fold, with the
# presence model) the detector alone read 71.6% exactly without a bias, and 73.3 / 73.2 / 72.7 /
# 72.2 / 71.9% at 1 / 3 / 10 / 30 / 100.
CLASS_BIAS_L2 = 3.0


def cross_validated(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = _FOLDS,
    repeats: int = _REPEATS,
    seed: int = 0,
) -> np.ndarray:
    """Each plate's calibrated confidence: the mean, over `repeats` random splits into `folds`
    folds, of its confidence from the fit on the other folds (never a fit that saw it)."""
    out = np.zeros(len(y))
    for repeat in range(repeats):
        fold = np.random.default_rng(seed + repeat).permutation(len(y)) % folds
        for k in range(folds):
            weights, intercept = fit_logistic(x[fold != k].tolist(), y[fold != k].tolist())
            z = x[fold == k] @ np.asarray(weights) + intercept
            out[fold == k] += 1.0 / (1.0 + np.exp(-z))
    return out / repeats


def label_targets(label: str, read: str) -> npt.NDArray[np.intp]:
    """For each character of `read`, the class of the label character a minimal alignment
    pairs it with (read right or wrong), or -1 where it is extra."""
    label, read = normalise(label), normalise(read)
    target = np.full(len(read), -1, np.intp)
    for i, j in alignment(label, read):
        if i is not None and j is not None:
            target[j] = CLASS_NAMES.index(label[i])
    return target


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


@dataclass(frozen=True, slots=True)
class _BoxSamples:
    """One plate's confident detector boxes: presence features, whether each is a serial
    character by the label, its class scores (a distribution) and the label's class (-1: none)."""

    features: npt.NDArray[np.float64]
    serial: npt.NDArray[np.bool_]
    probs: npt.NDArray[np.float64]
    target: npt.NDArray[np.intp]


def _box_samples(
    reader: "PlateReader", rows: Sequence[LabelRow], settings: Settings
) -> list[_BoxSamples]:
    found: list[Detections] = []
    for images in _images([r.file for r in rows], settings):
        found += reader.detect(reader.preprocess(images))
    samples = []
    for row, f in zip(rows, found, strict=True):
        merged, ordered, kept = detector_characters(f, confidence=settings.confidence)
        scores = merged.class_scores[kept].reshape(-1, len(CLASS_NAMES))
        target = label_targets(row.text, ordered.text)
        samples.append(
            _BoxSamples(
                features=presence_features(
                    merged.xyxy[kept], merged.scores[kept], [c.row for c in ordered.characters]
                ),
                serial=target >= 0,
                probs=scores / np.maximum(scores.sum(axis=1, keepdims=True), 1e-12),
                target=target,
            )
        )
    return samples


def fit_class_bias(
    probs: npt.NDArray[np.float64],
    target: npt.NDArray[np.intp],
    *,
    l2: float = CLASS_BIAS_L2,
    steps: int = 50,
) -> tuple[float, ...]:
    """Log-weights b per class that make softmax(log probs + b) most likely to give `target`,
    with an L2 penalty `l2 / 2 * |b|^2` (Newton-Raphson; the penalty also pins the offset
    that softmax cannot see)."""
    log_p = np.log(np.asarray(probs, dtype=np.float64) + 1e-6)
    classes = log_p.shape[1]
    counts = np.bincount(target, minlength=classes)
    bias = np.zeros(classes)
    for _ in range(steps):
        z = log_p + bias
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        gradient = p.sum(axis=0) - counts + l2 * bias
        hessian = np.diag(p.sum(axis=0)) - p.T @ p + l2 * np.eye(classes)
        step = np.linalg.solve(hessian, gradient)
        bias -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(b) for b in bias)


def _fit_detector(samples: Sequence[_BoxSamples], views: tuple[View, ...]) -> Calibration:
    """The detector's corrections (presence model and class bias) for boxes found under
    `views`, no plate models."""
    x = np.vstack([s.features for s in samples])
    serial = np.concatenate([s.serial for s in samples])
    weights, intercept = fit_logistic(x.tolist(), serial.tolist())
    probs = np.vstack([s.probs for s in samples])
    target = np.concatenate([s.target for s in samples])
    return Calibration(
        models={},
        presence=PresenceModel(weights=weights, intercept=intercept),
        class_bias=fit_class_bias(probs[target >= 0], target[target >= 0]),
        views=views,
    )


def _samples_under(
    views: tuple[View, ...], rows: Sequence[LabelRow], settings: Settings
) -> list[_BoxSamples]:
    from reader.engine import PlateReader

    finder = PlateReader.from_settings(
        settings, reader="detector", calibration=Calibration(models={}, views=views)
    )
    return _box_samples(finder, rows, settings)


def detector_corrections(
    rows: Sequence[LabelRow], settings: Settings, views: tuple[View, ...]
) -> Calibration:
    """The detector's corrections for `views`, fitted on all of `rows` (no plate models)."""
    return _fit_detector(_samples_under(views, rows, settings), views)


@dataclass(frozen=True, slots=True)
class DetectorFit:
    """The detector's corrections fitted on all plates (`corrections`); the detector alone's
    exact-match rate with each fold read by corrections fitted on the other folds (`exact`);
    and how many of its confident boxes (`boxes`) were not serial characters (`extra`)."""

    corrections: Calibration
    exact: float
    extra: int
    boxes: int


def fit_detector_cross_validated(
    rows: Sequence[LabelRow], settings: Settings, views: tuple[View, ...]
) -> DetectorFit:
    """Fit the detector's corrections for `views` on `rows`, 5-fold cross-validated."""
    from reader.engine import PlateReader

    samples = _samples_under(views, rows, settings)
    fold = np.random.default_rng(0).permutation(len(rows)) % _FOLDS
    right = 0
    for k in range(_FOLDS):
        fitted = _fit_detector([s for s, f in zip(samples, fold, strict=True) if f != k], views)
        reader = PlateReader.from_settings(settings, reader="detector", calibration=fitted)
        test = [r for r, f in zip(rows, fold, strict=True) if f == k]
        results = _read_all(reader, [r.file for r in test], settings)
        right += sum(
            normalise(r.text) == normalise(o.text) for r, o in zip(test, results, strict=True)
        )
    return DetectorFit(
        corrections=_fit_detector(samples, views),
        exact=right / len(rows),
        extra=sum(int((~s.serial).sum()) for s in samples),
        boxes=sum(len(s.serial) for s in samples),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__)
    parser.add_argument("dir", type=Path, help="a folder with labels.csv and its images")
    parser.add_argument("--out", type=Path, default=bundled_calibration_path())
    parser.add_argument("--model", type=Path, default=None, help="detector weights")
    parser.add_argument(
        "--single-view",
        action="store_true",
        help="fit the detector's reading of the crop as it is, not its test-time views",
    )
    parser.add_argument(
        "--audit",
        type=Path,
        default=None,
        help="fit and score against a label audit's corrections (training.label_audit)",
    )
    args = parser.parse_args(argv)

    from reader.engine import PlateReader

    rows = load_labels(args.dir)
    audit = LabelAudit.load(args.audit) if args.audit is not None else None
    if audit is not None:
        rows = audit.apply(rows, args.dir)
        print(audit.describe())
    settings = Settings(model_path=args.model)
    views = (IDENTITY,) if args.single_view else DETECTOR_VIEWS
    fit = fit_detector_cross_validated(rows, settings, views)
    print(f"presence: {fit.extra} of {fit.boxes} confident boxes are not serial characters")
    print(
        f"detector alone ({len(views)} views), its corrections cross-validated: "
        f"{fit.exact:.1%} exact"
    )
    corrections = fit.corrections
    assert corrections.presence is not None and corrections.class_bias is not None
    fitted: dict[str, dict[str, object]] = {}
    readings: dict[str, tuple[list[OcrResult], npt.NDArray[np.float64]]] = {}
    fitted_for: dict[str, str] = {}  # the models' sha256, from the readers that were fitted
    # Each entry of the file: the reader, and what locates the fused reader's serial. The fast
    # reader's entries are fitted for the bundled detector's file only (your own detector's
    # fused reader is located by it: reader.locator).
    entries = {"fused": ("fused", "detector"), "detector": ("detector", "detector")}
    if args.model is None:
        entries |= {"fast": ("fast", "detector"), FAST_LOCATED: ("fused", "fast")}
    for kind, (reader_kind, locator) in entries.items():
        reader = PlateReader.from_settings(
            settings.model_copy(update={"cascade_confidence": None, "locator": locator}),
            reader=reader_kind,  # type: ignore[arg-type]
            calibration=corrections,
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
        readings[kind] = (results, confidence)
        if kind in ("detector", "fast"):
            fitted_for[kind] = reader.model_info.sha256
        print(f"{kind}: {right.mean():.1%} exact on {len(rows)} plates; cross-validated:")
        print(Reliability.of(confidence.tolist(), right.tolist()).format_table())
    if settings.cascade_confidence is not None and args.model is None:
        # The default path: the cascade in front of the fused reader, located as set.
        slow = FAST_LOCATED if settings.locator == "fast" else "fused"
        _print_cascade(rows, readings["fast"], readings[slow], settings.cascade_confidence)
    args.out.write_text(
        json.dumps(
            {
                "features": list(FEATURES),
                "fitted_on": f"{args.dir.name} ({len(rows)} plates)"
                + (f", {audit.describe()}" if audit is not None else ""),
                "detector_sha256": fitted_for["detector"],
                "fast_reader_sha256": fitted_for.get("fast"),
                "readers": fitted,
                "presence": {
                    "features": list(PRESENCE_FEATURES),
                    "weights": list(corrections.presence.weights),
                    "intercept": corrections.presence.intercept,
                },
                "class_bias": list(corrections.class_bias),
                "detector_views": [
                    {"stretch": v.stretch, "margin": v.margin} for v in corrections.views
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _print_cascade(
    rows: Sequence[LabelRow],
    fast: tuple[list[OcrResult], npt.NDArray[np.float64]],
    fused: tuple[list[OcrResult], npt.NDArray[np.float64]],
    threshold: float,
) -> None:
    """The default path's figures: the fast reader's readings where its cross-validated
    confidence reaches `threshold`, the fused reader's elsewhere, each with its own
    cross-validated confidence."""
    keep = fast[1] >= threshold
    texts = [f.text if k else d.text for f, d, k in zip(fast[0], fused[0], keep, strict=True)]
    confidence = np.where(keep, fast[1], fused[1])
    right = [normalise(r.text) == normalise(t) for r, t in zip(rows, texts, strict=True)]
    print(
        f"default path (the fast reader's readings at >= {threshold}, {keep.mean():.1%} of "
        f"plates; the fused reader's elsewhere): {np.mean(right):.1%} exact; cross-validated:"
    )
    print(Reliability.of(confidence.tolist(), right).format_table())


if __name__ == "__main__":
    sys.exit(main())
