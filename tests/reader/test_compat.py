"""The seed's API and script, and `plate-ocr read`, on top of PlateReader."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import worker
from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from reader import compat
from reader.postprocess import order_characters
from schemas.codes import ErrorCode

REPO = Path(__file__).resolve().parents[2]


def _png(path: Path) -> Path:
    image = np.full((48, 160, 3), 200, dtype=np.uint8)
    image[10:38, 20:140] = 30
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def test_seed_result_has_the_seed_shape_with_x_as_the_left_edge() -> None:
    result = order_characters(
        [[50, 5, 70, 45], [10, 5, 30, 45]],
        [0.8, 0.9],
        [CLASS_NAMES.index("B"), CLASS_NAMES.index("A")],
        confidence=0.25,
    )
    seed = compat.seed_result(result)
    assert seed["text"] == "AB"
    assert [set(c) for c in seed["characters"]] == [{"char", "confidence", "x"}] * 2
    assert [(c["char"], c["x"]) for c in seed["characters"]] == [("A", 10.0), ("B", 50.0)]
    assert seed["characters"][0]["confidence"] == pytest.approx(0.9)
    json.dumps(seed)  # plain Python types, as the seed returned


def test_read_plate_loads_the_model_once(sevens_model_path: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "plate.png")
    compat._cached_reader.cache_clear()
    first = compat.read_plate(image, 0.25, model_path=sevens_model_path, reader="detector")
    second = compat.read_plate(str(image), model_path=str(sevens_model_path), reader="detector")
    assert first == second and set(first["text"]) == {"7"}
    assert compat._cached_reader.cache_info().misses == 1


def test_read_plate_raises_file_not_found_like_the_seed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Image not found"):
        compat.read_plate(tmp_path / "missing.jpg")


@pytest.fixture
def read_settings(sevens_model_path: Path) -> Settings:
    return Settings(model_path=sevens_model_path, imgsz=128, batch_size=2, reader="detector")


def test_run_read_prints_every_readable_image_and_reports_the_rest(
    read_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [_png(tmp_path / f"p{i}.png") for i in range(3)]
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    paths = [good[0], tmp_path / "missing.png", good[1], garbage, good[2]]
    assert compat.run_read(read_settings, paths, confidence=0.25, as_json=False) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(p) for p in good]
    assert all(line.endswith("(1.00)") and ": 77" in line for line in lines)
    assert f"{tmp_path / 'missing.png'}: error:" in err and "[image_not_found]" in err
    assert f"{garbage}: error:" in err and "[undecodable_image]" in err


def test_run_read_json_prints_one_seed_dict_per_image(
    read_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _png(tmp_path / "plate.png")
    assert compat.run_read(read_settings, [path, path], confidence=0.25, as_json=True) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(r) for r in rows] == [{"image", "text", "characters"}] * 2
    assert rows[0]["image"] == str(path) and set(rows[0]["text"]) == {"7"}


def test_seed_script_prints_usage_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert compat.seed_main([]) == 1
    assert "Usage: python test_ocr.py <cropped_plate_image> [confidence]" in capsys.readouterr().out


def test_seed_script_prints_the_seed_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, float]] = []

    def fake_read_plate(path: str, confidence: float) -> dict[str, Any]:
        calls.append((path, confidence))
        six = {"char": "6", "confidence": 0.9, "x": 1.0}
        ell = {"char": "L", "confidence": 0.5, "x": 9.0}
        return {"text": "6L", "characters": [six, ell]}

    monkeypatch.setattr(compat, "read_plate", fake_read_plate)
    assert compat.seed_main(["crop.jpg", "0.3"]) == 0
    out = capsys.readouterr().out
    assert calls == [("crop.jpg", 0.3)]
    assert "Detected 2 character(s):" in out
    assert "  2. 'L' (confidence: 50.0%)" in out
    assert out.rstrip().endswith("Plate text: 6L")


def test_test_ocr_shim_exposes_the_seed_function() -> None:
    spec = importlib.util.spec_from_file_location("test_ocr_shim", REPO / "test_ocr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.read_plate is compat.read_plate
    assert module.__all__ == ["read_plate"]


def test_importing_worker_is_cheap_and_exposes_the_api_lazily() -> None:
    code = "import sys, worker; sys.exit(bool({'torch', 'ultralytics', 'cv2'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert worker.read_plate is compat.read_plate
    assert worker.PlateReader.__name__ == "PlateReader"
    assert sorted(worker.__all__) == ["PlateReader", "read_plate"]
    with pytest.raises(AttributeError):
        _ = worker.nothing_here


def test_read_plate_bytes_reads_inline_images(sevens_model_path: Path, tmp_path: Path) -> None:
    data = _png(tmp_path / "plate.png").read_bytes()
    result = compat.read_plate_bytes(data, model_path=sevens_model_path, reader="detector")
    assert result == compat.read_plate(
        tmp_path / "plate.png", model_path=sevens_model_path, reader="detector"
    )
    with pytest.raises(JobError) as e:
        compat.read_plate_bytes(b"", model_path=sevens_model_path)
    assert e.value.code is ErrorCode.EMPTY_IMAGE


def test_seed_script_reports_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compat.seed_main([str(tmp_path / "missing.jpg")]) == 1
    assert "Error: Image not found" in capsys.readouterr().err
    assert compat.seed_main(["crop.jpg", "crop2.jpg"]) == 1
    assert "confidence must be a number" in capsys.readouterr().err
