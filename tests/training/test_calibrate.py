"""`python -m training.calibrate`: fits both readers and writes a file the reader loads."""

import json
from pathlib import Path

import numpy as np

from training.calibrate import cross_validated, main, serial_marks
from worker.calibration import FEATURES, Calibration

REPO = Path(__file__).resolve().parents[2]


def test_cross_validated_confidences_order_plates_by_their_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 1))
    y = rng.random(600) < 1 / (1 + np.exp(-3 * x[:, 0]))
    p = cross_validated(x, y)
    assert p.shape == (600,) and ((p > 0) & (p < 1)).all()
    assert y[p > 0.8].mean() > 0.75 > 0.25 > y[p < 0.2].mean()


def test_calibrating_on_the_samples_writes_a_loadable_file(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    assert main([str(REPO / "plate_ocr" / "samples"), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["features"] == list(FEATURES)
    assert set(Calibration.load(out).models) == {"fused", "detector"}
    assert Calibration.load(out).presence is not None


def test_a_read_character_is_marked_extra_only_where_the_label_has_none() -> None:
    assert serial_marks("LPB635", "LPBS635") == [True, True, True, False, True, True, True]
    assert serial_marks("LPB635", "LP8635") == [True] * 6  # misread, but a serial character
    assert serial_marks("6LNE878", "") == []
