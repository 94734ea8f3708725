"""`python -m training.calibrate`: fits both readers and writes a file the reader loads."""

import json
from pathlib import Path

import numpy as np

from plate_ocr.constants import CLASS_NAMES
from reader.calibration import FEATURES, Calibration
from training.calibrate import cross_validated, fit_class_bias, label_targets, main

REPO = Path(__file__).resolve().parents[2]


def test_cross_validated_confidences_order_plates_by_their_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 1))
    y = rng.random(600) < 1 / (1 + np.exp(-3 * x[:, 0]))
    p = cross_validated(x, y)
    assert p.shape == (600,) and ((p > 0) & (p < 1)).all()
    assert y[p > 0.8].mean() > 0.75 > 0.25 > y[p < 0.2].mean()


def test_repeated_cross_validation_is_the_mean_of_its_splits() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 2))
    y = rng.random(200) < 1 / (1 + np.exp(-2 * x[:, 0]))
    splits = [cross_validated(x, y, repeats=1, seed=s) for s in range(3)]
    assert not np.allclose(splits[0], splits[1])  # the splits differ
    np.testing.assert_allclose(cross_validated(x, y, repeats=3), np.mean(splits, axis=0))


def test_calibrating_on_the_samples_writes_a_loadable_file(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    assert main([str(REPO / "plate_ocr" / "samples"), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["features"] == list(FEATURES)
    assert set(Calibration.load(out).models) == {"fused", "detector", "fast", "fused_fast"}
    assert Calibration.load(out).presence is not None


def test_a_read_character_gets_the_label_class_it_aligns_with_or_none() -> None:
    ids = [CLASS_NAMES.index(c) for c in "LPB635"]
    assert label_targets("LPB635", "LPBS635").tolist() == [*ids[:3], -1, *ids[3:]]
    assert label_targets("LPB635", "LP8635").tolist() == ids  # misread, but a serial character
    assert label_targets("6LNE878", "").tolist() == []


def test_the_class_bias_moves_a_class_the_scores_under_rate() -> None:
    # Real M read as 60:40 for H: the bias must turn those to M and leave real H as H.
    m, h = CLASS_NAMES.index("M"), CLASS_NAMES.index("H")
    probs = np.full((200, len(CLASS_NAMES)), 1e-4)
    probs[:100, [h, m]] = [0.6, 0.4]  # real M
    probs[100:, [h, m]] = [0.95, 0.05]  # real H
    target = np.array([m] * 100 + [h] * 100)
    bias = np.asarray(fit_class_bias(probs, target, l2=1.0))
    corrected = np.log(probs) + bias
    assert (corrected.argmax(axis=1) == target).all()
