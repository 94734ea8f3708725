"""`TorchLineNetwork`: the line recogniser's ONNX graph run by PyTorch, for CUDA devices.

ONNX Runtime reaches a GPU only through onnxruntime-gpu, which cannot be installed beside the
`onnxruntime` that the light install and ultralytics' exports pull in (the two wheels overwrite
each other's files). The `[gpu]` extra has torch already, so on a CUDA device the recogniser runs
there: the same ONNX file (the bundled PP-OCRv4 one or a fine-tuned one), converted once at load
by onnx2torch. Same graph, same weights, so it reads as ONNX Runtime does
(tests/reader/test_torch_recogniser.py states the tolerance).
"""

import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plate_ocr.errors import ModelError

__all__ = ["TorchLineNetwork", "with_initializers"]

# onnx2torch's Slice indexes with a list, which torch warns about once per call; the result is
# right (it reads as ONNX Runtime does: the test above).
warnings.filterwarnings(
    "ignore",
    message="Using a non-tuple sequence for multidimensional indexing",
    category=UserWarning,
)


def with_initializers(model: Any) -> Any:
    """The same ONNX graph with every Constant node's tensor moved into the initializers:
    PP-OCR's export holds its weights as Constant nodes, which onnx2torch cannot convert
    (KeyError on the first weight; shared/reference/RECOGNISER_IN_TORCH.md)."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


class TorchLineNetwork:
    """(N, 3, 48, W) lines in -1..1 -> (N, W / 8, V) per-step probabilities, on `device`.

    `metadata` is the ONNX model's own (its `character` list names the V symbols)."""

    def __init__(self, path: Path, device: str) -> None:
        try:
            import onnx
            import torch
            from onnx2torch import convert
        except ImportError as e:
            raise ModelError(
                f"the line recogniser on {device} runs through PyTorch and needs {e.name}: "
                "pip install 'plate-ocr-stream[gpu]' (it lists onnx2torch)"
            ) from e
        model = onnx.load(str(path))
        self.metadata = {prop.key: prop.value for prop in model.metadata_props}
        self._torch = torch
        self._device = torch.device(device)
        self._module = convert(with_initializers(model)).eval().to(self._device)

    def __call__(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        torch = self._torch
        # Stage-pool threads start on device 0: enter the reader's own GPU on every call.
        inside: AbstractContextManager[Any] = (
            torch.cuda.device(self._device) if self._device.type == "cuda" else nullcontext()
        )
        with inside, torch.inference_mode():
            lines = torch.from_numpy(batch).to(self._device)
            probs: npt.NDArray[np.float32] = self._module(lines).float().cpu().numpy()
        return probs
