"""`PlateReader`: the YOLO character detector, loaded and warmed up once, reading batches.

The ultralytics predictor pattern without its file and display I/O, split in two so a worker can
overlap them: `preprocess` letterboxes decoded crops into one tensor (pure, thread-safe, no
model), `infer` runs the network, NMS and `postprocess` ordering on it. `read_arrays` is both.

Every crop is letterboxed to ONE plate-shaped input, `input_hw` (by default half as tall as
`imgsz` is wide, rounded up to the stride: 128x256 for imgsz 256), not to a square: a US plate
is about 2:1, so a square input is half padding and costs twice the compute for nothing. Boxes
come back in crop pixels whatever the input shape, exactly as ultralytics' own `predict` with
`imgsz=[h, w]` gives them (same letterbox, same NMS, same box scaling). On 300 real dev plates
(epoch-3 weights) 128x256 read 30.7% exactly (CER 18.4%) against 28.7% (18.5%) for the 256x256
square, at 2.3x the plates/s.
"""

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt
import torch
from ultralytics.models.yolo.model import YOLO
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import scale_boxes

from plate_ocr.constants import CLASS_NAMES, DEFAULT_CONFIDENCE
from plate_ocr.errors import ConfigError, ModelError
from plate_ocr.settings import Settings
from schemas.reading import ModelInfo
from worker.backends import load_backend
from worker.device import resolve_device
from worker.image import BgrImage, decode_image, ensure_bgr, load_path
from worker.postprocess import OcrResult, naive_order, order_characters

__all__ = [
    "BUNDLED_MODEL_NAME",
    "ImageInput",
    "OcrResult",
    "PlateBatch",
    "PlateReader",
    "bundled_model_path",
    "plate_input_hw",
]

BUNDLED_MODEL_NAME: Final = "plate_ocr_yolo11n.pt"

ImageInput = bytes | str | Path | npt.NDArray[Any]
"""Encoded image bytes, a path to an image file, or a decoded (BGR or gray) array."""

_DEFAULT_MAX_IMAGE_BYTES: Final[int] = Settings.model_fields["max_image_bytes"].default
_DEFAULT_MAX_IMAGE_PIXELS: Final[int] = Settings.model_fields["max_image_pixels"].default
_FALLBACK_IMGSZ: Final = 640  # ultralytics' own default, for weights that do not record theirs
_WARM_UP_SHAPE: Final = (64, 192, 3)  # a plate-like aspect ratio
_STRIDE: Final = 32  # YOLO11's largest stride: input sides must be multiples of it
_PAD_VALUE: Final = 114  # ultralytics' letterbox grey, which the model was trained with
_IOU: Final = 0.7  # ultralytics' predict default for NMS (per class)
_MAX_DET: Final = 300  # ultralytics' predict default; a plate has under 10 characters


def bundled_model_path() -> Path:
    """Where the weights shipped with the package live (`worker/models/`)."""
    return Path(__file__).resolve().parent / "models" / BUNDLED_MODEL_NAME


