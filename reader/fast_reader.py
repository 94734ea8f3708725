"""`FastReader`: one small recogniser that reads the whole crop (`--reader fast`).

The default reader runs two networks, the character detector and PP-OCR's line recogniser; this
one runs one small CNN (training.fast_net, trained by training.train_fast, distilled from the
fused reader's readings of real crops) on the crop as it is: grey, stretched to 64 x 128, read
with CTC over its 32 columns. No detector finds the serial first: the network learnt to read the
serial row and skip the rest of the plate. US serials are one row; small stacked characters
beside them (which the dev labels leave out too) are not read.

Each character comes from a run of CTC columns (reader.recogniser.LineRead, as the line
recogniser's are decoded): its box spans those columns, and its height is the serial row's,
from the network's second head. The characters' distributions are decoded with the US-format
prior into top-N candidates (reader.decoding), and the plate confidence is calibrated as the
other readers' are (reader.calibration, its "fast" entry).
"""

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ModelError
from reader.bundle import file_sha256
from reader.calibration import Calibration
from reader.decoding import PRIOR_WEIGHT, decode
from reader.detections import Detections
from reader.onnx_session import open_session
from reader.postprocess import OcrResult
from reader.recogniser import OTHER, LineRead, RecognisedChar
from schemas.reading import CharacterReading, ModelInfo

__all__ = ["INPUT_HW", "FastRead", "FastReader", "bundled_fast_reader_path", "grey_input"]

INPUT_HW: Final = (64, 128)  # fast-plate-ocr's input: a 2:1 plate in 64 x 128 grey pixels
TOP_N: Final = 5
MAX_BATCH: Final = 64
# A character's box: as wide as this share of the characters' pitch, at most this aspect of
# the row's height (US serial dies are about half as wide as tall).
_PITCH_SHARE: Final = 0.9
_POOL_PARTS: Final = 2  # reader.engine's stage pool has two threads
_ASPECT: Final = 0.6


def bundled_fast_reader_path() -> Path:
    """The shipped fast reader (its manifest `fast_plate_reader.onnx.json` beside it)."""
    return Path(__file__).resolve().parent / "models" / "fast" / "fast_plate_reader.onnx"


def grey_input(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The crop as the network sees it: grey, stretched to INPUT_HW."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = INPUT_HW
    shrink = grey.shape[0] > h or grey.shape[1] > w
    out = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.asarray(out, dtype=np.uint8)


class _Char:
    """A CTC character as reader.decoding wants it."""

    __slots__ = ("presence", "probs", "source")

    def __init__(self, char: RecognisedChar) -> None:
        self.probs = char.probs
        self.presence = char.presence
        self.source = "fast"


@dataclass(frozen=True, slots=True)
class FastRead:
    """The network's reading of one crop: its CTC characters (a distribution, a presence and
    the columns each was read from, in crop pixels) and the serial row's top and bottom."""

    chars: tuple[RecognisedChar, ...]
    top: float
    bottom: float

    def boxes(self) -> npt.NDArray[np.float64]:
        """(n, 4) character boxes in crop pixels: as tall as the row, centred on the columns
        each character was read from, as wide as the pitch of the characters (CTC marks a
        character in one or two columns, narrower than its ink)."""
        centres = np.array([c.x for c in self.chars], dtype=np.float64)
        height = max(self.bottom - self.top, 1.0)
        pitch = float(np.median(np.diff(centres))) if len(centres) > 1 else _ASPECT * height
        half = min(_PITCH_SHARE * pitch, _ASPECT * height) / 2
        boxes = np.empty((len(centres), 4))
        boxes[:, 0], boxes[:, 2] = centres - half, centres + half
        boxes[:, 1], boxes[:, 3] = self.top, self.bottom
        return boxes

    def detections(self) -> Detections:
        """These characters as a character detector's boxes, for the fused reader's steps
        (reader.two_stage) to locate the serial by: each box's class scores are its
        distribution times its presence."""
        if not self.chars:
            return Detections(
                np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.intp), np.zeros((0, len(CLASS_NAMES)))
            )
        scores = np.array([c.probs * c.presence for c in self.chars], dtype=np.float64)
        return Detections(
            xyxy=self.boxes(),
            scores=scores.max(axis=1),
            classes=scores.argmax(axis=1).astype(np.intp),
            class_scores=scores,
        )


