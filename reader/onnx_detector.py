"""`OnnxDetector`: the character detector on ONNX Runtime, with no torch and no ultralytics.

What the light (`[cpu]`) install runs: the shipped ONNX export of the bundled weights (or any
`.onnx` made by `python -m reader.export_onnx`, with its manifest), on ONNX Runtime's CPU
provider, NMS and box scaling in numpy (reader.nms). Before the session is built, the file's
hash is checked against its manifest and the manifest's classes against ours, so a swapped or
stale file is a ModelError at start-up, not wrong readings later.
"""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ConfigError, ModelError
from reader.bundle import bundled_onnx_path, file_sha256, read_manifest
from reader.detections import Detections
from reader.detector import IOU, MAX_DET, PlateBatch, resolve_input_hw
from reader.nms import detections_from_head
from reader.onnx_session import open_session
from schemas.reading import ModelInfo

__all__ = ["OnnxDetector"]


class OnnxDetector:
    """ONNX Runtime on the CPU. `threads=None` lets ONNX Runtime pick (one per physical core);
    give a worker sharing a node its share, as for torch."""

    def __init__(
        self,
        onnx_path: Path | None = None,
        *,
        imgsz: int | None,
        input_hw: tuple[int, int] | None,
        threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        try:
            import onnxruntime  # noqa: F401  # only to say what to install, before any work
        except ImportError as e:
            raise ConfigError(
                "the onnxruntime backend needs onnxruntime: pip install 'plate-ocr-stream[cpu]'"
            ) from e
        path = onnx_path if onnx_path is not None else bundled_onnx_path()
        if not path.is_file():
            raise ModelError(f"no ONNX model at {path}: run `python -m reader.export_onnx`")
        manifest = read_manifest(path)
        if manifest.onnx_sha256 != file_sha256(path):
            raise ModelError(
                f"{path} is not the file its manifest describes (sha256 differs): "
                "re-export it with `python -m reader.export_onnx`"
            )
        if manifest.class_names != CLASS_NAMES:
            raise ModelError(
                f"{path} is not a 0-9A-Z character detector: its manifest lists "
                f"{len(manifest.class_names)} classes"
            )
        self.path = path
        self.model_info = ModelInfo(name=manifest.source_name, sha256=manifest.source_sha256)
        self.imgsz = imgsz if imgsz is not None else manifest.imgsz
        self.input_hw = resolve_input_hw(self.imgsz, input_hw)
        self._session = open_session(path, threads=threads, spinning=spinning, what="detector")
        self._input = self._session.get_inputs()[0].name

    def to_pixels(self, canvas: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """NHWC uint8 -> contiguous NCHW float32 in 0-1, in one pass."""
        pixels = np.empty((canvas.shape[0], 3, *canvas.shape[1:3]), dtype=np.float32)
        np.divide(canvas.transpose(0, 3, 1, 2), np.float32(255), out=pixels)  # as torch's div_
        return pixels

    def detect(self, batch: PlateBatch, *, confidence: float) -> list[Detections]:
        """Run the graph on the batch, then numpy NMS: one `Detections` per crop."""
        head: Any = self._session.run(None, {self._input: batch.pixels})[0]
        return detections_from_head(
            np.asarray(head, dtype=np.float32),
            input_hw=self.input_hw,
            shapes=batch.shapes,
            confidence=confidence,
            iou=IOU,
            max_det=MAX_DET,
        )
