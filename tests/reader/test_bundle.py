"""The shipped ONNX is the export of the shipped .pt: its manifest names the .pt by hash."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ModelError
from reader.bundle import (
    bundled_model_path,
    bundled_onnx_path,
    file_sha256,
    manifest_path,
    read_manifest,
)
from reader.export_onnx import check_pair, main


def test_the_shipped_onnx_was_made_from_the_shipped_weights() -> None:
    manifest = read_manifest(bundled_onnx_path())
    # Fails after a retraining until `python -m reader.export_onnx` is rerun and committed.
    assert manifest.source_sha256 == file_sha256(bundled_model_path())
    assert manifest.onnx_sha256 == file_sha256(bundled_onnx_path())
    assert manifest.source_name == bundled_model_path().stem
    assert manifest.class_names == CLASS_NAMES
    assert check_pair(bundled_model_path(), bundled_onnx_path()) == []
    assert main(["--check"]) == 0


def test_a_retrained_pt_no_longer_matches_its_onnx(tmp_path: Path) -> None:
    weights = tmp_path / "plate_ocr_yolo11n.pt"
    weights.write_bytes(bundled_model_path().read_bytes() + b"retrained")
    onnx = tmp_path / "plate_ocr_yolo11n.onnx"
    shutil.copyfile(bundled_onnx_path(), onnx)
    shutil.copyfile(manifest_path(bundled_onnx_path()), manifest_path(onnx))
    (problem,) = check_pair(weights, onnx)
    assert "rerun `python -m reader.export_onnx`" in problem
    assert main(["--check", "--weights", str(weights), "--out", str(onnx)]) == 1


def test_an_onnx_without_a_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    onnx = tmp_path / "mine.onnx"
    shutil.copyfile(bundled_onnx_path(), onnx)
    with pytest.raises(ModelError, match=r"python -m reader\.export_onnx"):
        read_manifest(onnx)


def test_a_manifest_of_another_format_is_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "mine.onnx"
    manifest_path(onnx).write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(ModelError, match="not a plate-ocr-onnx/1 manifest"):
        read_manifest(onnx)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace, inside the exporter
def test_the_export_command_makes_a_pair_the_light_reader_loads(
    char_model_path: Path, trained_imgsz: int, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from reader.detector import plate_input_hw
    from reader.engine import PlateReader

    onnx = tmp_path / "chars36.onnx"
    assert main(["--weights", str(char_model_path), "--out", str(onnx)]) == 0
    manifest = read_manifest(onnx)
    assert manifest.source_sha256 == file_sha256(char_model_path)
    assert (manifest.imgsz, manifest.input_hw) == (trained_imgsz, plate_input_hw(trained_imgsz))
    assert check_pair(char_model_path, onnx) == []
    reader = PlateReader(onnx, imgsz=None)
    assert reader.backend == "onnxruntime" and reader.imgsz == trained_imgsz
    assert reader.model_info.name == char_model_path.stem
    assert reader.read(np.full((80, 240, 3), 128, dtype=np.uint8)).text == ""  # untrained
