"""`PlateReader`: the YOLO character detector, loaded and warmed up once, reading batches.

The ultralytics predictor pattern without its file and display I/O: images come in as arrays,
one model call reads a whole batch, and `postprocess` turns the boxes into text. The reader is
not re-entrant (ultralytics keeps per-call state on its predictor), so calls are serialised
with a lock; a worker owns one reader per device.
"""

import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from ultralytics.models.yolo.model import YOLO

from plate_ocr.constants import CLASS_NAMES, DEFAULT_CONFIDENCE
from plate_ocr.errors import ModelError
from plate_ocr.settings import Settings
from schemas.reading import ModelInfo
from worker.device import resolve_device
from worker.image import BgrImage, decode_image, ensure_bgr, load_path
from worker.postprocess import OcrResult, naive_order, order_characters

__all__ = ["BUNDLED_MODEL_NAME", "ImageInput", "OcrResult", "PlateReader", "bundled_model_path"]

BUNDLED_MODEL_NAME: Final = "plate_ocr_yolo11n.pt"

ImageInput = bytes | str | Path | npt.NDArray[Any]
"""Encoded image bytes, a path to an image file, or a decoded (BGR or gray) array."""

_DEFAULT_MAX_IMAGE_BYTES: Final[int] = Settings.model_fields["max_image_bytes"].default
_DEFAULT_MAX_IMAGE_PIXELS: Final[int] = Settings.model_fields["max_image_pixels"].default
_FALLBACK_IMGSZ: Final = 640  # ultralytics' own default, for weights that do not record theirs
_WARM_UP_SHAPE: Final = (64, 192, 3)  # a plate-like aspect ratio


def bundled_model_path() -> Path:
    """Where the weights shipped with the package live (`worker/models/`)."""
    return Path(__file__).resolve().parent / "models" / BUNDLED_MODEL_NAME


class PlateReader:
    """Reads cropped plates with a 36-class (0-9, A-Z) YOLO character detector.

    `imgsz=None` uses the size the weights were trained at, as plain ultralytics (and so the
    seed's test_ocr.py) does. `naive=True` orders characters like the seed did (left to right,
    no duplicate suppression, no rows), for comparisons.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        device: str = "cpu",
        confidence: float = DEFAULT_CONFIDENCE,
        imgsz: int | None = 256,
        naive: bool = False,
        max_image_bytes: int = _DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = _DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        path = Path(model_path) if model_path is not None else bundled_model_path()
        self.device = resolve_device(device)  # before loading: a bad device fails fast
        self._model = _load_model(path)
        self.model_path = path
        self.model_info = ModelInfo(name=path.stem, sha256=_sha256(path))
        self.confidence = confidence
        self.imgsz = imgsz if imgsz is not None else _trained_imgsz(self._model.overrides)
        self.naive = naive
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self._lock = threading.Lock()
        self.read_arrays([np.zeros(_WARM_UP_SHAPE, dtype=np.uint8)])  # pays CUDA/JIT set-up now

    @classmethod
    def from_settings(
        cls, settings: Settings, *, imgsz: int | None = None, naive: bool = False
    ) -> "PlateReader":
        """A reader configured from the settings; `imgsz` overrides `settings.imgsz`."""
        return cls(
            settings.model_path,
            device=settings.device,
            confidence=settings.confidence,
            imgsz=imgsz if imgsz is not None else settings.imgsz,
            naive=naive,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
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
        threshold = self.confidence if confidence is None else confidence
        with self._lock, torch.inference_mode():
            # rect=False: every crop is letterboxed to the same square, as in a batch of mixed
            # sizes, so a plate reads the same whatever it was batched with.
            results = self._model.predict(
                list(images),
                conf=threshold,
                imgsz=self.imgsz,
                device=self.device,
                rect=False,
                verbose=False,
            )
        order = naive_order if self.naive else order_characters
        readings = []
        for result in results:
            boxes = result.boxes
            readings.append(
                order(
                    boxes.xyxy.cpu().numpy(),
                    boxes.conf.cpu().numpy(),
                    boxes.cls.cpu().numpy(),
                    confidence=threshold,
                )
            )
        return readings

    def _to_array(self, image: ImageInput) -> BgrImage:
        if isinstance(image, np.ndarray):
            return ensure_bgr(image)
        if isinstance(image, str | Path):
            image = load_path(Path(image), max_bytes=self.max_image_bytes)
        return decode_image(
            bytes(image), max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels
        )


def _load_model(path: Path) -> Any:
    if not path.is_file():
        hint = (
            "the bundled model is not installed; pass --model or set PLATE_OCR_MODEL_PATH"
            if path == bundled_model_path()
            else "check --model / PLATE_OCR_MODEL_PATH"
        )
        raise ModelError(f"no model weights at {path}: {hint}")
    try:
        model = YOLO(str(path), task="detect")
    except Exception as e:  # ultralytics and torch.load raise a dozen unrelated types
        raise ModelError(f"cannot load model weights {path}: {e}") from e
    if model.task != "detect":
        raise ModelError(f"{path} is a {model.task!r} model, not a character detector")
    found = _class_names(model.names)
    if found != CLASS_NAMES:
        preview = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
        raise ModelError(
            f"{path} is not a 0-9A-Z character detector: it has {len(found)} classes "
            f"({preview}); expected the 36 classes 0-9 then A-Z in that id order"
        )
    return model


def _class_names(names: Mapping[int, str] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, Mapping):
        return tuple(str(names[i]) for i in sorted(names))
    return tuple(str(n) for n in names)


def _trained_imgsz(overrides: Mapping[str, Any]) -> int:
    imgsz = overrides.get("imgsz", _FALLBACK_IMGSZ)
    if isinstance(imgsz, Sequence):  # (h, w) in some checkpoints; the predictor wants one side
        return int(max(imgsz))
    return int(imgsz)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