def plate_input_hw(imgsz: int) -> tuple[int, int]:
    """The plate-shaped input for `imgsz`: `imgsz` wide, half as tall, both stride multiples."""
    width = -(-imgsz // _STRIDE) * _STRIDE
    return -(-width // 2 // _STRIDE) * _STRIDE, width


@dataclass(frozen=True, slots=True)
class PlateBatch:
    """Crops letterboxed to the reader's input shape: what `PlateReader.infer` takes.

    `pixels` is (N, 3, H, W) RGB in 0-1 on the reader's device; `shapes` are the crops' own
    (height, width), to map boxes back to crop pixels.
    """

    pixels: torch.Tensor
    shapes: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.shapes)


class PlateReader:
    """Reads cropped plates with a 36-class (0-9, A-Z) YOLO character detector.

    `imgsz=None` uses the size the weights were trained at. `input_hw` overrides the
    plate-shaped input derived from imgsz (`(imgsz, imgsz)` reads on the old square input).
    `naive=True` orders characters like the seed did (left to right, no duplicate suppression,
    no rows), for comparisons. `backend` is one of `worker.backends.BACKENDS`; exports are
    built for batches of up to `max_batch` crops (larger batches are split).
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
        backend: str = "torch",
        max_batch: int = 64,
        cache_dir: Path | None = None,
        max_image_bytes: int = _DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = _DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        path = Path(model_path) if model_path is not None else bundled_model_path()
        self.device = resolve_device(device)  # before loading: a bad device fails fast
        model = _load_model(path)
        self.model_path = path
        self.model_info = ModelInfo(name=path.stem, sha256=_sha256(path))
        self.confidence = confidence
        self.imgsz = imgsz if imgsz is not None else _trained_imgsz(model.overrides)
        self.input_hw = input_hw if input_hw is not None else plate_input_hw(self.imgsz)
        if any(side <= 0 or side % _STRIDE for side in self.input_hw):
            raise ConfigError(f"input_hw {self.input_hw} must be positive multiples of {_STRIDE}")
        self.naive = naive
        self.backend = backend
        self.max_batch = max_batch
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self._runtime = load_backend(
            backend,
            model=model.model,
            weights=path,
            sha256=self.model_info.sha256,
            device=self.device,
            input_hw=self.input_hw,
            max_batch=max_batch,
            cache_dir=cache_dir,
        )
        self._half = bool(getattr(self._runtime, "fp16", False))
        self._end2end = bool(getattr(self._runtime, "end2end", False))
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
            backend=settings.backend,
            max_batch=settings.batch_size,
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
        return self.infer(self.preprocess(images), confidence=confidence)

    def preprocess(self, images: Sequence[npt.NDArray[Any]]) -> PlateBatch:
        """Letterbox decoded crops (BGR or gray) into one batch. Thread-safe; no model involved.

        Same geometry as ultralytics' LetterBox (centred, grey 114, linear resize, up- or
        down-scaled to fit), so boxes map back exactly as `predict` maps them.
        """
        height, width = self.input_hw
        canvas = np.full((len(images), height, width, 3), _PAD_VALUE, dtype=np.uint8)
        shapes = []
        for i, image in enumerate(images):
            crop = ensure_bgr(image)
            h0, w0 = crop.shape[:2]
            gain = min(height / h0, width / w0)
            w1, h1 = max(round(w0 * gain), 1), max(round(h0 * gain), 1)
            top, left = round((height - h1) / 2 - 0.1), round((width - w1) / 2 - 0.1)
            if (w1, h1) != (w0, h0):
                crop = np.asarray(cv2.resize(crop, (w1, h1), interpolation=cv2.INTER_LINEAR))
            # RGB here, per crop, costs a tenth of flipping the whole float batch afterwards.
            canvas[i, top : top + h1, left : left + w1] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
            shapes.append((h0, w0))
        # uint8 crosses to the device (4x less to copy than float). The NCHW view of the NHWC
        # canvas is channels-last in memory, which is the layout the CPU convolutions run in,
        # so it is converted to float in place of being transposed.
        pixels = torch.from_numpy(canvas).to(self.device).permute(0, 3, 1, 2)
        pixels = (pixels.half() if self._half else pixels.float()).div_(255)
        return PlateBatch(pixels=pixels, shapes=tuple(shapes))

    def infer(self, batch: PlateBatch, *, confidence: float | None = None) -> list[OcrResult]:
        """Run the detector on a preprocessed batch: one reading per crop, in order."""
        if not len(batch):
            return []
        threshold = self.confidence if confidence is None else confidence
        detections: list[torch.Tensor] = []
        # Serialised: exported runtimes and CUDA graphs keep per-call state.
        with self._lock, torch.inference_mode():
            for start in range(0, len(batch), self.max_batch):
                raw = self._runtime(batch.pixels[start : start + self.max_batch])
                detections += non_max_suppression(
                    raw, threshold, _IOU, max_det=_MAX_DET, end2end=self._end2end
                )
        order = naive_order if self.naive else order_characters
        readings = []
        for found, shape in zip(detections, batch.shapes, strict=True):
            found = found.float().cpu()
            boxes = scale_boxes(self.input_hw, found[:, :4].numpy().copy(), shape)
            readings.append(
                order(
                    boxes,
                    found[:, 4].numpy(),
                    found[:, 5].numpy(),
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
