"""`TorchDetector`: the character detector on ultralytics/PyTorch, or an export made by it.

The `[gpu]` extra's runtime: loads `.pt` weights (the bundled model, the seed's
`usa_plate_ocr.pt`, a retrained checkpoint), runs them on the CPU or CUDA through one of
`reader.backends` (torch, onnx, openvino, engine) and applies ultralytics' own NMS. Importing
this module imports torch; nothing on the light path does.
"""

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from ultralytics.models.yolo.model import YOLO
from ultralytics.utils.nms import non_max_suppression

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ModelError
from reader.backends import load_backend
from reader.bundle import bundled_model_path, file_sha256
from reader.detections import Detections
from reader.detector import IOU, MAX_DET, PlateBatch, resolve_input_hw
from reader.nms import scale_boxes
from reader.torch_nms import batched_nms
from schemas.reading import ModelInfo

__all__ = ["TorchDetector", "load_yolo", "trained_imgsz"]

_FALLBACK_IMGSZ: Final = 640  # ultralytics' own default, for weights that do not record theirs


class TorchDetector:
    """`.pt` weights on `device`, computed by `backend` (reader.backends.BACKENDS)."""

    def __init__(
        self,
        model_path: Path,
        *,
        device: str,
        backend: str,
        imgsz: int | None,
        input_hw: tuple[int, int] | None,
        max_batch: int,
        cache_dir: Path | None,
    ) -> None:
        model = load_yolo(model_path)
        self.model_info = ModelInfo(name=model_path.stem, sha256=file_sha256(model_path))
        self.imgsz = imgsz if imgsz is not None else trained_imgsz(model.overrides)
        self.input_hw = resolve_input_hw(self.imgsz, input_hw)
        self.device = device
        self._runtime = load_backend(
            backend,
            model=model.model,
            weights=model_path,
            sha256=self.model_info.sha256,
            device=device,
            input_hw=self.input_hw,
            max_batch=max_batch,
            cache_dir=cache_dir,
        )
        self._half = bool(getattr(self._runtime, "fp16", False))
        # Only torch's own convolutions take a strided (channels-last) view; the exports read
        # raw memory as NCHW (TensorRT is handed `data_ptr()`), so they get a dense copy.
        self._dense = backend != "torch"
        self._end2end = bool(getattr(self._runtime, "end2end", False))
        # On a GPU ultralytics' per-crop NMS loop is thousands of tiny waited-for calls a batch;
        # on the CPU it costs little, and ultralytics' own stays the reference.
        self._batched_nms = device.startswith("cuda") and not self._end2end

    @property
    def _on_device(self) -> AbstractContextManager[Any]:
        return torch.cuda.device(self.device) if self.device.startswith("cuda") else nullcontext()

    def to_pixels(self, canvas: npt.NDArray[np.uint8]) -> torch.Tensor:
        # uint8 crosses to the device (4x less to copy than float). The NCHW view of the NHWC
        # canvas is channels-last in memory, which is the layout the CPU convolutions run in,
        # so for torch it is converted to float in place of being transposed. An export gets
        # contiguous NCHW, made in the same pass as the conversion to float.
        pixels = torch.from_numpy(canvas).to(self.device).permute(0, 3, 1, 2)
        dtype = torch.float16 if self._half else torch.float32
        layout = torch.contiguous_format if self._dense else torch.preserve_format
        return pixels.to(dtype, memory_format=layout).div_(255)

    def detect(self, batch: PlateBatch, *, confidence: float) -> list[Detections]:
        # The device entered on the calling thread: CUDA's current device is per thread, and
        # TensorRT launches on the current one, so from the reader's stage-pool threads an
        # engine on cuda:1 would otherwise run on cuda:0.
        with self._on_device, torch.inference_mode():
            raw = self._runtime(batch.pixels)
            head = raw[0] if isinstance(raw, list | tuple) else raw
            if self._batched_nms:  # one NMS call for the batch, not a Python loop of them
                found, kept = batched_nms(head, confidence, IOU, max_det=MAX_DET)
            else:
                found, kept = non_max_suppression(
                    head, confidence, IOU, max_det=MAX_DET, end2end=self._end2end, return_idxs=True
                )
            # One copy to the host for the whole batch (each kept box's row and its class
            # scores side by side), not two per crop: on a GPU every copy waits for the device.
            parts = [r.float() for r in found]
            if not self._end2end:
                n_classes = head.shape[1] - 4
                parts = [
                    torch.cat([r, head[i, 4:, idx.long()].T.float()], dim=1)
                    if len(r)
                    else r.new_zeros((0, r.shape[1] + n_classes))
                    for i, (r, idx) in enumerate(zip(parts, kept, strict=True))
                ]
            table = torch.cat(parts).cpu().numpy()
        bounds = np.cumsum([0, *(len(r) for r in found)])
        return [
            self._detections(table[start:end], shape)
            for start, end, shape in zip(bounds[:-1], bounds[1:], batch.shapes, strict=True)
        ]

    def _detections(self, table: npt.NDArray[np.float32], shape: tuple[int, int]) -> Detections:
        """One crop's boxes from its rows of the batch's table: x1 y1 x2 y2 score class, then
        (unless end to end) the 36 class scores."""
        classes = table[:, 5].astype(np.intp)
        scores = table[:, 4].astype(np.float64)
        if self._end2end:  # the head keeps no per-class scores: only the winner's is known
            class_scores = np.zeros((len(table), len(CLASS_NAMES)))
            class_scores[np.arange(len(table)), classes] = scores
        else:
            class_scores = table[:, 6:].astype(np.float64)
        return Detections(
            xyxy=scale_boxes(self.input_hw, table[:, :4], shape),
            scores=scores,
            classes=classes,
            class_scores=class_scores,
        )


def load_yolo(path: Path) -> Any:
    """The ultralytics model at `path`, checked to be a 0-9A-Z character detector."""
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


def trained_imgsz(overrides: Mapping[str, Any]) -> int:
    """The size the weights were trained at (one side), from the checkpoint's overrides."""
    imgsz = overrides.get("imgsz", _FALLBACK_IMGSZ)
    if isinstance(imgsz, Sequence):  # (h, w) in some checkpoints; the predictor wants one side
        return int(max(imgsz))
    return int(imgsz)


def _class_names(names: Mapping[int, str] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, Mapping):
        return tuple(str(names[i]) for i in sorted(names))
    return tuple(str(n) for n in names)
