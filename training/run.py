"""What every training command shares about its run: its command-line options for threads,
workers, device, seed, logging, checkpoints and resuming; its starts recorded in OUT (and read
back: `recorded_settings`); its checkpoints and resuming from them; its seeded batch loader
(`batch_loader`); its learning-rate schedule; the loop of steps (`run_steps`: schedule,
logging, checkpoints, SIGTERM); and the refusal of the evaluation set as training data. Used
by training.train_recogniser and training.train_fast, which bring their networks, data and one
step's loss, and by the exporters, which read the settings back.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

__all__ = [
    "add_run_options",
    "batch_loader",
    "lr_factor",
    "record_start",
    "recorded_settings",
    "refuse_evaluation_data",
    "resume",
    "run_steps",
    "save_checkpoint",
]


def add_run_options(p: argparse.ArgumentParser, *, log_every: int, save_every: int) -> None:
    """The options every training command takes, with its own logging and checkpoint steps."""
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="processes generating batches")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=log_every)
    p.add_argument("--save-every", type=int, default=save_every)
    p.add_argument("--resume", action="store_true")


def batch_loader(
    draw: Callable[[np.random.Generator], Iterator[Any]],
    *,
    seed: int,
    start_step: int,
    workers: int,
) -> DataLoader:  # type: ignore[type-arg]
    """Endless batches, `draw(rng)` yielding them in `workers` processes (in this one for 0).
    The generator is seeded by the run's seed, the step the run starts at (a resumed run draws
    new samples, not the ones its first steps saw) and the worker (each draws its own). `draw`
    is pickled to the workers where they are spawned: a module-level function or a partial of
    one."""
    return DataLoader(
        _SeededBatches(draw, seed=seed, start_step=start_step),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_ignore_sigterm,
    )


class _SeededBatches(IterableDataset):  # type: ignore[type-arg]
    def __init__(
        self, draw: Callable[[np.random.Generator], Iterator[Any]], *, seed: int, start_step: int
    ) -> None:
        self.draw, self.seed, self.start_step = draw, seed, start_step

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        return self.draw(np.random.default_rng([self.seed, self.start_step, worker]))


def lr_factor(step: int, total: int) -> float:
    warm = max(total // 20, 1)
    if step < warm:
        return (step + 1) / warm
    progress = min((step - warm) / max(total - warm, 1), 1.0)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def record_start(args: argparse.Namespace, out: Path, step: int) -> None:
    """OUT/train_settings.json, and a line in OUT/train_history.jsonl: a resumed run may change
    its data or schedule, so every start is kept, with its step."""
    settings = {k: str(v) for k, v in vars(args).items()}
    (out / "train_settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    with open(out / "train_history.jsonl", "a", encoding="utf-8") as history:
        history.write(json.dumps({"start_step": step, **settings}) + "\n")


def recorded_settings(out: Path) -> dict[str, str]:
    """The settings `record_start` wrote for the run in `out` (its latest start); {} where none
    were recorded."""
    path = out / "train_settings.json"
    settings: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    return settings


def refuse_evaluation_data(*paths: Path | None) -> None:
    """SystemExit when a training source lies in real_us_dev, the evaluation set."""
    for path in paths:
        if path is not None and "real_us_dev" in str(Path(path).resolve()):
            raise SystemExit("real_us_dev is for evaluation only; never train on it")


def _ignore_sigterm(worker: int) -> None:
    """In a data-loader process: SIGTERM is for the trainer, which stops them itself (a
    `pkill -f` reaches every process of the command line, and a worker that died first would
    take the run down before its checkpoint)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def save_checkpoint(net: torch.nn.Module, optimiser: Any, step: int, out: Path) -> None:
    weights = net.state_dict()
    torch.save(weights, out / f"step_{step:06d}.pt")
    partial = out / "last.pt.partial"
    torch.save({"net": weights, "optimiser": optimiser.state_dict(), "step": step}, partial)
    partial.replace(out / "last.pt")  # a run killed mid-save keeps the previous checkpoint


def resume(
    net: torch.nn.Module, optimiser: Any, out: Path, device: torch.device, *, name: str
) -> int:
    """Load OUT/last.pt into `net` and `optimiser`; the step it was saved at."""
    state = torch.load(out / "last.pt", map_location=device, weights_only=False)
    net.load_state_dict(state["net"])
    optimiser.load_state_dict(state["optimiser"])
    step = int(state["step"])
    print(f"{name}: resumed {out / 'last.pt'} at step {step}", flush=True)
    return step


def run_steps(
    args: argparse.Namespace,
    *,
    name: str,
    net: torch.nn.Module,
    optimiser: Any,
    base_lrs: Sequence[float],
    batches: Iterable[Any],
    step: int,
    one_step: Callable[[Any], float],
    smoothing: float,
) -> dict[str, Any]:
    """Steps from `step` to args.steps: each sets every parameter group's rate to its base rate
    times `lr_factor`, then calls `one_step(batch)` (which updates the network and returns the
    figure to follow). Every args.log_every steps a line goes to stdout; every args.save_every
    steps, at the last step and on SIGTERM (after the step in progress, then the run ends) a
    checkpoint goes to args.out. Returns the last logged figures, and the step reached.

    The base rates are the caller's, not the optimiser's: a resumed optimiser carries the rates
    of its last scheduled step, and scaling those again would decay the run twice."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    net.train()
    smoothed: float | None = None
    figures: dict[str, Any] = {}
    started, first = time.monotonic(), step
    try:
        for batch in batches:
            if step >= args.steps:
                break
            for group, lr in zip(optimiser.param_groups, base_lrs, strict=True):
                group["lr"] = lr * lr_factor(step, args.steps)
            value = one_step(batch)
            step += 1
            smoothed = value if smoothed is None else smoothing * smoothed + (1 - smoothing) * value
            if step % args.log_every == 0 or step == args.steps:
                rate = (step - first) / max(time.monotonic() - started, 1e-9)
                figures = {"step": step, "loss": value, "smoothed": smoothed, "steps_per_s": rate}
                print(
                    f"step {step} loss {value:.4f} smoothed {smoothed:.4f} "
                    f"lr {optimiser.param_groups[0]['lr']:.2e} {1 / max(rate, 1e-9):.3f} s/step",
                    flush=True,
                )
            if step % args.save_every == 0 or step == args.steps or stop.is_set():
                save_checkpoint(net, optimiser, step, args.out)
            if stop.is_set():
                print(f"{name}: stopped at step {step}, checkpoint kept", flush=True)
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
    return figures | {"step": step}
