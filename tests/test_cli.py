"""The `plate-ocr` command line: dispatch, exit codes, loud errors."""

import json
import subprocess
import sys

import pytest

from plate_ocr.cli import main


def plate_ocr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plate_ocr.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_gpu_is_a_loud_error_never_a_cpu_fallback() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = plate_ocr("worker", "--device", "cuda:0", "--burst")
    assert done.returncode != 0
    assert "cuda:0" in done.stderr and "CUDA is not available" in done.stderr


def test_devices_must_be_gpu_indices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--devices", "zero,one"]) == 2
    assert "--devices takes GPU indices" in capsys.readouterr().err


def test_schema_writes_both_json_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    assert set(schemas) == {"PlateJob", "PlateReading", "PlateEvent"}
    assert "reading_id" in schemas["PlateReading"]["properties"]


def test_help_does_not_load_the_model_stack() -> None:
    code = (
        "import sys; from plate_ocr.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_devices_start_one_pinned_worker_per_gpu_and_report_each_failure() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = plate_ocr("worker", "--devices", "0,1", "--burst")
    assert done.returncode != 0
    # Each child was pinned to its own device and refused it loudly.
    assert "plate-ocr worker (cuda:0): error" in done.stderr
    assert "plate-ocr worker (cuda:1): error" in done.stderr
