"""The line recogniser's fine-tune: the PyTorch form reads as the ONNX one, CTC steps lower the
loss, a run resumes from its checkpoint, an exported checkpoint (or several, averaged) loads in
the reader, and the GPU recipe runs end to end at tiny sizes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx2torch")
ort = pytest.importorskip("onnxruntime")

from plate_ocr.errors import ModelError  # noqa: E402
from reader.recogniser import LineRecogniser, ppocr_recogniser_path  # noqa: E402
from training.line_data import LineSample, synthetic_line  # noqa: E402
from training.recogniser_net import NUM_CLASSES, load_net  # noqa: E402
from training.train_recogniser import (  # noqa: E402
    anchor_loss,
    collate,
    ctc_loss,
    parser,
    train,
    train_step,
)

# onnx2torch's Slice indexes with a list, which torch 2.14 warns about (the result is right:
# the first test compares it with ONNX Runtime's).
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")


@pytest.fixture(scope="module")
def lines() -> list[LineSample]:
    rng = np.random.default_rng(7)
    return [synthetic_line(rng) for _ in range(4)]


def test_the_torch_form_reads_as_the_onnx_model() -> None:
    torch.set_num_threads(1)
    net = load_net(ppocr_recogniser_path()).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()[0]
    assert logits.shape == (24, NUM_CLASSES)
    session = ort.InferenceSession(str(ppocr_recogniser_path()))
    probs = session.run(None, {"x": x})[0][0]
    # The new head is the original classifier's rows for blank and the upper-case classes, so
    # its log-odds against the blank are the original's.
    import onnx

    from plate_ocr.constants import CLASS_NAMES
    from training.recogniser_net import _symbols

    symbols = _symbols(onnx.load(str(ppocr_recogniser_path())))
    rows = [0] + [symbols.index(c) for c in CLASS_NAMES]
    expected = np.log(probs[:, rows]) - np.log(probs[:, :1])
    np.testing.assert_allclose(logits - logits[:, :1], expected, atol=1e-3)


def test_ctc_steps_lower_the_loss_on_their_lines(lines: list[LineSample]) -> None:
    torch.set_num_threads(1)
    net = load_net(ppocr_recogniser_path())
    batch = collate(lines)
    device = torch.device("cpu")
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-4)
    with torch.no_grad():
        before = float(ctc_loss(net.eval(), batch, device=device))
    net.train()
    for _ in range(5):
        train_step(net, optimiser, batch, device=device)
    with torch.no_grad():
        after = float(ctc_loss(net.eval(), batch, device=device))
    assert after < before * 0.9, (before, after)


def test_the_anchor_holds_a_fine_tune_near_its_starting_network(
    lines: list[LineSample],
) -> None:
    torch.set_num_threads(1)
    batch = collate(lines)
    device = torch.device("cpu")
    anchor = load_net(ppocr_recogniser_path()).eval().requires_grad_(False)

    def distance(net: torch.nn.Module) -> float:
        with torch.no_grad():
            log_probs = net.eval()(batch[0]).log_softmax(-1)
            return float(anchor_loss(log_probs, anchor, batch[0], batch[1]))

    def fine_tuned(anchor_weight: float) -> torch.nn.Module:
        torch.manual_seed(0)
        net = load_net(ppocr_recogniser_path()).train()
        optimiser = torch.optim.AdamW(net.parameters(), lr=3e-4)
        for _ in range(5):
            train_step(
                net, optimiser, batch, device=device, anchor=anchor, anchor_weight=anchor_weight
            )
        return net

    assert distance(load_net(ppocr_recogniser_path())) == pytest.approx(0.0, abs=1e-6)
    free, held = distance(fine_tuned(0.0)), distance(fine_tuned(10.0))
    assert free > 0.0
    assert held < 0.5 * free, (held, free)


def test_anchor_lines_hold_the_network_on_lines_ctc_never_sees(lines: list[LineSample]) -> None:
    torch.set_num_threads(1)
    device = torch.device("cpu")
    trained, kept = collate(lines[:2]), collate(lines[2:])
    anchor = load_net(ppocr_recogniser_path()).eval().requires_grad_(False)

    def distance_on_kept(anchor_batch: Any) -> float:
        torch.manual_seed(0)
        net = load_net(ppocr_recogniser_path()).train()
        optimiser = torch.optim.AdamW(net.parameters(), lr=3e-4)
        for _ in range(5):
            train_step(
                net,
                optimiser,
                trained,
                device=device,
                anchor=anchor,
                anchor_weight=10.0,
                anchor_batch=anchor_batch,
            )
        with torch.no_grad():
            log_probs = net.eval()(kept[0]).log_softmax(-1)
            return float(anchor_loss(log_probs, anchor, kept[0], kept[1]))

    free, held = distance_on_kept(None), distance_on_kept(kept)
    assert free > 0.0
    assert held < 0.5 * free, (held, free)


def test_a_run_draws_its_anchor_lines_apart_from_its_batch() -> None:
    from training.train_recogniser import _batches

    def first(anchor_lines: int) -> Any:
        rng = np.random.default_rng(0)
        only_generated = (1.0, 0.0, 0.0)
        return next(
            _batches(
                rng,
                batch=3,
                anchor_lines=anchor_lines,
                line_height=48,
                darkplate=None,
                pseudo=None,
                weights=only_generated,
            )
        )

    batch, anchor_batch = first(2)
    assert batch[0].shape[0] == 3
    assert anchor_batch is not None and anchor_batch[0].shape[0] == 2
    assert first(0)[1] is None


def test_anchor_lines_need_an_anchor_weight(capsys: pytest.CaptureFixture[str]) -> None:
    from training.train_recogniser import main

    with pytest.raises(SystemExit):
        main(["--out", "unused", "--anchor-lines", "4"])
    assert "--anchor-lines needs --anchor-weight above 0" in capsys.readouterr().err


def test_a_run_resumes_from_its_checkpoint_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    common = ["--out", str(out), "--batch", "2", "--workers", "0", "--threads", "1"]
    common += ["--save-every", "1", "--log-every", "1"]
    first = train(parser().parse_args([*common, "--steps", "2"]))
    assert first["step"] == 2
    saved = torch.load(out / "last.pt", weights_only=False)
    assert saved["step"] == 2
    resumed = train(parser().parse_args([*common, "--steps", "3", "--resume"]))
    assert resumed["step"] == 3  # one more step, not three from scratch
    assert not (out / "step_000004.pt").exists()
    third = torch.load(out / "step_000003.pt", weights_only=False)
    changed = {k for k in third if not torch.equal(third[k], saved["net"][k])}
    assert "head.weight" in changed
    # By default the backbone stays as PP-OCR trained it; the neck learns.
    assert "trunk.p2o/Conv/0.weight" not in changed
    assert "trunk.p2o/Conv/32.weight" not in changed
    assert "trunk.p2o/Conv/33.weight" in changed

    from training.export_plate_recogniser import export_checkpoint

    onnx_path = tmp_path / "plate_rec.onnx"
    manifest = export_checkpoint(out / "step_000003.pt", onnx_path, source=ppocr_recogniser_path())
    assert manifest["onnx_vs_torch_max_abs"] < 1e-4
    assert (tmp_path / "plate_rec.onnx.json").is_file()
    reader = LineRecogniser(onnx_path, threads=1)
    assert reader.model_info.sha256 == manifest["sha256"]
    line = synthetic_line(np.random.default_rng(3)).line
    read = reader.read_lines(line, [(0, 0, line.shape[1], line.shape[0])])[0]
    assert read.probs.shape[1] == NUM_CLASSES + 1  # blank, 36 classes, "other" (always 0 here)
    assert float(read.probs[:, -1].max()) < 1e-3

    # The default path takes it from the settings and names it in its readings.
    from plate_ocr.settings import Settings
    from reader.engine import PlateReader

    settings = Settings.from_env({"PLATE_OCR_RECOGNISER_PATH": str(onnx_path)})
    plate = PlateReader.from_settings(settings)
    info = plate.recogniser_info
    assert info is not None and (info.name, info.sha256) == ("plate_rec", manifest["sha256"])


def test_a_run_at_a_smaller_line_height_exports_a_model_that_reads_at_it(tmp_path: Path) -> None:
    out = tmp_path / "rec36"
    args = ["--out", str(out), "--batch", "2", "--workers", "0", "--threads", "1"]
    train(parser().parse_args([*args, "--steps", "1", "--save-every", "1", "--line-height", "36"]))
    batch = collate([synthetic_line(np.random.default_rng(5))], 36)
    assert batch[0].shape[2] == 36 and batch[0].shape[3] >= 4 * 36

    from training.export_plate_recogniser import export_checkpoint

    onnx_path = tmp_path / "rec36.onnx"
    export_checkpoint(out / "step_000001.pt", onnx_path, source=ppocr_recogniser_path())
    reader = LineRecogniser(onnx_path, threads=1)
    assert reader.line_height == 36
    line = synthetic_line(np.random.default_rng(3)).line
    (read,) = reader.read_lines(line, [(0, 0, line.shape[1], line.shape[0])])
    # one CTC step per 8 px of the line resized to 36 px high and stretched 1.5x
    expected_w = math.ceil(36 * line.shape[1] / line.shape[0] * 1.5)
    assert len(read.probs) == math.ceil(expected_w / 8)

    # Runs at different heights are not one network's fine-tunes to average.
    train(parser().parse_args([*args, "--out", str(tmp_path / "rec48"), "--steps", "1"]))
    with pytest.raises(ModelError, match="different line heights"):
        export_checkpoint(
            [out / "step_000001.pt", tmp_path / "rec48" / "step_000001.pt"],
            tmp_path / "mixed.onnx",
            source=ppocr_recogniser_path(),
        )


@pytest.mark.parametrize("height", ["32", "49"])
def test_a_line_height_the_graph_cannot_read_is_refused(
    height: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.train_recogniser import main

    with pytest.raises(SystemExit):
        main(["--out", "unused", "--line-height", height])
    assert "--line-height: 33 to 48 px" in capsys.readouterr().err


def test_sigterm_stops_a_run_with_a_checkpoint(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "rec"
    command = [sys.executable, "-W", "ignore", "-m", "training.train_recogniser", "--out", str(out)]
    command += ["--steps", "1000", "--batch", "2", "--workers", "0", "--threads", "1"]
    command += ["--save-every", "1000", "--log-every", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as run:
        assert run.stdout is not None
        for line in run.stdout:  # wait until it is training
            if line.startswith("step 1 "):
                break
        run.send_signal(signal.SIGTERM)
        rest = run.stdout.read()
        assert run.wait(timeout=120) == 0
    assert "checkpoint kept" in rest
    state = torch.load(out / "last.pt", weights_only=False)
    assert 1 <= state["step"] < 1000
    assert (out / f"step_{state['step']:06d}.pt").is_file()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_shipped_recogniser_reads_the_same_through_pytorch(device: str) -> None:
    """The default recogniser in PyTorch (on a GPU without onnxruntime-gpu) reads as its ONNX
    form: softmax outputs within 1e-4 (fp32; ONNX Runtime on the CPU as the reference)."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from reader.recogniser import bundled_recogniser_path

    torch.set_num_threads(1)
    net = load_net(bundled_recogniser_path()).eval().to(device)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 48, 224)).astype(np.float32)
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(x).to(device)), -1).cpu().numpy()
    session = ort.InferenceSession(str(bundled_recogniser_path()))
    expected = session.run(None, {"x": x})[0]
    assert got.shape == expected.shape == (2, 28, NUM_CLASSES)
    np.testing.assert_allclose(got, expected, atol=1e-4)


