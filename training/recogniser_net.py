"""PP-OCRv4's line recogniser as a trainable PyTorch module with a 36-class CTC head, and back.

The bundled ONNX graph (`reader/models/ppocr/ppocrv4_rec.onnx`) holds its weights as Constant
nodes, which onnx2torch cannot convert (KeyError on the first weight); moved into the graph's
initializers it converts in a second and reads as ONNX Runtime does (2e-6 on random lines,
shared/reference/RECOGNISER_IN_TORCH.md). The graph is cut before its last MatMul (the 6,625-way
classifier) and `PlateRecogniserNet` puts a 37-way linear head there: the CTC blank and our 36
classes, each initialised from the matching row of the original classifier (the upper-case
letter's, the digit's), so the fine-tune starts from what PP-OCR already reads.

onnx2torch keeps the neck's matrices (attention, MLP, layer norms) as buffers; they are made
parameters here so the whole network trains. `export_onnx` writes the trained tensors back into
the original graph, by their ONNX names, and swaps the classifier for the new head: the exported
model is PP-OCR's own graph (hard-swish already fused by reader.export_recogniser) with new
weights, a 37-way softmax and `character` metadata listing our classes, which
`reader.recogniser.LineRecogniser` loads as it loads the original.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from plate_ocr.constants import CLASS_NAMES
from reader.torch_recogniser import with_initializers

__all__ = ["NUM_CLASSES", "PlateRecogniserNet", "export_onnx", "freeze_backbone", "load_net"]

# onnx2torch's Slice warning is silenced where the converter is imported (reader.torch_recogniser).

NUM_CLASSES: Final = len(CLASS_NAMES) + 1  # the CTC blank (index 0), then 0-9 A-Z
_FEATURES: Final = "transpose_51.tmp_0"  # (N, T, 120): the input of the classifier MatMul
# The graph's first 33 convolutions (and its first batch norm) are PPLCNetV3, the backbone; from
# the 34th on it is the SVTR neck (conv 480->60 1x3, 60->120, the attention blocks, 120->480,
# the 960->60 1x3 on the concatenation, 60->120), told apart by those shapes.
BACKBONE_CONVS: Final = 33
_HEAD_W: Final = "linear_85.w_0"
_HEAD_B: Final = "linear_85.b_0"


def _cut_at_features(model: Any) -> Any:
    """`model` up to the classifier's input, which becomes the graph's output."""
    from onnx import TensorProto, helper

    graph = model.graph
    index = next(i for i, n in enumerate(graph.node) if _FEATURES in n.output)
    kept = list(graph.node[: index + 1])
    del graph.node[:]
    graph.node.extend(kept)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(_FEATURES, TensorProto.FLOAT, None))
    return model


def _symbols(model: Any) -> list[str]:
    meta = {p.key: p.value for p in model.metadata_props}
    return ["<blank>", *meta["character"].splitlines(), " "]


class PlateRecogniserNet(nn.Module):
    """(N, 3, 48, W) lines in -1..1 -> (N, W / 8, 37) CTC logits (blank first)."""

    def __init__(self, trunk: nn.Module, head: nn.Linear, names: dict[str, str]) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.onnx_names = names  # trunk tensor name (state_dict key) -> ONNX initializer name

    def forward(self, lines: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.trunk(lines))
        return logits

    def train(self, mode: bool = True) -> PlateRecogniserNet:
        # The 6 batch norms keep PP-OCR's statistics: batches of a few dozen lines would only
        # add noise to statistics learnt on millions.
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def freeze_backbone(net: PlateRecogniserNet) -> int:
    """Train only the neck and the head; returns the parameters left trainable. On the CPU a
    step then costs 0.6 CPU-s instead of 2.7 for 16 lines of 48x360 (no backward through the
    backbone, no activations kept for it)."""
    for name, parameter in net.trunk.named_parameters():
        kind, _, index = name.partition(".")[0].removeprefix("p2o/").partition("/")
        backbone = (kind == "Conv" and int(index) < BACKBONE_CONVS) or (
            kind == "BatchNormalization" and int(index) == 0
        )
        parameter.requires_grad_(not backbone)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def load_net(source: Path) -> PlateRecogniserNet:
    """The PP-OCR recogniser at `source` (ONNX), its classifier replaced by the 37-way head."""
    import onnx
    from onnx import numpy_helper
    from onnx2torch import convert

    original = onnx.load(str(source))
    full = with_initializers(original)
    weights = {i.name: numpy_helper.to_array(i) for i in full.graph.initializer}
    cut = _cut_at_features(full)
    trunk = convert(cut, attach_onnx_mapping=True)
    from onnx2torch.onnx_graph import OnnxGraph  # the converter's own module names

    nodes = {name: list(node.input_values) for name, node in OnnxGraph(cut.graph).nodes.items()}
    names = _trainable(trunk, weights, nodes)

    symbols = _symbols(original)
    rows = [0] + [symbols.index(c) for c in CLASS_NAMES]  # blank, then the upper-case symbols
    head = nn.Linear(weights[_HEAD_W].shape[0], NUM_CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weights[_HEAD_W][:, rows].T.copy()))
        head.bias.copy_(torch.from_numpy(weights[_HEAD_B][rows].copy()))
    return PlateRecogniserNet(trunk, head, names)


def _trainable(
    trunk: nn.Module, weights: dict[str, np.ndarray], nodes: dict[str, list[str]]
) -> dict[str, str]:
    """Turn the neck's matrix buffers into parameters; map every trained tensor to its ONNX name.

    onnx2torch registers one `initializers.onnx_initializer_K` buffer per (node, initializer
    input) in graph order, so replaying that order names each buffer. Conv and batch-norm
    modules hold their own tensors, named by their node's inputs. `nodes` maps each module
    name (as onnx2torch names a node's module) to the node's inputs, in graph order.
    """
    names: dict[str, str] = {}
    container: Any = trunk.initializers
    buffers: dict[str, torch.Tensor] = dict(container.named_buffers())
    modules: dict[str, Any] = dict(trunk.named_children())
    count = 0
    for module_name in nodes:
        for value in modules[module_name].onnx_mapping.inputs:
            if value in weights:
                names[f"initializers.onnx_initializer_{count}"] = value
                count += 1
    if count != len(buffers):
        raise RuntimeError(f"named {count} of onnx2torch's {len(buffers)} initializer buffers")
    uses: dict[str, int] = {}
    for value in names.values():
        uses[value] = uses.get(value, 0) + 1
    for key, value in list(names.items()):
        buffer = buffers[key.removeprefix("initializers.")]
        # Scalars (the 3 and 6 of an activation, an epsilon) stay constants; so would a shared
        # tensor, whose copies would drift apart (none of the matrices is shared).
        if buffer.is_floating_point() and buffer.numel() > 1 and uses[value] == 1:
            short = key.removeprefix("initializers.")
            delattr(container, short)
            container.register_parameter(short, nn.Parameter(buffer.clone()))
        else:
            del names[key]
    for module_name, node in nodes.items():
        module = modules[module_name]
        if isinstance(module, nn.Conv2d):
            names[f"{module_name}.weight"] = node[1]
            if module.bias is not None:
                names[f"{module_name}.bias"] = node[2]
        elif isinstance(module, nn.BatchNorm2d):
            for field, value in zip(
                ("weight", "bias", "running_mean", "running_var"), node[1:5], strict=True
            ):
                names[f"{module_name}.{field}"] = value
    return names


def export_onnx(net: PlateRecogniserNet, template: Path, out: Path, **metadata: str) -> None:
    """Write `net` as the graph of `template` (the ONNX it was loaded from) with the trained
    tensors and the 37-way head; `metadata` joins the model's metadata."""
    import onnx
    from onnx import helper, numpy_helper

    model = with_initializers(onnx.load(str(template)))
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    trained = {onnx_name: state[f"trunk.{key}"] for key, onnx_name in net.onnx_names.items()}
    trained[_HEAD_W] = state["head.weight"].T.copy()
    trained[_HEAD_B] = state["head.bias"].copy()
    for tensor in model.graph.initializer:
        if tensor.name in trained:
            value = trained[tensor.name].astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    output = model.graph.output[0]
    output.type.tensor_type.shape.dim[2].dim_value = NUM_CLASSES
    # Paddle's exporter recorded intermediate shapes, some of them 6 625 wide; stale now, and
    # shape inference (onnx2torch's, onnx's strict checker) would refuse them.
    del model.graph.value_info[:]
    props = {p.key: p.value for p in model.metadata_props}
    props |= {"character": "\n".join(CLASS_NAMES), **metadata}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
