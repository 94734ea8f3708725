"""`PlateReader`: the YOLO character detector, loaded and warmed up once, reading batches.

The ultralytics predictor pattern without its file and display I/O, split in two so a worker can
overlap them: `preprocess` letterboxes decoded crops into one batch (pure, thread-safe, no
model), `infer` runs the stages on it: `detect` (the swappable runtime, a reader.detector
`Detector`: ONNX Runtime or torch, NMS included) gives `Detections` per crop, then the reading
steps (`postprocess` ordering) make one reading of each. `read_arrays` is both. Which models
it loads for its kind, locator and cascade: reader.stages.

Every crop is letterboxed to ONE plate-shaped input, `input_hw` (by default half as tall as
`imgsz` is wide, rounded up to the stride: 128x256 for imgsz 256), not to a square: a US plate
is about 2:1, so a square input is half padding and costs twice the compute for nothing. Boxes
come back in crop pixels whatever the input shape, exactly as ultralytics' own `predict` with
`imgsz=[h, w]` gives them (same letterbox, same NMS, same box scaling). On 300 real dev plates
(epoch-3 weights) 128x256 read 30.7% exactly (CER 18.4%) against 28.7% (18.5%) for the 256x256
square, at 2.3x the plates/s.
"""

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import DEFAULT_CONFIDENCE
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from reader.bundle import BUNDLED_MODEL_NAME, bundled_model_path
from reader.calibration import Calibration
from reader.detections import Detections
from reader.detector import (
    Detector,
    PlateBatch,
    letterbox,
    plate_input_hw,
)
from reader.device import resolve_device
from reader.fusion import MARGIN_X
from reader.image import BgrImage, decode_image, ensure_bgr, load_path
from reader.locator import FAST_LOCATED, FAST_MARGIN_X, Locator, choose_locator
from reader.onnx_session import default_threads
from reader.postprocess import OcrResult
from reader.stages import load_stages
from reader.two_stage import READERS, ReaderKind, ReadingSteps
from reader.views import IDENTITY, View, detect_in_views
from schemas.reading import ModelInfo

log = logging.getLogger("plate_ocr.reader.engine")

__all__ = [
    "BUNDLED_MODEL_NAME",
    "ImageInput",
    "OcrResult",
    "PlateBatch",
    "PlateReader",
    "bundled_model_path",
    "plate_input_hw",
]

ImageInput = bytes | str | Path | npt.NDArray[Any]
"""Encoded image bytes, a path to an image file, or a decoded (BGR or gray) array."""

_DEFAULT_MAX_IMAGE_BYTES: Final[int] = Settings.model_fields["max_image_bytes"].default
_DEFAULT_MAX_IMAGE_PIXELS: Final[int] = Settings.model_fields["max_image_pixels"].default
_WARM_UP_SHAPE: Final = (64, 192, 3)  # a plate-like aspect ratio
# The fused reader pipelines its two stages over chunks of this many crops (PlateReader.infer).
# On the 1 513 dev plates, batches of 32, 2 cores: chunks of 4 / 8 / 16 took 8.9-9.0 /
# 8.4-8.7 / 8.1-8.2 ms a plate.
_PIPELINE_CHUNK: Final = 16


