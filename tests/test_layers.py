"""The layering contracts in pyproject.toml, checked by import-linter as CI checks them.

A second run on a copy of the sources with one forbidden import added shows that the contracts
catch it, and that the message names the chain.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "plate_ocr", "producer", "reader", "worker", "consumers", "training")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_sources(to: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, to / package, ignore=shutil.ignore_patterns("models", "fonts", "*.pyc")
        )
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")


def test_the_project_keeps_its_layering() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "chain"),
    [
        ("reader/nms.py", "import redis", "reader.nms -> redis"),
        ("consumers/mqtt/bridge.py", "import cv2", "consumers.mqtt.bridge -> cv2"),
        ("reader/views.py", "import worker.ledger", "reader.views -> worker.ledger"),
        ("plate_ocr/stream.py", "import consumers", "plate_ocr.stream -> consumers"),
    ],
)
def test_a_forbidden_import_fails_with_its_chain(
    tmp_path: Path, module: str, line: str, chain: str
) -> None:
    _copy_sources(tmp_path)
    source = tmp_path / module
    source.write_text(source.read_text() + f"\n{line}  # noqa\n")
    run = _lint(tmp_path)
    assert run.returncode != 0
    assert "BROKEN" in run.stdout and chain in run.stdout, run.stdout
