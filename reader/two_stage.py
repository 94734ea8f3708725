"""The reading steps after the detector: `detector` (its boxes alone) or `fused` (two stages).

    detector  the detector's boxes, a character's boxes of several classes merged into one
              (reader.detections), ordered in rows (reader.postprocess) as the seed read them,
              each with the chance that it is a serial character at all (reader.presence),
              decoded with a class bias (reader.calibration) and a format prior
    fused     the detector locates each row's serial, PP-OCR's line recogniser reads it, the two
              are fused per character (reader.fusion) and decoded with a format prior

Both give top-N candidates and a calibrated plate confidence (reader.calibration). Fused
characters keep the detector's box where it saw the character; a character only the recogniser
saw gets a box where the recogniser placed it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from plate_ocr import constants
from plate_ocr.constants import CLASS_NAMES
from reader.calibration import Calibration
from reader.decoding import PRIOR_WEIGHT, Decoded, decode
from reader.detections import Detections, merge_class_duplicates
from reader.fusion import MARGIN_X, FusedChar, fuse_line, layout
from reader.postprocess import OcrResult, naive_order, order_characters
from reader.recogniser import LineRecogniser
from reader.views import IDENTITY, View
from schemas.reading import CharacterReading

__all__ = [
    "DETECTOR_PRIOR_WEIGHT",
    "EXTEND_CONFIDENCE",
    "READERS",
    "ReaderKind",
    "ReadingSteps",
    "detector_characters",
]

# fast: reader.fast_reader, one small network on the whole crop (no detector, no steps here).
ReaderKind = Literal["fused", "detector", "fast"]
READERS: Final[tuple[ReaderKind, ...]] = constants.READERS
# Weak boxes down to this score may widen a row's serial region (reader.fusion.layout): on the
# dev set 0.05 read 91.3% exactly, 0.10 91.0%, none 90.3%.
EXTEND_CONFIDENCE: Final = 0.05
TOP_N: Final = 5
# The format prior on the detector's own reading, in nats (reader.decoding). Its class scores
# are sharper than the fused distributions, so it takes a larger bonus to turn a near tie: on
# the dev set 0 / 1 / 2 / 3 read 68.2 / 68.7 / 69.4 / 69.6% exactly.
DETECTOR_PRIOR_WEIGHT: Final = 2.0


@dataclass(frozen=True, slots=True)
class _DetectorChar:
    probs: npt.NDArray[np.float64]
    presence: float
    source: str


class ReadingSteps:
    """Turns each crop's `Detections` into one `OcrResult`, the way `reader` says."""

    def __init__(
        self,
        reader: ReaderKind,
        *,
        recogniser: LineRecogniser | None = None,
        calibration: Calibration | None = None,
        naive: bool = False,
        calibrated_as: str | None = None,
        margin_x: float = MARGIN_X,
    ) -> None:
        if reader == "fused" and recogniser is None:
            raise ValueError("the fused reader needs a recogniser")
        self.reader = reader
        # The calibration's entry for these readings (reader.calibration): the reader's name,
        # unless their features come from elsewhere (reader.locator.FAST_LOCATED).
        self.calibrated_as = calibrated_as or reader
        self.margin_x = margin_x  # the serial region's margin (reader.fusion.layout)
        self.recogniser = recogniser
        self.calibration = calibration if calibration is not None else Calibration(models={})
        self.naive = naive

    @property
    def detector_confidence_floor(self) -> float:
        """The lowest box score these steps use, for the detector's NMS: the fused reader's
        weak boxes widen a serial region; the detector's own reading merges a character's
        boxes of several classes (reader.detections.merge_class_duplicates) before the
        threshold."""
        return EXTEND_CONFIDENCE

    @property
    def views(self) -> tuple[View, ...]:
        """The views the detector looks at each crop in for these steps (reader.views): the
        calibration's for the detector's own reading, the crop as it is otherwise."""
        if self.reader == "detector" and not self.naive:
            return self.calibration.views
        return (IDENTITY,)

    def read(
        self,
        crops: Sequence[npt.NDArray[np.uint8]],
        found: Sequence[Detections],
        *,
        confidence: float,
    ) -> list[OcrResult]:
        if self.reader == "detector" or self.naive:
            return [self._detector_reading(f, confidence) for f in found]
        return self._fused_readings(crops, found, confidence)

    def _detector_reading(self, found: Detections, confidence: float) -> OcrResult:
        if self.naive:
            return naive_order(found.xyxy, found.scores, found.classes, confidence=confidence)
        found, ordered, kept = detector_characters(found, confidence=confidence)
        if not ordered.characters:
            return ordered
        rows = [c.row for c in ordered.characters]
        presence = self._presence(found, kept, rows)
        chars = [
            _DetectorChar(
                probs=self.calibration.class_probabilities(found.class_scores[i]),
                presence=float(p),
                source="detector",
            )
            for i, p in zip(kept, presence, strict=True)
        ]
        decoded = decode(chars, top_n=TOP_N, prior_weight=DETECTOR_PRIOR_WEIGHT)
        characters = tuple(
            c
            if CLASS_NAMES[pick] == c.char
            else c.model_copy(
                update={
                    "char": CLASS_NAMES[pick],
                    "confidence": c.confidence * float(ch.probs[pick] / ch.probs.max()),
                }
            )
            for c, ch, pick in zip(ordered.characters, chars, decoded.picks, strict=True)
            if pick >= 0
        )
        return self.calibration.reading("detector", decoded, characters)

    def _presence(
        self, found: Detections, kept: Sequence[int], rows: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """P(serial character) per kept box; 1 for all without a presence model."""
        model = self.calibration.presence
        if model is None:
            return np.ones(len(kept))
        return model.probabilities(found.xyxy[list(kept)], found.scores[list(kept)], rows)

    def _fused_readings(
        self,
        crops: Sequence[npt.NDArray[np.uint8]],
        found: Sequence[Detections],
        confidence: float,
    ) -> list[OcrResult]:
        assert self.recogniser is not None
        layouts = [
            layout(
                f,
                crop.shape[:2],
                confidence=confidence,
                extend_confidence=EXTEND_CONFIDENCE,
                margin_x=self.margin_x,
            )
            for f, crop in zip(found, crops, strict=True)
        ]
        lines = [(crop, box) for crop, lay in zip(crops, layouts, strict=True) for box in lay.lines]
        reads = iter(self.recogniser.read_batch(lines))
        results = []
        for f, lay in zip(found, layouts, strict=True):
            chars: list[FusedChar] = []
            for row, members in enumerate(lay.rows):
                chars += fuse_line(f, members, next(reads), row=row)
            results.append(self._fused_result(chars))
        return results

    def _fused_result(self, chars: Sequence[FusedChar]) -> OcrResult:
        decoded = decode(chars, top_n=TOP_N, prior_weight=PRIOR_WEIGHT)
        characters = _characters(chars, decoded)
        both = [c for c, pick in zip(chars, decoded.picks, strict=True) if pick >= 0]
        agreement = sum(c.agree for c in both) / len(both) if both else 0.0
        return self.calibration.reading(
            self.calibrated_as, decoded, characters, agreement=agreement
        )


def _characters(chars: Sequence[FusedChar], decoded: Decoded) -> tuple[CharacterReading, ...]:
    out = []
    for char, pick in zip(chars, decoded.picks, strict=True):
        if pick < 0:
            continue
        p = float(char.probs[pick]) * (1.0 if char.source == "both" else char.presence)
        out.append(
            CharacterReading(
                char=CLASS_NAMES[pick],
                confidence=min(max(p, 0.0), 1.0),
                box=char.box,
                row=char.row,
            )
        )
    return tuple(out)


def detector_characters(
    found: Detections, *, confidence: float
) -> tuple[Detections, OcrResult, list[int]]:
    """The detector's own characters: its boxes with each character's classes merged, those
    over `confidence` ordered in rows, and the merged box behind each ordered character."""
    merged = merge_class_duplicates(found)
    ordered = order_characters(merged.xyxy, merged.scores, merged.classes, confidence=confidence)
    return merged, ordered, _kept_indices(merged, ordered)


def _kept_indices(found: Detections, ordered: OcrResult) -> list[int]:
    """The detection index behind each ordered character (matched by its box)."""
    index = {tuple(float(v) for v in box): i for i, box in enumerate(found.xyxy)}
    return [index[c.box] for c in ordered.characters]