class PlateReader:
    """Reads cropped plates: a 36-class (0-9, A-Z) YOLO character detector, and by default
    PP-OCR's line recogniser on the serial region it finds, the two fused (reader.two_stage).

    `reader="detector"` reads with the detector alone (one model, as the seed did: the
    original `usa_plate_ocr.pt` reads exactly as before, with candidates and a calibrated
    plate confidence added). `reader="fast"` reads with one small network on the whole crop
    (reader.fast_reader; `fast_reader_path`, None: the bundled one), and loads no detector:
    `model_info` is then the fast reader's. For the fused reader, `locator="fast"` has the fast
    reader locate the serial instead of the detector (reader.locator; no detector loaded), and
    `cascade_confidence` puts the fast reader in front: its readings at that calibrated
    confidence or more are kept, the rest read in two stages (both on the CPU only).
    `imgsz=None` uses the size the weights were trained at. `input_hw` overrides the
    plate-shaped input derived from imgsz (`(imgsz, imgsz)` reads on the old square input).
    `naive=True` orders characters like the seed did (left to right, no duplicate suppression,
    no rows), for comparisons. `backend` is `auto` (reader.detector.choose_backend: the shipped
    ONNX on ONNX Runtime for the bundled model on the CPU, else torch), `onnxruntime`, or one
    of `reader.backends.BACKENDS`; batches of over `max_batch` crops are split (the detector's
    own reading hands the runtime all the views of up to `max_batch` crops in one call).
    `threads` is ONNX Runtime's thread count (None: its default; torch's is the process's own);
    `spinning=False` stops its idle threads spinning (what a worker wants: see Settings).
    `calibration` replaces the bundled calibration file (reader.calibration), which applies only
    to the weights it was fitted for: other weights read uncalibrated unless given their own.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        device: str = "cpu",
        confidence: float = DEFAULT_CONFIDENCE,
        imgsz: int | None = 256,
        input_hw: tuple[int, int] | None = None,
        naive: bool = False,
        reader: ReaderKind = "fused",
        backend: str = "auto",
        max_batch: int = 64,
        cache_dir: Path | None = None,
        max_image_bytes: int = _DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = _DEFAULT_MAX_IMAGE_PIXELS,
        threads: int | None = None,
        spinning: bool = True,
        calibration: Calibration | None = None,
        recogniser_path: Path | str | None = None,
        fast_reader_path: Path | str | None = None,
        cascade_confidence: float | None = None,
        locator: Locator = "detector",
    ) -> None:
        if reader not in READERS:
            raise ConfigError(f"reader must be one of {', '.join(READERS)}, not {reader!r}")
        given = Path(model_path) if model_path is not None else None
        self.device = resolve_device(device)  # before loading: a bad device fails fast
        self.reader: ReaderKind = reader
        self.naive = naive
        self.locator = choose_locator(locator, reader=reader, naive=naive, model_path=given)
        self.cascade_confidence = cascade_confidence if reader == "fused" and not naive else None
        if self.cascade_confidence is not None and self.device != "cpu":
            log.info("no cascade on %s: the fast reader runs on the CPU only", self.device)
            self.cascade_confidence = None
        # Two threads for the model calls: the fused reader's two stages side by side (`infer`),
        # the line recogniser's calls, the fast reader's halves of a batch. Each call keeps its
        # session's intra-op threads, so the process uses about 2 x `threads` cores.
        self._stage_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stage")
        stages = load_stages(
            reader=reader,
            locator=self.locator,
            cascade=self.cascade_confidence is not None,
            naive=naive,
            device=self.device,
            model_path=given,
            backend=backend,
            calibration=calibration,
            imgsz=imgsz,
            input_hw=input_hw,
            max_batch=max_batch,
            cache_dir=cache_dir,
            threads=threads,
            spinning=spinning,
            recogniser_path=recogniser_path,
            fast_reader_path=fast_reader_path,
            pool=self._stage_pool,
        )
        self._detector = stages.detector
        self._detector_batch = stages.detector_batch
        self.fast = stages.fast
        self.recogniser = stages.recogniser
        self.backend = stages.backend
        self.model_path = stages.model_path
        self.model_info = stages.model_info
        self.imgsz, self.input_hw = stages.imgsz, stages.input_hw
        self.confidence = confidence
        self._steps = ReadingSteps(
            "detector" if reader == "fast" else reader,
            recogniser=self.recogniser,
            calibration=stages.calibration,
            naive=naive,
            calibrated_as=FAST_LOCATED if self.locator == "fast" else None,
            margin_x=FAST_MARGIN_X if self.locator == "fast" else MARGIN_X,
        )
        self.max_batch = max_batch
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self._lock = threading.Lock()
        self.read_arrays([np.zeros(_WARM_UP_SHAPE, dtype=np.uint8)])  # pays CUDA/JIT set-up now

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        imgsz: int | None = None,
        naive: bool = False,
        reader: ReaderKind | None = None,
        calibration: Calibration | None = None,
    ) -> "PlateReader":
        """A reader configured from the settings; `imgsz`, `reader` and `calibration` override
        theirs."""
        if calibration is None and settings.calibration_path is not None:
            calibration = Calibration.load(settings.calibration_path)
        return cls(
            settings.model_path,
            device=settings.device,
            confidence=settings.confidence,
            imgsz=imgsz if imgsz is not None else settings.imgsz,
            naive=naive,
            reader=reader if reader is not None else settings.reader,
            backend=settings.backend,
            max_batch=settings.batch_size,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
            threads=settings.threads or default_threads(),
            spinning=settings.ort_spinning,
            calibration=calibration,
            recogniser_path=settings.recogniser_path,
            fast_reader_path=settings.fast_reader_path,
            cascade_confidence=settings.cascade_confidence,
            locator=settings.locator,
        )

    def read(self, image: ImageInput, *, confidence: float | None = None) -> OcrResult:
        """Read one plate crop. Raises JobError when the image cannot be loaded or decoded."""
        return self.read_batch([image], confidence=confidence)[0]

    def read_batch(
        self, images: Sequence[ImageInput], *, confidence: float | None = None
    ) -> list[OcrResult]:
        """Read several crops in one model call. Raises JobError for the first bad image."""
        return self.read_arrays([self._to_array(image) for image in images], confidence=confidence)

    def read_arrays(
        self, images: Sequence[npt.NDArray[np.uint8]], *, confidence: float | None = None
    ) -> list[OcrResult]:
        """The compute step: decoded BGR crops in, one reading per crop out, in order."""
        if not images:
            return []
        return self.infer(self.preprocess(images), confidence=confidence)

    def preprocess(self, images: Sequence[npt.NDArray[Any]]) -> PlateBatch:
        """Decoded crops (BGR or gray) as one batch of the first model's input: letterboxed for
        the detector (reader.detector.letterbox), or the fast reader's grey input where it
        reads first (the detector's input is then made in `infer` for the crops it reads).
        Thread-safe; no model involved."""
        if self.fast is not None:  # the fast reader first: the detector's input when needed
            crops = [ensure_bgr(image) for image in images]
            return PlateBatch(
                pixels=self.fast.to_pixels(crops),
                shapes=tuple((c.shape[0], c.shape[1]) for c in crops),
                crops=tuple(crops),
            )
        return self._letterbox(images)

    def _letterbox(self, images: Sequence[npt.NDArray[Any]]) -> PlateBatch:
        return letterbox(images, self.input_hw, self._require_detector())

    def infer(self, batch: PlateBatch, *, confidence: float | None = None) -> list[OcrResult]:
        """Run the stages on a preprocessed batch: one reading per crop, in order."""
        if not len(batch):
            return []
        if self.fast is None:
            return self._two_stage(batch, confidence)
        reads = self.fast.infer(batch.pixels, batch.shapes)
        if self.reader == "fast":
            return [self.fast.reading(read) for read in reads]
        # The fused reader: the fast reader's readings at `cascade_confidence` or more are
        # kept (decoded only for a cascade); the rest are read in two stages, located by the
        # fast reader or the detector.
        results: list[OcrResult | None] = [None] * len(reads)
        if self.cascade_confidence is not None:
            for i, read in enumerate(reads):
                quick = self.fast.reading(read)
                if quick.confidence >= self.cascade_confidence:
                    results[i] = quick
        again = [i for i, result in enumerate(results) if result is None]
        if again:
            crops = [batch.crops[i] for i in again]
            if self._detector is not None:
                slow = self._two_stage(self._letterbox(crops), confidence)
            else:
                threshold = self.confidence if confidence is None else confidence
                found = [reads[i].detections() for i in again]
                slow = self._steps.read(crops, found, confidence=threshold)
            for i, result in zip(again, slow, strict=True):
                results[i] = result
        return [result for result in results if result is not None]

    def _two_stage(self, batch: PlateBatch, confidence: float | None) -> list[OcrResult]:
        if self.reader == "fused" and not self.naive and len(batch.crops) != len(batch):
            raise ValueError("the fused reader needs the batch's crops (build it with preprocess)")
        threshold = self.confidence if confidence is None else confidence
        detect_at = self.detect_confidence(threshold)
        if self.reader == "detector" or self.naive or len(batch) <= _PIPELINE_CHUNK:
            return self._steps.read(
                batch.crops, self.detect(batch, confidence=detect_at), confidence=threshold
            )
        # Two stages, two threads: the detector reads the next chunk while the recogniser reads
        # this one, its calls side by side with the detector's (ONNX Runtime and torch release
        # the GIL). The readings are those of one pass; on 2 cores a batch of 32 took 8 ms a
        # plate instead of 15 (bench/readers.py).
        chunks = [batch[i : i + _PIPELINE_CHUNK] for i in range(0, len(batch), _PIPELINE_CHUNK)]
        pending = self._stage_pool.submit(self.detect, chunks[0], confidence=detect_at)
        results: list[OcrResult] = []
        for i, chunk in enumerate(chunks):
            found = pending.result()
            if i + 1 < len(chunks):
                pending = self._stage_pool.submit(self.detect, chunks[i + 1], confidence=detect_at)
            results += self._steps.read(chunk.crops, found, confidence=threshold)
        return results

    @property
    def fast_info(self) -> ModelInfo | None:
        """The fast reader in front of the fused reader's stages (None without a cascade)."""
        cascade = self.fast is not None and self.cascade_confidence is not None
        return self.fast.model_info if cascade and self.fast is not None else None

    @property
    def recogniser_info(self) -> ModelInfo | None:
        """The second stage's model (None when reading with the detector alone)."""
        return self.recogniser.model_info if self.recogniser is not None else None

    @property
    def views(self) -> tuple[View, ...]:
        """The views the detector stage looks at each crop in (reader.views)."""
        return self._steps.views

    def detect_confidence(self, threshold: float | None = None) -> float:
        """The box score the detector stage keeps down to for a reading at `threshold` (None:
        the reader's): the reading steps look at weaker boxes than the threshold."""
        threshold = self.confidence if threshold is None else threshold
        return min(self._steps.detector_confidence_floor, threshold)

    def detect(self, batch: PlateBatch, *, confidence: float | None = None) -> list[Detections]:
        """The detector stage alone: one `Detections` per crop, in crop pixels, down to
        `confidence` (None: what a reading at the reader's threshold needs). The detector's own
        reading combines the boxes of every view of a crop (reader.views) into one set."""
        confidence = self.detect_confidence() if confidence is None else confidence
        views = self.views
        if views == (IDENTITY,):
            return self._detect(batch, confidence)
        if len(batch.crops) != len(batch):
            raise ValueError("reading in several views needs the batch's crops (use preprocess)")
        return detect_in_views(
            views, batch.crops, lambda shown: self._detect(self.preprocess(shown), confidence)
        )

    def _require_detector(self) -> Detector:
        if self._detector is None:
            raise ValueError("this reader reads without the character detector (locator fast)")
        return self._detector

    def _detect(self, batch: PlateBatch, confidence: float) -> list[Detections]:
        detector = self._require_detector()
        found: list[Detections] = []
        # The views of a batch of `max_batch` crops run as one call (on a GPU, about one
        # view's time), never split at `max_batch` into one call per view.
        limit = min(self.max_batch * len(self.views), self._detector_batch)
        # Serialised: runtimes (ONNX Runtime sessions, exports, CUDA graphs) keep per-call state.
        with self._lock:
            for start in range(0, len(batch), limit):
                found += detector.detect(batch[start : start + limit], confidence=confidence)
        return found

    def _to_array(self, image: ImageInput) -> BgrImage:
        if isinstance(image, np.ndarray):
            return ensure_bgr(image)
        if isinstance(image, str | Path):
            image = load_path(Path(image), max_bytes=self.max_image_bytes)
        return decode_image(
            bytes(image), max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels
        )
