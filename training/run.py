"""What every training command shares about its run: its command-line options for threads,
workers, device, seed, logging, checkpoints and resuming; its starts recorded in OUT; its
checkpoints; its learning-rate schedule; and the refusal of the evaluation set as training data.
Used by training.train_recogniser and training.train_fast.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "add_run_options",
    "ignore_sigterm",
    "lr_factor",
    "record_start",
    "refuse_evaluation_data",
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


def refuse_evaluation_data(*paths: Path | None) -> None:
    """SystemExit when a training source lies in real_us_dev, the evaluation set."""
    for path in paths:
        if path is not None and "real_us_dev" in str(Path(path).resolve()):
            raise SystemExit("real_us_dev is for evaluation only; never train on it")


def ignore_sigterm(worker: int) -> None:
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
