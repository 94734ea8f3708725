"""Fixtures for the training tests: the GPU recipes run as a user runs them, at tiny sizes."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RunRecipe = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_recipe(tmp_path: Path) -> RunRecipe:
    """`run_recipe(NAME, KNOB=value, ...)`: `bash training/NAME` on the CPU, with OUT, WORK and
    WHEELS (none) under tmp_path, this Python, one worker, and the knobs given."""

    def run(name: str, *, timeout_s: int = 600, **knobs: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "OUT": str(tmp_path / "out"),
            "WORK": str(tmp_path / "work"),
            "WHEELS": str(tmp_path / "no-wheels"),
            "PYTHON": sys.executable,
            "DEVICE": "cpu",
            "WORKERS": "1",
            **knobs,
        }
        repo = Path(__file__).resolve().parents[2]
        return subprocess.run(
            ["bash", str(repo / "training" / name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    return run
