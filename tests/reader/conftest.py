"""Model fixtures: small untrained YOLO11n checkpoints built on the spot (nothing downloaded)."""

from pathlib import Path
from typing import Any

import pytest

from plate_ocr.constants import CLASS_NAMES

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
