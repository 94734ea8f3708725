"""The fast reader's training: its samples (jitter maps the row along), a short run lowers the
loss and resumes from its checkpoint, and an export reads in the reader as in PyTorch."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from reader.fast_reader import INPUT_HW, FastReader  # noqa: E402
from training.export_fast_reader import export_checkpoint  # noqa: E402
from training.fast_data import (  # noqa: E402
    Crops,
    distilled_crops,
    jitter,
    sample_stream,
    yolo_crops,
)
from training.fast_net import CLASSES, FastPlateNet  # noqa: E402
from training.train_fast import collate, loss_of, main, parser, train  # noqa: E402

DARKPLATE = Path(__file__).resolve().parents[3] / "shared" / "data" / "train_darkplate"
SAMPLES = Path(__file__).resolve().parents[2] / "plate_ocr" / "samples"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `plate-ocr synth` dataset."""
    from training.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, count=6, seed=3, val_fraction=0.0)
    return out


def test_a_generated_dataset_reads_back_as_crops_with_text_and_row(synthetic: Path) -> None:
    crops = yolo_crops(synthetic)
    assert len(crops) == 6
    for text, row in zip(crops.texts, crops.rows, strict=True):
        assert text and all(c.isalnum() and c == c.upper() for c in text)
        assert row is not None and 0.0 <= row[0] < row[1] <= 1.0


def test_jitter_keeps_the_row_on_the_same_pixels() -> None:
    # A white band on rows 20-40 of 64: wherever the crop moves, the mapped row covers it.
    image = np.zeros((64, 128, 3), np.uint8)
    image[20:40] = 255
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, row = jitter(rng, image, (20 / 64, 40 / 64))
        assert row is not None
        band = out[:, 64, 0] > 127
        top, bottom = np.flatnonzero(band)[[0, -1]]
        assert abs(top - row[0] * 64) <= 4 and abs(bottom + 1 - row[1] * 64) <= 4


def test_only_confident_teacher_readings_are_kept(tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("file", "text", "confidence", "row_top", "row_bottom", "teacher"))
        writer.writerow(("a.jpg", "ABC123", "0.95", "0.3", "0.7", "fused"))
        writer.writerow(("b.jpg", "XYZ9", "0.40", "0.3", "0.7", "fused"))
    kept = distilled_crops(manifest, min_confidence=0.9)
    assert kept.texts == ("ABC123",) and kept.rows == ((0.3, 0.7),)


def test_samples_come_from_every_set_at_their_shares(synthetic: Path) -> None:
    rng = np.random.default_rng(1)
    stream = sample_stream(rng, (yolo_crops(synthetic), Crops((), (), ())), (0.5, 0.5))
    samples = [next(stream) for _ in range(8)]
    assert all(s.image.shape == INPUT_HW and s.image.dtype == np.uint8 for s in samples)
    with pytest.raises(ValueError, match="no training crops"):
        next(sample_stream(rng, (Crops((), (), ()),), (1.0,)))


def test_ctc_steps_lower_the_loss(synthetic: Path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    stream = sample_stream(rng, (yolo_crops(synthetic),), (1.0,))
    batch = collate([next(stream) for _ in range(6)])
    net = FastPlateNet()
    logits, row = net(batch[0])
    assert logits.shape == (6, 32, CLASSES) and row.shape == (6, 2)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, _ = loss_of(net, batch, device=torch.device("cpu"))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_a_run_resumes_and_its_export_reads_as_pytorch(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--out", str(out), "--synthetic", str(synthetic), "--batch", "4"]
    args += ["--threads", "1", "--workers", "0", "--save-every", "2", "--log-every", "1"]
    assert train(parser().parse_args([*args, "--steps", "2"]))["step"] == 2
    assert train(parser().parse_args([*args, "--steps", "3", "--resume"]))["step"] == 3
    history = [json.loads(line) for line in (out / "train_history.jsonl").read_text().splitlines()]
    assert [h["start_step"] for h in history] == [0, 2]

    onnx_path = tmp_path / "fast.onnx"
    manifest = export_checkpoint(out / "step_000003.pt", onnx_path, selected_by="a test")
    assert manifest["max_abs_difference_from_pytorch"] <= 1e-4
    assert manifest["selected_by"] == "a test" and manifest["step"] == 3
    reader = FastReader(onnx_path, threads=1)
    results = reader.read([np.zeros((40, 90, 3), np.uint8), np.full((50, 100), 200, np.uint8)])
    assert len(results) == 2 and reader.model_info.name == "fast"


def test_the_dev_set_is_refused_as_training_data(tmp_path: Path) -> None:
    dev = tmp_path / "real_us_dev"
    dev.mkdir()
    with pytest.raises(SystemExit, match="evaluation only"):
        main(["--out", str(tmp_path / "run"), "--synthetic", str(dev)])


@pytest.mark.slow
@pytest.mark.skipif(
    not (DARKPLATE / "images").is_dir(),
    reason="the recipe trains on ../shared/data/train_darkplate, which this checkout lacks",
)
def test_the_gpu_recipe_runs_end_to_end_at_tiny_sizes_on_the_cpu(
    tmp_path: Path, run_recipe: Any
) -> None:
    teacher = "training/labels/oid_fast_labels_edd7ec89.csv"  # the DISTILLED knob, not the default
    done = run_recipe("gpu_recipe_fast.sh", COUNT="8", STEPS="2", BATCH="4", DISTILLED=teacher)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipe: done" in done.stdout
    out = tmp_path / "out"
    assert json.loads((out / "train_settings.json").read_text())["distilled"] == teacher
    assert {p.name for p in out.iterdir()} == {
        "fast_plate_reader.onnx", "fast_plate_reader.onnx.json", "train_settings.json",
    }  # fmt: skip
    assert FastReader(out / "fast_plate_reader.onnx", threads=1).model_info.name == (
        "fast_plate_reader"
    )
    assert not list((tmp_path / "work").iterdir())  # the scratch is removed
