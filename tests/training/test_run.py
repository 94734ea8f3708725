"""A training run's bookkeeping (training.run), shared by the recogniser's and the fast reader's."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import numpy as np
import torch

from training.run import (
    add_run_options,
    batch_loader,
    lr_factor,
    record_start,
    refuse_evaluation_data,
    resume,
    run_steps,
)


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


def _args(out: Path, steps: int) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_run_options(p, log_every=1, save_every=2)
    args = p.parse_args([])
    args.out, args.steps = out, steps
    return args


def _run(
    out: Path, steps: int, *, stop_at: int | None = None
) -> tuple[dict[str, Any], list[float]]:
    """A one-weight network through run_steps from OUT/last.pt where there is one; the rates
    each step ran at."""
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    optimiser = torch.optim.AdamW(net.parameters(), lr=0.5)
    resumable = (out / "last.pt").exists()
    step = resume(net, optimiser, out, torch.device("cpu"), name="test") if resumable else 0
    rates: list[float] = []

    def one_step(batch: torch.Tensor) -> float:
        rates.append(optimiser.param_groups[0]["lr"])
        loss = net(batch).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if len(rates) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return float(loss.detach())

    figures = run_steps(
        _args(out, steps),
        name="test",
        net=net,
        optimiser=optimiser,
        base_lrs=[0.5],
        batches=itertools.repeat(torch.ones(4, 1)),
        step=step,
        one_step=one_step,
        smoothing=0.9,
    )
    return figures, rates


def test_a_run_checkpoints_stops_on_sigterm_and_resumes_on_its_schedule(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    figures, rates = _run(tmp_path, 40, stop_at=3)
    # SIGTERM ends the run after the step in progress, with a checkpoint off the save steps.
    assert figures["step"] == 3
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 3
    assert {p.name for p in tmp_path.glob("step_*.pt")} == {"step_000002.pt", "step_000003.pt"}
    assert signal.getsignal(signal.SIGTERM) is before
    assert rates == pytest.approx([0.5 * lr_factor(s, 40) for s in range(3)])

    figures, rates = _run(tmp_path, 40)
    assert figures["step"] == 40 and len(rates) == 37
    # The resumed optimiser came back with step 2's rate; the schedule scales the base rate.
    assert rates == pytest.approx([0.5 * lr_factor(s, 40) for s in range(3, 40)])
    assert figures["loss"] < figures["smoothed"]  # the loss fell along the run


def _draws(rng: np.random.Generator) -> Iterator[int]:
    while True:
        yield int(rng.integers(1 << 62))


def _first(seed: int, start_step: int, workers: int) -> list[int]:
    """The first draw of each loader worker (the loader takes them in turn)."""
    drawn = iter(batch_loader(_draws, seed=seed, start_step=start_step, workers=workers))
    return [int(next(drawn)) for _ in range(max(workers, 1))]


def test_batches_are_drawn_anew_per_seed_start_step_and_worker() -> None:
    by_worker = _first(0, 0, workers=2)
    assert by_worker[0] != by_worker[1]  # each worker draws its own samples
    assert _first(0, 0, workers=0) == by_worker[:1]  # the same run, in-process, draws the same
    assert _first(0, 500, workers=0) != by_worker[:1]  # a run resumed at step 500 draws anew
    assert _first(1, 0, workers=0) != by_worker[:1]
