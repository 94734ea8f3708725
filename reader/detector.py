"""`Detector`: the swappable model runtime of a `PlateReader`, and the batch it takes.

A detector turns a letterboxed batch into one `Detections` per crop (boxes in crop pixels,
after NMS). Two implement it:

    reader.onnx_detector.OnnxDetector    ONNX Runtime + numpy NMS: no torch (the `[cpu]` extra)
    reader.torch_detector.TorchDetector  ultralytics on PyTorch, or its exports (`[gpu]` extra)

Everything after `detect` (ordering, a recogniser, fusion) works on `Detections` only, so it
never knows which runtime ran. `choose_backend` is the one place that picks the runtime.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from plate_ocr.errors import ConfigError
from reader.bundle import bundled_model_path, file_sha256
from reader.detections import Detections
from reader.image import ensure_bgr
from schemas.reading import ModelInfo

__all__ = [
    "AUTO",
    "IOU",
    "LIGHT_BACKEND",
    "MAX_DET",
    "STRIDE",
    "TORCH_BACKENDS",
    "Detector",
    "PlateBatch",
    "choose_backend",
    "letterbox",
    "load_detector",
    "plate_input_hw",
    "require_torch",
    "resolve_input_hw",
]

STRIDE: Final = 32  # YOLO11's largest stride: input sides must be multiples of it
IOU: Final = 0.7  # ultralytics' predict default for NMS (per class)
MAX_DET: Final = 300  # ultralytics' predict default; a plate has under 10 characters
AUTO: Final = "auto"
LIGHT_BACKEND: Final = "onnxruntime"
TORCH_BACKENDS: Final = ("torch", "onnx", "openvino", "engine")  # reader.backends, via ultralytics
_GPU_EXTRA: Final = "pip install 'plate-ocr-stream[gpu]'"
_PAD_VALUE: Final = 114  # ultralytics' letterbox grey, which the model was trained with


@dataclass(frozen=True, slots=True)
class PlateBatch:
    """Crops letterboxed to the reader's input shape: what `PlateReader.infer` takes.

    `pixels` is (N, 3, H, W) RGB in 0-1, in the detector's own type: a torch tensor on the
    reader's device (torch path) or a float32 numpy array (ONNX Runtime); `shapes` are the
    crops' own (height, width), to map boxes back to crop pixels; `crops` the decoded BGR crops
    themselves (references, not copies), for stages after the detector that read the crop in
    their own way (a text-line recogniser); empty when the batch was built without them.
    """

    pixels: Any
    shapes: tuple[tuple[int, int], ...]
    crops: tuple[npt.NDArray[np.uint8], ...] = ()

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, part: slice) -> "PlateBatch":
        return PlateBatch(
            pixels=self.pixels[part], shapes=self.shapes[part], crops=self.crops[part]
        )


class Detector(Protocol):
    """A character detector runtime, loaded once. Not thread-safe: the reader serialises calls."""

    model_info: ModelInfo  # the weights' name and sha256, as readings carry them
    imgsz: int  # the size the reader resolved (trained size unless overridden)
    input_hw: tuple[int, int]  # the single (height, width) every batch is letterboxed to

    def to_pixels(self, canvas: npt.NDArray[np.uint8]) -> Any:
        """(N, H, W, 3) RGB uint8 letterboxed crops -> this runtime's `PlateBatch.pixels`."""
        ...

    def detect(self, batch: PlateBatch, *, confidence: float) -> list[Detections]:
        """One `Detections` per crop, in order: boxes scoring above `confidence`, after NMS."""
        ...


