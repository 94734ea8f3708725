"""Training wrapper end to end on a tiny set, plus the real-set reading helpers."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("ultralytics")

from training import train
from training.real_eval import boxes_to_text, normalize

NAMES = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_normalize_folds_o_and_drops_separators() -> None:
    assert normalize("abc-o1 2") == "ABC012"
    assert normalize("T123456C") == "T123456C"


def test_boxes_to_text_orders_rows_and_drops_duplicates() -> None:
    # top row "AB", bottom row "12", plus a duplicate "B" box nearly on top of the first one
    xyxy = np.array(
        [[30, 0, 40, 10], [0, 0, 10, 10], [0, 20, 10, 30], [30, 20, 40, 30], [31, 0, 41, 10]],
        dtype=np.float32,
    )
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.5], dtype=np.float32)
    cls = np.array([11, 10, 1, 2, 8])
    assert boxes_to_text(xyxy, conf, cls, NAMES) == "AB12"
    assert boxes_to_text(xyxy, conf * 0.1, cls, NAMES) == ""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # third-party warnings inside ultralytics/torch
def test_synth_then_one_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from plate_ocr.cli import main

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    data_dir = tmp_path / "data"
    assert (
        main(["synth", str(data_dir), "--count", "16", "--seed", "0", "--val-fraction", "0.25"])
        == 0
    )
    data = data_dir / "data.yaml"
    tiny = ["--imgsz", "64", "--batch", "8", "--workers", "0", "--name", "tiny"]
    capsys.readouterr()
    argv = ["train", "--data", str(data), "--epochs", "1", "--project", str(tmp_path / "runs")]
    argv += ["--lr0", "0.002", "--close-mosaic", "0", "--warmup-epochs", "0"]
    assert main([*argv, *tiny]) == 0
    weights = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert weights.is_file()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    assert [model.names[i] for i in range(len(model.names))] == NAMES
    settings = json.loads((tmp_path / "runs" / "tiny" / "train_settings.json").read_text())
    assert settings[-1]["epochs"] == 1 and settings[-1]["hyp"]["fliplr"] == 0.0
    assert settings[-1]["hyp"]["lr0"] == 0.002 and settings[-1]["hyp"]["close_mosaic"] == 0
    assert settings[-1]["hyp"]["warmup_epochs"] == 0
    assert settings[-1]["credits"] == []
    tiny_train = functools.partial(
        train.train,
        data=data,
        epochs=1,
        imgsz=64,
        batch=8,
        device="cpu",
        project=tmp_path / "runs",
        workers=0,
    )
    # A finished run asked to resume returns its weights without training again.
    assert tiny_train(name="tiny", resume=True, init_weights=None).is_file()
    # Fine-tuning starts from the init weights, not from a fresh model: at a negligible learning
    # rate the result keeps the bundled weights' convolutions.
    bundled = Path(__file__).resolve().parents[2] / "reader" / "models" / "plate_ocr_yolo11n.pt"
    tuned = tiny_train(
        name="tuned",
        resume=False,
        init_weights=bundled,
        hyp={"lr0": 1e-7, "warmup_bias_lr": 0.0},
    )
    before = YOLO(str(bundled)).model.state_dict()
    after = YOLO(str(tuned)).model.state_dict()
    for key in ("model.0.conv.weight", "model.23.cv3.2.2.weight"):
        assert (after[key].float() - before[key].float()).abs().max() < 1e-3, key


@pytest.mark.slow
def test_the_gpu_recipe_runs_end_to_end_at_tiny_sizes_on_the_cpu(
    tmp_path: Path, run_recipe: Any
) -> None:
    done = run_recipe(
        "gpu_recipe.sh", COUNT="12", EPOCHS="1", IMGSZ="64", BATCH="4", SUPPLEMENTS=""
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipe: done" in done.stdout
    assert "training on synthetic plates alone" in done.stdout  # SUPPLEMENTS= said out loud
    out = tmp_path / "out"
    assert (out / "plate_ocr_yolo11n.pt").is_file()
    # Only what is worth bringing back: never the generated data or the run's folder.
    assert {p.name for p in out.iterdir()} <= {
        "plate_ocr_yolo11n.pt", "train_settings.json", "results.csv", "args.yaml",
    }  # fmt: skip
    (settings,) = json.loads((out / "train_settings.json").read_text())
    assert settings["hyp"]["amp"] is True
    assert not list((tmp_path / "work").iterdir())  # the scratch is removed


def test_the_gpu_recipe_refuses_a_supplement_folder_that_is_missing(
    tmp_path: Path, run_recipe: Any
) -> None:
    missing = tmp_path / "train_darkplate"
    done = run_recipe("gpu_recipe.sh", timeout_s=60, SUPPLEMENTS=str(missing))
    assert done.returncode == 2
    assert f"supplement folder {missing} has no images/ and labels/" in done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran
