"""A training run's bookkeeping (training.run), shared by the recogniser's and the fast reader's."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from training.run import add_run_options, lr_factor, record_start, refuse_evaluation_data


def test_the_schedule_warms_up_then_decays_to_a_tenth() -> None:
    factors = [lr_factor(step, 100) for step in range(100)]
    assert factors[0] < factors[4] == pytest.approx(1.0)  # 5 warm-up steps in 100
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))


def test_every_start_is_kept_and_the_settings_are_the_last(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    add_run_options(p, log_every=5, save_every=50)
    record_start(p.parse_args([]), tmp_path, 0)
    record_start(p.parse_args(["--resume", "--seed", "3"]), tmp_path, 50)
    history = [
        json.loads(line) for line in (tmp_path / "train_history.jsonl").read_text().splitlines()
    ]
    assert [(h["start_step"], h["resume"], h["save_every"]) for h in history] == [
        (0, "False", "50"),
        (50, "True", "50"),
    ]
    assert json.loads((tmp_path / "train_settings.json").read_text())["seed"] == "3"


def test_the_evaluation_set_is_refused_as_training_data(tmp_path: Path) -> None:
    refuse_evaluation_data(tmp_path / "train_darkplate", None)  # anything else passes
    with pytest.raises(SystemExit, match="evaluation only"):
        refuse_evaluation_data(None, tmp_path / "real_us_dev" / "images")