def plate_input_hw(imgsz: int) -> tuple[int, int]:
    """The plate-shaped input for `imgsz`: `imgsz` wide, half as tall, both stride multiples."""
    width = -(-imgsz // STRIDE) * STRIDE
    return -(-width // 2 // STRIDE) * STRIDE, width


def resolve_input_hw(imgsz: int, input_hw: tuple[int, int] | None) -> tuple[int, int]:
    """`input_hw`, or the plate shape of `imgsz`. Raises ConfigError for a non-stride side."""
    shape = input_hw if input_hw is not None else plate_input_hw(imgsz)
    if any(side <= 0 or side % STRIDE for side in shape):
        raise ConfigError(f"input_hw {shape} must be positive multiples of {STRIDE}")
    return shape


def choose_backend(backend: str, model_path: Path | None, device: str) -> str:
    """The runtime a reader uses. `auto`: ONNX Runtime for the bundled model (no path, its
    path, or a byte-for-byte copy of it) or an `.onnx` file on the CPU; torch for any other
    `.pt` weights or a CUDA device. Never falls back:
    a choice that cannot run here raises ConfigError with the install that fixes it.
    """
    onnx_file = model_path is not None and model_path.suffix == ".onnx"
    bundled = model_path is None or _is_bundled(model_path)
    why = f"the {backend} backend"
    if backend == AUTO:
        backend = LIGHT_BACKEND if device == "cpu" and (bundled or onnx_file) else "torch"
        why = f"device {device!r}" if device != "cpu" else f"reading .pt weights ({model_path})"
    if backend == LIGHT_BACKEND:
        if device != "cpu":
            raise ConfigError(f"the {LIGHT_BACKEND} backend runs on the CPU; use --device cpu")
        if not (bundled or onnx_file):
            raise ConfigError(
                f"the {LIGHT_BACKEND} backend runs an .onnx file made by `python -m "
                f"reader.export_onnx --weights {model_path}`; or use --backend torch for .pt"
            )
    elif backend in TORCH_BACKENDS:
        if onnx_file:
            raise ConfigError(f"{model_path} is an ONNX file: use --backend {LIGHT_BACKEND}")
        require_torch(why)
    else:
        raise ConfigError(
            f"unknown backend {backend!r}: expected {AUTO}, {LIGHT_BACKEND} or "
            + ", ".join(TORCH_BACKENDS)
        )
    return backend


def _is_bundled(path: Path) -> bool:
    """The shipped weights: that file, or a copy of it (same bytes, so the same shipped ONNX)."""
    shipped = bundled_model_path()
    if path.resolve() == shipped:
        return True
    same_size = (
        path.is_file() and shipped.is_file() and path.stat().st_size == shipped.stat().st_size
    )
    return same_size and file_sha256(path) == file_sha256(shipped)


def require_torch(what: str) -> None:
    """Raise ConfigError, naming the extra to install, unless torch and ultralytics import."""
    try:
        import torch  # noqa: F401
        import ultralytics  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"{what} needs torch and ultralytics, which the light install leaves out: {_GPU_EXTRA}"
        ) from e


def letterbox(
    images: Sequence[npt.NDArray[Any]], input_hw: tuple[int, int], detector: Detector
) -> PlateBatch:
    """Decoded crops (BGR or gray) letterboxed into one batch of `detector`'s input. No model
    call. Same geometry as ultralytics' LetterBox (centred, grey 114, linear resize, up- or
    down-scaled to fit), so boxes map back exactly as `predict` maps them."""
    height, width = input_hw
    canvas = np.full((len(images), height, width, 3), _PAD_VALUE, dtype=np.uint8)
    shapes, crops = [], []
    for i, image in enumerate(images):
        crop = ensure_bgr(image)
        crops.append(crop)
        h0, w0 = crop.shape[:2]
        gain = min(height / h0, width / w0)
        w1, h1 = max(round(w0 * gain), 1), max(round(h0 * gain), 1)
        top, left = round((height - h1) / 2 - 0.1), round((width - w1) / 2 - 0.1)
        if (w1, h1) != (w0, h0):
            crop = np.asarray(cv2.resize(crop, (w1, h1), interpolation=cv2.INTER_LINEAR))
        # RGB here, per crop, costs a tenth of flipping the whole float batch afterwards.
        canvas[i, top : top + h1, left : left + w1] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        shapes.append((h0, w0))
    return PlateBatch(pixels=detector.to_pixels(canvas), shapes=tuple(shapes), crops=tuple(crops))


def load_detector(
    backend: str,
    model_path: Path | None,
    *,
    device: str,
    imgsz: int | None,
    input_hw: tuple[int, int] | None,
    max_batch: int,
    cache_dir: Path | None,
    threads: int | None,
    spinning: bool = True,
) -> Detector:
    """The detector runtime `backend` names (reader.onnx_detector for the light one, else
    reader.torch_detector, which imports torch)."""
    if backend == LIGHT_BACKEND:
        from reader.onnx_detector import OnnxDetector

        onnx = model_path if model_path is not None and model_path.suffix == ".onnx" else None
        return OnnxDetector(
            onnx, imgsz=imgsz, input_hw=input_hw, threads=threads, spinning=spinning
        )
    from reader.torch_detector import TorchDetector  # imports torch: only on this path

    return TorchDetector(
        model_path if model_path is not None else bundled_model_path(),
        device=device,
        backend=backend,
        imgsz=imgsz,
        input_hw=input_hw,
        max_batch=max_batch,
        cache_dir=cache_dir,
    )
