"""Which runtime a reader gets: `auto`'s rule, and refusals that name the fix."""

from pathlib import Path

import pytest

from plate_ocr.errors import ConfigError
from reader.bundle import bundled_model_path, bundled_onnx_path
from reader.detector import choose_backend, plate_input_hw, resolve_input_hw


def test_auto_runs_the_bundled_model_on_onnxruntime_on_the_cpu() -> None:
    assert choose_backend("auto", None, "cpu") == "onnxruntime"
    assert choose_backend("auto", bundled_model_path(), "cpu") == "onnxruntime"
    assert choose_backend("auto", bundled_onnx_path(), "cpu") == "onnxruntime"


def test_a_copy_of_the_bundled_weights_is_the_bundled_model(tmp_path: Path) -> None:
    copy = tmp_path / "usa_plate_ocr.pt"
    copy.write_bytes(bundled_model_path().read_bytes())
    assert choose_backend("auto", copy, "cpu") == "onnxruntime"


def test_auto_runs_other_weights_and_cuda_on_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert choose_backend("auto", tmp_path / "usa_plate_ocr.pt", "cpu") == "torch"
    assert choose_backend("auto", None, "cuda:0") == "torch"


@pytest.mark.parametrize(
    ("backend", "model", "device", "message"),
    [
        ("onnxruntime", None, "cuda:0", "runs on the CPU"),
        ("onnxruntime", Path("usa_plate_ocr.pt"), "cpu", "python -m reader.export_onnx"),
        ("torch", Path("mine.onnx"), "cpu", "use --backend onnxruntime"),
        ("tensorflow", None, "cpu", "unknown backend 'tensorflow'"),
    ],
)
def test_impossible_choices_are_refused(
    backend: str, model: Path | None, device: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_backend(backend, model, device)


def test_input_shapes_stay_on_the_stride() -> None:
    assert plate_input_hw(256) == (128, 256)
    assert resolve_input_hw(256, None) == (128, 256)
    assert resolve_input_hw(256, (256, 256)) == (256, 256)
    with pytest.raises(ConfigError, match="multiples of 32"):
        resolve_input_hw(256, (100, 256))
