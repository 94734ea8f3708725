"""The consumers run on the light install: importing them loads no reading engine."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CONSUMERS = (
    "consumers.watch.watcher",
    "consumers.watch.cli",
    "consumers.webhook.sender",
    "consumers.history.store",
    "consumers.history.search",
    "plate_ocr.dashboard.alerts",
)
_MODEL_STACK = ("worker", "torch", "cv2", "onnxruntime", "ultralytics")


def test_importing_the_consumers_loads_neither_worker_nor_the_model_stack() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_CONSUMERS!r}: importlib.import_module(name)\n"
        f"loaded = sorted(m for m in {_MODEL_STACK!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded: {done.stdout.strip()}"