class FastReader:
    """Reads whole crops with one small network. Thread-compatible: an ONNX Runtime session
    may run concurrently."""

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        threads: int | None = None,
        spinning: bool = True,
        calibration: Calibration | None = None,
        max_batch: int = MAX_BATCH,
        pool: Executor | None = None,
    ) -> None:
        path = Path(model_path) if model_path is not None else bundled_fast_reader_path()
        if not path.is_file():
            raise ModelError(f"no fast reader model at {path}")
        self._session = open_session(path, threads=threads, spinning=spinning, what="fast reader")
        characters = self._session.get_modelmeta().custom_metadata_map.get("character")
        if characters != "".join(CLASS_NAMES):
            raise ModelError(
                f"{path} is not a fast reader (its 'character' metadata is {characters!r})"
            )
        self.model_info = ModelInfo(name=path.stem, sha256=file_sha256(path))
        self.calibration = calibration if calibration is not None else Calibration(models={})
        self.max_batch = max_batch
        self._pool = pool

    def read(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[OcrResult]:
        """One reading per BGR (or grey) crop."""
        return self.read_pixels(self.to_pixels(crops), [c.shape[:2] for c in crops])

    @staticmethod
    def to_pixels(crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """The network's input for `crops`: (N, 1, 64, 128) grey in 0..1. No model involved."""
        if not crops:
            return np.zeros((0, 1, *INPUT_HW), np.float32)
        return np.stack([grey_input(c) for c in crops])[:, None].astype(np.float32) / 255.0

    def read_pixels(
        self, pixels: npt.NDArray[np.float32], shapes: Sequence[tuple[int, ...]]
    ) -> list[OcrResult]:
        """Readings of `to_pixels`' output; `shapes` are the crops' own (height, width), to
        place the characters' boxes in crop pixels."""
        return [self.reading(read) for read in self.infer(pixels, shapes)]

    def infer(
        self, pixels: npt.NDArray[np.float32], shapes: Sequence[tuple[int, ...]]
    ) -> list[FastRead]:
        """The network on `to_pixels`' output: each crop's characters and serial row. With a
        `pool`, a batch is read in as many parts as it has threads, side by side (an ONNX
        Runtime session may run concurrently; the worker gives each session one thread)."""
        parts = 1 if self._pool is None else _POOL_PARTS
        size = min(self.max_batch, max(-(-len(pixels) // parts), 1))
        chunks = [pixels[start : start + size] for start in range(0, len(pixels), size)]
        if self._pool is not None and len(chunks) > 1:
            outputs = list(self._pool.map(self._run, chunks))
        else:
            outputs = [self._run(chunk) for chunk in chunks]
        reads: list[FastRead] = []
        for (probs, rows), start in zip(outputs, range(0, len(pixels), size), strict=True):
            for p, row, shape in zip(probs, rows, shapes[start : start + size], strict=True):
                height, width = shape[:2]
                folded = np.zeros((len(p), OTHER + 1), np.float32)
                folded[:, :OTHER] = p
                line = LineRead(probs=folded, box=(0, 0, width, height), px_per_step=width / len(p))
                reads.append(
                    FastRead(
                        tuple(line.characters()), float(row[0]) * height, float(row[1]) * height
                    )
                )
        return reads

    def _run(self, pixels: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], ...]:
        probs, rows = self._session.run(None, {"image": pixels})
        return probs, rows

    def reading(self, read: FastRead) -> OcrResult:
        """One crop's reading: its characters decoded with the format prior, calibrated."""
        decoded = decode([_Char(c) for c in read.chars], top_n=TOP_N, prior_weight=PRIOR_WEIGHT)
        characters = tuple(
            CharacterReading(
                char=CLASS_NAMES[pick],
                confidence=float(np.clip(char.probs[pick] * char.presence, 0.0, 1.0)),
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                row=0,
            )
            for char, pick, box in zip(read.chars, decoded.picks, read.boxes(), strict=True)
            if pick >= 0
        )
        return self.calibration.reading("fast", decoded, characters, models=(self.model_info, None))
