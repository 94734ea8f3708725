"""The line recogniser through PyTorch (reader.torch_recogniser), as a CUDA device runs it, here
on the CPU: the same ONNX file must read as ONNX Runtime reads it."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from plate_ocr.errors import ModelError
from reader.recogniser import LineRecogniser, choose_runtime

pytest.importorskip("onnx2torch")

SAMPLES = Path(__file__).resolve().parents[2] / "plate_ocr" / "samples"
# Folded per-step probabilities: two runtimes' float32 kernels over one graph. Measured on the
# 12 bundled samples' whole crops: at most 1.2e-5 apart; 1e-4 is still far below what could
# change a character (fusion and decoding weigh probabilities in hundredths at the finest).
PROB_TOLERANCE = 1e-4


def _sample_lines() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    with (SAMPLES / "labels.csv").open() as f:
        names = [row["file"] for row in csv.DictReader(f)]
    images = [cv2.imread(str(SAMPLES / name)) for name in names[:6]]
    return [(image, (0, 0, image.shape[1], image.shape[0])) for image in images]


@pytest.fixture(scope="module")
def both() -> tuple[LineRecogniser, LineRecogniser]:
    return LineRecogniser(threads=1), LineRecogniser(runtime="torch")


def test_torch_reads_the_bundled_recogniser_as_onnx_runtime_does(
    both: tuple[LineRecogniser, LineRecogniser],
) -> None:
    onnx_runtime, torch_runtime = both
    assert (onnx_runtime.runtime, torch_runtime.runtime) == ("onnxruntime", "torch")
    lines = _sample_lines()
    expected = onnx_runtime.read_batch(lines)
    got = torch_runtime.read_batch(lines)
    assert [r.text for r in got] == [r.text for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert a.probs.shape == b.probs.shape
        assert float(np.abs(a.probs - b.probs).max()) < PROB_TOLERANCE
    assert torch_runtime.model_info == onnx_runtime.model_info  # same file, same sha256


@pytest.mark.parametrize(
    ("asked", "device", "providers", "chosen"),
    [
        ("auto", "cpu", ["CPUExecutionProvider"], "onnxruntime"),
        ("auto", "cuda:1", ["CPUExecutionProvider"], "torch"),  # no onnxruntime-gpu
        ("auto", "cuda:0", ["CUDAExecutionProvider", "CPUExecutionProvider"], "onnxruntime"),
        ("onnxruntime", "cuda:0", ["CPUExecutionProvider"], "onnxruntime"),  # as asked
        ("torch", "cpu", ["CPUExecutionProvider"], "torch"),
    ],
)
def test_a_gpu_without_onnxruntime_gpu_gets_the_torch_runtime(
    asked: str, device: str, providers: list[str], chosen: str
) -> None:
    assert choose_runtime(asked, device, providers) == chosen  # type: ignore[arg-type]


def test_a_missing_recogniser_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no recogniser model"):
        LineRecogniser(tmp_path / "none.onnx", runtime="torch")