_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(
    not (_SHARED / "train_darkplate" / "images").is_dir()
    or not (_SHARED / "real_oid_unlabelled" / "images").is_dir(),
    reason="the recipe trains on ../shared/data's DarkPlate and Open Images crops, which this "
    "checkout lacks",
)
def test_the_gpu_recipe_runs_end_to_end_at_tiny_sizes_on_the_cpu(
    tmp_path: Path, run_recipe: Any
) -> None:
    done = run_recipe(
        "gpu_recipe_recogniser.sh",
        SEEDS="0 1",
        STEPS="2",
        BATCH="2",
        SAVE_EVERY="1",
        ANCHOR_LINES="1",
        LINE_HEIGHT="36",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipe: done" in done.stdout
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"plate_rec_soup.onnx", "plate_rec_soup.onnx.json"}
    manifest = json.loads((out / "plate_rec_soup.onnx.json").read_text())
    # Every saved step of both seeds, averaged; each run trained the whole network from the
    # shipped recogniser on real lines alone, by default.
    assert manifest["checkpoints"] == [
        f"seed{seed}/step_{step:06d}.pt" for seed in (0, 1) for step in (1, 2)
    ]
    assert manifest["averaged"] == "the uniform average of the 4 checkpoints' weights"
    for seed in (0, 1):
        settings = manifest["training"][f"seed{seed}"]
        assert (settings["train_backbone"], settings["seed"]) == ("True", str(seed))
        assert float(settings["synthetic_share"]) == 0.0
        assert (settings["anchor_lines"], settings["line_height"]) == ("1", "36")
    assert manifest["source"]["file"] == "ppocrv4_plate_rec.onnx"
    # CTC saw real lines alone; the anchor's generated lines are data too.
    assert set(manifest["data"]) == {"synthetic", "darkplate", "pseudo"}
    reader = LineRecogniser(out / "plate_rec_soup.onnx", threads=1)
    assert (reader.model_info.sha256, reader.line_height) == (manifest["sha256"], 36)
    assert not list((tmp_path / "work").iterdir())  # the scratch is removed


