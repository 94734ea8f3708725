"""Which models a reader loads, by its kind, locator and cascade: `load_stages`.

`PlateReader` reads with what this returns and decides nothing about loading. The detector is
loaded only where something reads with it (the detector's own reading, or the fused reader
located by it); the fast reader only where it reads, locates or stands in front as a cascade;
the line recogniser only for the fused reader. The calibration comes with them: fitted for the
detector's weights where there is a detector, else the bundled file's fast-reader entries.
"""

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from plate_ocr.errors import ConfigError
from reader.bundle import bundled_model_path
from reader.calibration import Calibration
from reader.detector import LIGHT_BACKEND, Detector, choose_backend, load_detector
from reader.fast_reader import INPUT_HW, FastReader, bundled_fast_reader_path
from reader.locator import Locator
from reader.recogniser import LineRecogniser
from reader.two_stage import ReaderKind
from reader.views import DETECTOR_VIEWS
from schemas.reading import ModelInfo

log = logging.getLogger("plate_ocr.reader.stages")

__all__ = ["Stages", "load_stages"]


@dataclass(frozen=True, slots=True)
class Stages:
    """The models one reader reads with, loaded, and what the reader says of them."""

    detector: Detector | None
    fast: FastReader | None
    recogniser: LineRecogniser | None
    calibration: Calibration
    backend: str  # the detector's runtime, or LIGHT_BACKEND where there is no detector
    detector_batch: int  # the largest call the detector gets
    model_path: Path  # the first stage's file: the detector's, else the fast reader's
    model_info: ModelInfo
    imgsz: int
    input_hw: tuple[int, int]


def load_stages(
    *,
    reader: ReaderKind,
    locator: Locator | None,
    cascade: bool,
    naive: bool,
    device: str,
    model_path: Path | None,
    backend: str,
    calibration: Calibration | None,
    imgsz: int | None,
    input_hw: tuple[int, int] | None,
    max_batch: int,
    cache_dir: Path | None,
    threads: int | None,
    spinning: bool,
    recogniser_path: Path | str | None,
    fast_reader_path: Path | str | None,
    pool: Executor,
) -> Stages:
    """Load what `reader` reads with on `device` (`locator`: what locates the fused reader's
    serial, None for the other readers; `cascade`: the fast reader in front); the arguments are
    PlateReader's. Raises ConfigError for a combination that would read otherwise than asked
    (the fast reader on a GPU, a detector runtime without a detector, a calibration fitted for
    other weights)."""
    detector: Detector | None = None
    detector_backend = LIGHT_BACKEND
    detector_batch = 0
    if reader == "detector" or locator == "detector":
        detector_backend = choose_backend(backend, model_path, device)
        # The largest call: all the views of `max_batch` crops for the detector's own reading (a
        # TensorRT engine is built for it). The views come with the calibration.
        views = len(calibration.views if calibration is not None else DETECTOR_VIEWS)
        detector_batch = max_batch * (views if reader == "detector" and not naive else 1)
        detector = load_detector(
            detector_backend,
            model_path,
            device=device,
            imgsz=imgsz,
            input_hw=input_hw,
            max_batch=detector_batch,
            cache_dir=cache_dir,
            threads=threads,
            spinning=spinning,
        )
        calibration = _fitted(calibration, detector.model_info.sha256)
    elif calibration is None:
        calibration = Calibration.load()  # the fast reader's entries; no detector here
    fast: FastReader | None = None
    if reader == "fast" or locator == "fast" or cascade:
        if device != "cpu":
            # Its ONNX file runs on ONNX Runtime's CPU provider only, for now: reading on the
            # CPU when a GPU was asked for would be a silent fallback.
            raise ConfigError(f"the fast reader runs on the CPU only, not on {device}")
        fast = FastReader(fast_reader_path, threads=threads, spinning=spinning, pool=pool)
        calibration = calibration.for_fast_reader(fast.model_info.sha256)
        fast.calibration = calibration
    if detector is None and backend != "auto":  # a detector's runtime, and no detector here
        raise ConfigError(
            f"backend {backend!r} runs the character detector, which the "
            f"{'fast reader' if reader == 'fast' else 'fast-located fused reader'} reads without"
        )
    recogniser = (
        LineRecogniser(
            recogniser_path, threads=threads, spinning=spinning, device=device, pool=pool
        )
        if reader == "fused"
        else None
    )
    if detector is not None:
        return Stages(
            detector=detector,
            fast=fast,
            recogniser=recogniser,
            calibration=calibration,
            backend=detector_backend,
            detector_batch=detector_batch,
            model_path=model_path if model_path is not None else bundled_model_path(),
            model_info=detector.model_info,
            imgsz=detector.imgsz,
            input_hw=detector.input_hw,
        )
    assert fast is not None
    return Stages(
        detector=None,
        fast=fast,
        recogniser=recogniser,
        calibration=calibration,
        backend=LIGHT_BACKEND,
        detector_batch=0,
        model_path=Path(fast_reader_path) if fast_reader_path else bundled_fast_reader_path(),
        model_info=fast.model_info,
        imgsz=INPUT_HW[1],
        input_hw=INPUT_HW,
    )


def _fitted(calibration: Calibration | None, sha256: str) -> Calibration:
    """The calibration for the detector with this sha256: the bundled one's entries where
    none is given; a given one must have been fitted for it."""
    if calibration is None:
        return Calibration.load_for(sha256)
    if not calibration.fits(sha256):
        raise ConfigError(
            "the calibration was fitted for detector "
            f"{str(calibration.detector_sha256)[:12]}, not these weights "
            f"({sha256[:12]}): fit one for them with "
            "python -m training.calibrate DIR --model WEIGHTS"
        )
    return calibration
