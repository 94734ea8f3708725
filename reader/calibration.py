"""Plate confidence as a probability: P(the whole plate is read exactly right), per reader.

A raw score (the least confident character, or the top candidate's share of the beam) orders
plates well but is not a probability: before this, the 20% most confident readings were only
93.6% right. Each reader maps a few features of its reading through a logistic model fitted on
the real dev set (`python -m training.calibrate`, which also prints cross-validated reliability
figures so the fit is not judged on the plates it saw). The coefficients ship beside the models
(`reader/models/calibration.json`); a reader without an entry there keeps its raw score. The same
file holds two corrections to the detector's own reading, fitted first because they change what
it reads: its character presence model (reader.presence), and a class bias, one log-weight per
class added to its class scores. The detector learnt its classes on synthetic plates; on real
ones some glyphs look like another class more often than the synthetic ones did (New York's
narrow M like H, slab-serif I like T), and the bias moves each class's share back to what real
plates show (its fit is L2-regularised; see training.calibrate). Both are fitted on the boxes
the detector finds under its test-time views (reader.views), so the file names those views too.

Features, all in [0, 1] or log-odds so a linear model is enough:
    posterior   the top candidate's share of the decoding beam (log-odds)
    min_char    the least confident character's probability (log-odds)
    agreement   the share of characters both readers saw and read the same (fused reader only)
    format      1 if the text has the shape of a US serial format, else 0
    length_gap  how far the length is from 6-7 characters, in characters
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ModelError
from reader.plate_formats import matches_format
from reader.postprocess import OcrResult
from reader.presence import PRESENCE_FEATURES, PresenceModel
from reader.views import IDENTITY, View
from schemas.reading import CharacterReading, ModelInfo

if TYPE_CHECKING:
    from reader.decoding import Decoded

__all__ = ["FAST_READERS", "FEATURES", "Calibration", "PlateFeatures", "bundled_calibration_path"]

log = logging.getLogger("plate_ocr.reader.calibration")

FEATURES: Final = ("posterior", "min_char", "agreement", "format", "length_gap")
# The entries whose readings come from the fast reader (reader.fast_reader, reader.locator).
FAST_READERS: Final = ("fast", "fused_fast")
_EPS: Final = 1e-4


def bundled_calibration_path() -> Path:
    return Path(__file__).resolve().parent / "models" / "calibration.json"


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return float(np.log(p / (1 - p)))


@dataclass(frozen=True, slots=True)
class PlateFeatures:
    posterior: float
    min_char: float
    agreement: float
    format: bool
    length: int

    def vector(self) -> list[float]:
        gap = max(6 - self.length, self.length - 7, 0)
        return [
            _logit(self.posterior),
            _logit(self.min_char),
            self.agreement,
            float(self.format),
            float(gap),
        ]

    def raw(self) -> float:
        """The uncalibrated score: the least confident character."""
        return self.min_char


@dataclass(frozen=True, slots=True)
class Calibration:
    """Logistic coefficients per reader name; `probability` is 0 for an empty reading.
    `presence` is the detector's character presence model (None: every box is a character);
    `class_bias` the log-weights added to its class scores (None: none); `views` the views its
    own reading looks at each crop in, the ones those two were fitted with; `detector_sha256`
    the weights all of it was fitted for (None: not recorded); `fast_reader_sha256` the fast
    reader its `FAST_READERS` entries were fitted for."""

    models: Mapping[str, tuple[tuple[float, ...], float]]
    presence: PresenceModel | None = None
    class_bias: tuple[float, ...] | None = None
    views: tuple[View, ...] = (IDENTITY,)
    detector_sha256: str | None = None
    fast_reader_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.class_bias is not None and len(self.class_bias) != len(CLASS_NAMES):
            raise ValueError(f"a class bias has {len(CLASS_NAMES)} values")
        if not self.views:
            raise ValueError("a calibration needs at least one view")

    def class_probabilities(self, class_scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The detector's class scores of one box as a distribution, the class bias applied."""
        scores = np.asarray(class_scores, dtype=np.float64)
        if self.class_bias is not None:
            scores = scores * np.exp(np.asarray(self.class_bias))
        return np.asarray(scores / max(float(scores.sum()), 1e-12), dtype=np.float64)

    @classmethod
    def load(cls, path: Path | None = None) -> "Calibration":
        """The calibration in `path`; None: the bundled file, or none where it is missing.
        Raises ModelError for a given path that is missing and for a malformed file."""
        if path is not None and not path.is_file():
            raise ModelError(f"no calibration file at {path}")
        path = path if path is not None else bundled_calibration_path()
        if not path.is_file():
            return cls(models={})
        try:
            data = json.loads(path.read_text())
            models = {
                name: (tuple(float(w) for w in entry["weights"]), float(entry["intercept"]))
                for name, entry in data["readers"].items()
            }
            bias = data.get("class_bias")
            calibration = cls(
                models=models,
                presence=_presence(data.get("presence")),
                class_bias=tuple(float(b) for b in bias) if bias is not None else None,
                views=tuple(
                    View(stretch=float(v["stretch"]), margin=float(v["margin"]))
                    for v in data.get("detector_views", [{"stretch": 1.0, "margin": 0.0}])
                ),
                detector_sha256=data.get("detector_sha256"),
                fast_reader_sha256=data.get("fast_reader_sha256"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"calibration file {path} is malformed: {e}") from e
        for name, (weights, _) in models.items():
            if len(weights) != len(FEATURES):
                raise ModelError(f"calibration for {name!r} has {len(weights)} weights")
        return calibration

    @classmethod
    def load_for(cls, sha256: str, path: Path | None = None) -> "Calibration":
        """The calibration at `path` (None: the bundled one) if it was fitted for the weights
        with this sha256; for other weights none, said in the log: fitted corrections and
        views would misread them, and a confidence fitted on another model is not a
        probability."""
        calibration = cls.load(path)
        if calibration.fits(sha256):
            return calibration
        log.warning(
            "calibration %s was fitted for detector %s, not these weights (%s): reading "
            "uncalibrated (raw confidence, one view); fit one with python -m training.calibrate",
            path or bundled_calibration_path(),
            str(calibration.detector_sha256)[:12],
            sha256[:12],
        )
        return cls(models={})

    def for_fast_reader(self, sha256: str) -> "Calibration":
        """This calibration for the fast reader with this sha256: its entries for the fast
        reader's readings dropped, said in the log, where they were fitted for another one."""
        if self.fast_reader_sha256 in (None, sha256):
            return self
        log.warning(
            "calibration was fitted for fast reader %s, not this one (%s): its readings keep "
            "their raw confidence; fit one with python -m training.calibrate",
            str(self.fast_reader_sha256)[:12],
            sha256[:12],
        )
        models = {k: v for k, v in self.models.items() if k not in FAST_READERS}
        return replace(self, models=models, fast_reader_sha256=None)

    def fits(self, sha256: str) -> bool:
        """Whether this calibration may read the weights with this sha256: fitted for them,
        or not recorded for any."""
        return self.detector_sha256 in (None, sha256)

    def reading(
        self,
        reader: str,
        decoded: "Decoded",
        characters: tuple[CharacterReading, ...],
        *,
        agreement: float = 1.0,
        models: tuple[ModelInfo, ModelInfo | None] | None = None,
    ) -> OcrResult:
        """`reader`'s reading of one plate: the decoded text and its `characters` (in reading
        order, the dropped ones left out), with its features and their calibrated confidence.
        `agreement` is the share of characters both of a two-reader reading's readers read
        alike; `models` as OcrResult's."""
        if not characters:
            return OcrResult(text="", confidence=0.0, characters=(), rows=0)
        features = PlateFeatures(
            posterior=decoded.posterior,
            min_char=min(c.confidence for c in characters),
            agreement=agreement,
            format=matches_format(decoded.text),
            length=len(decoded.text),
        )
        return OcrResult(
            text=decoded.text,
            confidence=self.probability(reader, features),
            characters=characters,
            rows=max(c.row for c in characters) + 1,
            candidates=decoded.candidates,
            features=features,
            models=models,
        )

    def probability(self, reader: str, features: PlateFeatures | None) -> float:
        if features is None or features.length == 0:
            return 0.0
        if reader not in self.models:
            return features.raw()
        weights, intercept = self.models[reader]
        z = intercept + float(np.dot(weights, features.vector()))
        return float(1.0 / (1.0 + np.exp(-z)))


def _presence(entry: Any) -> PresenceModel | None:
    if entry is None:
        return None
    if list(entry["features"]) != list(PRESENCE_FEATURES):
        raise ValueError(f"presence features {entry['features']} are not {PRESENCE_FEATURES}")
    return PresenceModel(
        weights=tuple(float(w) for w in entry["weights"]), intercept=float(entry["intercept"])
    )


def fit_logistic(
    x: Sequence[Sequence[float]], y: Sequence[bool], *, l2: float = 1e-2, steps: int = 50
) -> tuple[tuple[float, ...], float]:
    """Newton-Raphson for L2-regularised logistic regression (a handful of features)."""
    a = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
    t = np.asarray(y, dtype=np.float64)
    w = np.zeros(a.shape[1])
    penalty = np.eye(a.shape[1]) * l2
    penalty[0, 0] = 1e-6  # all but unpenalised; keeps the step defined when every label agrees
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        gradient = a.T @ (p - t) + penalty @ w
        hessian = (a.T * (p * (1 - p))) @ a + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(v) for v in w[1:]), float(w[0])
