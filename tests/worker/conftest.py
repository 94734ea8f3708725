"""Model fixtures: small untrained YOLO11n checkpoints built on the spot (nothing downloaded)."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from plate_ocr.constants import CLASS_NAMES
from worker.engine import bundled_model_path

# Trained-at size recorded in the checkpoints, so tests can see imgsz=None pick it up.
TRAINED_IMGSZ = 224
ALWAYS_CLASS = CLASS_NAMES.index("7")


def _save_detector(path: Path, names: dict[int, str], *, always: int | None = None) -> Path:
    import torch
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)  # the same random weights, so the same boxes, on every run
    model: Any = DetectionModel("yolo11n.yaml", nc=len(names), verbose=False)  # type: ignore[no-untyped-call]
    model.names = names
    if always is not None:
        # An untrained head detects nothing; this one sees class `always` at every anchor.
        for branch in model.model[-1].cv3:
            branch[-1].bias.data[:] = -20.0
            branch[-1].bias.data[always] = 12.0
    carrier = YOLO("yolo11n.yaml")
    carrier.model = model
    carrier.ckpt = {"train_args": {"imgsz": TRAINED_IMGSZ, "task": "detect"}}
    carrier.save(str(path))
    return path


@pytest.fixture(scope="session")
def trained_imgsz() -> int:
    return TRAINED_IMGSZ


@pytest.fixture(scope="session")
def char_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 36-class 0-9A-Z detector: loads fine, reads nothing."""
    names = dict(enumerate(CLASS_NAMES))
    return _save_detector(tmp_path_factory.mktemp("models") / "chars36.pt", names)


@pytest.fixture(scope="session")
def sevens_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 36-class detector that reads '7' all over any image, so readings are not empty."""
    names = dict(enumerate(CLASS_NAMES))
    path = tmp_path_factory.mktemp("models") / "sevens.pt"
    return _save_detector(path, names, always=ALWAYS_CLASS)


@pytest.fixture(scope="session")
def coco_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 80-class detector with COCO-like names: the wrong kind of model."""
    names = {i: f"class{i}" for i in range(80)} | {0: "person", 1: "bicycle"}
    return _save_detector(tmp_path_factory.mktemp("models") / "coco80.pt", names)


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    """The real weights the lead ships in worker/models/; tests using them skip without them."""
    path = bundled_model_path()
    if not path.is_file():
        pytest.skip(f"no bundled weights at {path}")
    return path


@pytest.fixture
def draw_plate() -> Callable[..., npt.NDArray[np.uint8]]:
    """Black text on a white plate, drawn with OpenCV's built-in Hershey font (no font files)."""
    import cv2

    def draw(text: str, *, height: int = 80, scale: float = 2.0) -> npt.NDArray[np.uint8]:
        (width, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 4)
        image = np.full((height, width + 40, 3), 255, dtype=np.uint8)
        origin = (20, (height + text_h) // 2)
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, (0, 0, 0), 4)
        return image

    return draw


@pytest.fixture
def rq_cli(redis_url: str) -> Callable[..., list[str]]:
    """The argv of RQ's own command line against the test Redis, as an operator runs it:
    `rq_cli("requeue", "--all", "--queue", q)` is `rq requeue --url URL --all --queue q`."""

    def argv(command: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "rq.cli", command, "--url", redis_url, *args]

    return argv
