"""The light path: ONNX Runtime reads what torch reads, and needs neither torch nor ultralytics."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plate_ocr.demo import sample_dir
from plate_ocr.errors import ModelError
from reader.bundle import bundled_model_path, bundled_onnx_path, file_sha256, manifest_path
from reader.engine import PlateReader
from reader.onnx_detector import OnnxDetector

ROOT = Path(__file__).resolve().parents[2]
# Makes torch, torchvision and ultralytics unimportable, as in a fresh `[cpu]` venv.
_NO_TORCH = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "ultralytics"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Absent())
"""


def _without_torch(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "YOLO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _NO_TORCH + code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def light() -> PlateReader:
    return PlateReader()


def _samples() -> list[Path]:
    return sorted(p for p in sample_dir().iterdir() if p.suffix in (".jpg", ".png"))


def test_the_default_reader_is_the_light_one_and_names_the_pt(light: PlateReader) -> None:
    assert light.backend == "onnxruntime"
    assert light.model_info.name == bundled_model_path().stem
    assert light.model_info.sha256 == file_sha256(bundled_model_path())
    assert light.input_hw == (128, 256)


@pytest.mark.model
def test_onnxruntime_reads_the_samples_as_torch_does(light: PlateReader) -> None:
    pytest.importorskip("torch")
    reference = PlateReader(backend="torch")
    assert reference.model_info == light.model_info
    paths = _samples()
    ours, theirs = light.read_batch(paths), reference.read_batch(paths)
    assert [r.text for r in ours] == [r.text for r in theirs]
    assert any(r.text for r in ours)
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(a.characters, b.characters, strict=True):
            assert abs(x.confidence - y.confidence) < 1e-4
            assert np.max(np.abs(np.subtract(x.box, y.box))) < 0.01
    for image in (_read(p) for p in paths):
        (mine,) = light.detect(light.preprocess([image]))
        (ref,) = reference.detect(reference.preprocess([image]))
        np.testing.assert_array_equal(mine.classes, ref.classes)
        np.testing.assert_allclose(mine.class_scores, ref.class_scores, atol=1e-4)


def _read(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None
    return np.asarray(image)


def test_a_light_reader_imports_neither_torch_nor_ultralytics() -> None:
    done = _without_torch(
        "import sys\n"
        "from reader.engine import PlateReader\n"
        "reader = PlateReader()\n"
        "print(reader.backend, reader.read(sys.argv[1]).text)\n"
        "assert not {'torch', 'ultralytics'} & set(sys.modules), 'torch was imported'\n",
        str(_samples()[0]),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "onnxruntime" and len(done.stdout.split()) == 2


@pytest.mark.parametrize(
    "code",
    [
        "PlateReader(backend='torch')",
        "PlateReader('usa_plate_ocr.pt')",  # auto: .pt weights need torch
        "PlateReader(device='cuda:0')",
    ],
)
def test_asking_for_torch_without_it_says_which_extra_to_install(code: str) -> None:
    done = _without_torch(
        "from plate_ocr.errors import ConfigError\n"
        "from reader.engine import PlateReader\n"
        f"try:\n    {code}\nexcept ConfigError as e:\n    print(e)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "needs torch and ultralytics" in done.stdout
    assert "pip install 'plate-ocr-stream[gpu]'" in done.stdout


def test_training_without_torch_is_a_one_line_error() -> None:
    done = _without_torch(
        "import sys\nfrom plate_ocr.cli import main\nsys.exit(main(['train', '--help']))\n"
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "plate-ocr train needs torch and ultralytics" in line and "[gpu]" in line


def test_an_onnx_file_that_is_not_its_manifests_is_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "plate_ocr_yolo11n.onnx"
    onnx.write_bytes(bundled_onnx_path().read_bytes() + b"\0")
    shutil.copyfile(manifest_path(bundled_onnx_path()), manifest_path(onnx))
    with pytest.raises(ModelError, match="not the file its manifest describes"):
        OnnxDetector(onnx, imgsz=None, input_hw=None)


def test_an_exported_onnx_file_can_be_named_as_the_model(tmp_path: Path) -> None:
    onnx = tmp_path / "mine.onnx"
    shutil.copyfile(bundled_onnx_path(), onnx)
    shutil.copyfile(manifest_path(bundled_onnx_path()), manifest_path(onnx))
    reader = PlateReader(onnx, threads=1)
    assert reader.backend == "onnxruntime"
    assert reader.model_info.sha256 == file_sha256(bundled_model_path())
    assert reader.read(np.full((80, 240, 3), 255, dtype=np.uint8)).text == ""
