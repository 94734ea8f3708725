"""reader.export_recogniser: the hard-swish rewrite of PP-OCR's graph, and the bundled result."""

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from plate_ocr.errors import ModelError  # noqa: E402
from reader.export_recogniser import export_recogniser, fuse_hard_swish  # noqa: E402
from reader.recogniser import ppocr_recogniser_path  # noqa: E402


def _paddle_style(path: Path, *, three: float = 3.0) -> None:
    """A Conv then x * clip(x + three, 0, 6) / 6, spelt as Paddle's exporter spells it."""
    rng = np.random.default_rng(1)
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(size=108).astype(np.float32)
    )
    constants = [
        helper.make_node("Constant", [], [name], value=helper.make_tensor(name, 1, [1], [v]))
        for name, v in (("three", three), ("zero", 0.0), ("six", 6.0), ("six_", 6.0))
    ]
    nodes = [
        *constants,
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["k"]),
        helper.make_node("Mul", ["c", "k"], ["m"]),
        helper.make_node("Div", ["m", "six_"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _op_types(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_the_chain_becomes_one_hard_swish_with_the_same_outputs(tmp_path: Path) -> None:
    _paddle_style(tmp_path / "src.onnx")
    assert export_recogniser(tmp_path / "src.onnx", tmp_path / "out.onnx") == 1
    assert _op_types(tmp_path / "out.onnx") == ["Conv", "HardSwish"]
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    a, b = (
        ort.InferenceSession(str(tmp_path / p)).run(None, {"x": x})[0]
        for p in ("src.onnx", "out.onnx")
    )
    np.testing.assert_allclose(a, b, atol=1e-5)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "out.onnx")).metadata_props}
    assert len(props["source_sha256"]) == 64


def test_a_chain_with_other_constants_is_left_alone(tmp_path: Path) -> None:
    _paddle_style(tmp_path / "src.onnx", three=2.0)
    model = onnx.load(str(tmp_path / "src.onnx"))
    assert fuse_hard_swish(model) == 0
    with pytest.raises(ModelError, match="no hard-swish chain"):
        export_recogniser(tmp_path / "src.onnx", tmp_path / "out.onnx")


def test_the_bundled_recogniser_is_the_fused_graph() -> None:
    ops = _op_types(ppocr_recogniser_path())
    assert ops.count("HardSwish") == 28 and "Clip" not in ops