def test_several_checkpoints_export_as_the_average_of_their_weights(tmp_path: Path) -> None:
    from training.export_plate_recogniser import average_weights, export_checkpoint

    net = load_net(ppocr_recogniser_path())
    start = {k: v.clone() for k, v in net.state_dict().items()}
    paths = []
    for i, shift in enumerate((0.0, 1.0, 5.0)):
        run = tmp_path / f"run{i % 2}"  # two runs, one with two checkpoints
        run.mkdir(exist_ok=True)
        state = {k: v.clone() for k, v in start.items()}
        state["head.bias"] += shift
        state["trunk.p2o/Conv/0.weight"] -= shift
        paths.append(run / f"step_{i:06d}.pt")
        torch.save(state, paths[-1])

    averaged = average_weights(load_net(ppocr_recogniser_path()), paths).state_dict()
    torch.testing.assert_close(averaged["head.bias"], start["head.bias"] + 2.0)
    torch.testing.assert_close(
        averaged["trunk.p2o/Conv/0.weight"], start["trunk.p2o/Conv/0.weight"] - 2.0
    )
    torch.testing.assert_close(averaged["head.weight"], start["head.weight"])
    for name, _ in net.named_buffers():
        torch.testing.assert_close(averaged[name], start[name])

    manifest = export_checkpoint(paths, tmp_path / "soup.onnx", source=ppocr_recogniser_path())
    assert manifest["checkpoints"] == [
        "run0/step_000000.pt",
        "run1/step_000001.pt",
        "run0/step_000002.pt",
    ]
    assert set(manifest["training"]) == {"run0", "run1"}
    assert manifest["averaged"] == "the uniform average of the 3 checkpoints' weights"
    assert LineRecogniser(tmp_path / "soup.onnx", threads=1).model_info.sha256 == manifest["sha256"]


def test_checkpoints_whose_frozen_statistics_differ_are_not_averaged(tmp_path: Path) -> None:
    from plate_ocr.errors import ModelError
    from training.export_plate_recogniser import average_weights

    net = load_net(ppocr_recogniser_path())
    state = net.state_dict()
    torch.save(state, tmp_path / "a.pt")
    state["trunk.p2o/BatchNormalization/0.running_mean"] += 1.0
    torch.save(state, tmp_path / "b.pt")
    with pytest.raises(ModelError, match=r"BatchNormalization/0\.running_mean"):
        average_weights(net, [tmp_path / "a.pt", tmp_path / "b.pt"])
