"""Train the fast reader (training.fast_net) from scratch with CTC, resumable, on the CPU or a GPU.

    plate-ocr synth runs/synth_fast --count 10000 --seed 7 --workers 2 --val-fraction 0
    python -m training.train_fast --out runs/fast --synthetic runs/synth_fast [--steps 16000]
        [--darkplate ../shared/data/train_darkplate]
        [--distilled training/labels/oid_fast_labels.csv]
        [--threads 2 --workers 1 --device cpu] [--resume]

Whole crops (training.fast_data): generated plates, DarkPlate's crops and real Open Images crops
as the fused reader read them (its distillation: training.fast_labels), at their `--*-share`s.
Loss: CTC on the serial, plus the L1 error of the serial row's top and bottom where the sample
knows them. AdamW with training.run's schedule (warm-up, cosine decay).
Checkpoints, logs, resume and SIGTERM as training.run keeps them: OUT/last.pt (weights,
optimiser, step), OUT/step_NNNNNN.pt (weights), OUT/train_history.jsonl. Export the chosen
checkpoint with `python -m training.export_fast_reader`.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from plate_ocr.constants import CLASS_NAMES
from training.fast_data import Crops, CropSample, distilled_crops, sample_stream, yolo_crops
from training.fast_net import FastPlateNet
from training.run import (
    add_run_options,
    batch_loader,
    record_start,
    refuse_evaluation_data,
    resume,
    run_steps,
)

__all__ = ["collate", "loss_of", "main", "parser", "train"]

_INDEX: Final = {c: i + 1 for i, c in enumerate(CLASS_NAMES)}  # 0 is the CTC blank
_ROW_WEIGHT: Final = 2.0  # the row's L1 (shares of the height) against CTC's per-character nats

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def collate(samples: Sequence[CropSample]) -> Batch:
    """Images (N, 1, H, W) in 0..1, concatenated targets, their lengths, rows, row mask."""
    images = np.stack([s.image for s in samples])[:, None].astype(np.float32) / 255.0
    rows = np.array([s.row if s.row is not None else (0.0, 0.0) for s in samples], np.float32)
    return (
        torch.from_numpy(images),
        torch.tensor([_INDEX[c] for s in samples for c in s.text], dtype=torch.long),
        torch.tensor([len(s.text) for s in samples], dtype=torch.long),
        torch.from_numpy(rows),
        torch.tensor([s.row is not None for s in samples], dtype=torch.bool),
    )


def _batches(
    rng: np.random.Generator, *, batch: int, sets: tuple[Crops, ...], shares: tuple[float, ...]
) -> Iterator[Batch]:
    stream = sample_stream(rng, sets, shares)
    while True:
        # 32 columns: CTC needs one a character and one between repeats.
        samples = [s for s in (next(stream) for _ in range(batch)) if 0 < len(s.text) <= 12]
        yield collate(samples)


def loss_of(net: FastPlateNet, batch: Batch, *, device: torch.device) -> tuple[torch.Tensor, float]:
    """The training loss of `batch`, and its CTC part."""
    images, targets, lengths, rows, known = (t.to(device) for t in batch)
    logits, row = net(images)
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, N, C)
    steps = torch.full((images.shape[0],), log_probs.shape[0], dtype=torch.long, device=device)
    ctc = torch.nn.functional.ctc_loss(
        log_probs, targets, steps, lengths, blank=0, zero_infinity=True
    )
    row_loss = (row - rows).abs().sum(1)[known].mean() if bool(known.any()) else ctc * 0
    return ctc + _ROW_WEIGHT * row_loss, float(ctc.detach())


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    net = FastPlateNet(width=args.width).to(device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step = resume(net, optimiser, out, device, name="train_fast") if args.resume else 0
    record_start(args, out, step)

    sets = (
        yolo_crops(args.synthetic),
        yolo_crops(args.darkplate) if args.darkplate else Crops((), (), ()),
        distilled_crops(args.distilled, min_confidence=args.min_confidence)
        if args.distilled
        else Crops((), (), ()),
    )
    print(f"train_fast: synthetic, DarkPlate, distilled crops {[len(s) for s in sets]}", flush=True)
    shares = (args.synthetic_share, args.darkplate_share, args.distilled_share)
    loader = batch_loader(
        functools.partial(_batches, batch=args.batch, sets=sets, shares=shares),
        seed=args.seed,
        start_step=step,
        workers=args.workers,
    )

    def one_step(batch: Batch) -> float:
        loss, ctc = loss_of(net, batch, device=device)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimiser.step()
        return ctc  # the figure logged and smoothed: the reading's part of the loss

    return run_steps(
        args,
        name="train_fast",
        net=net,
        optimiser=optimiser,
        base_lrs=[args.lr],
        batches=loader,
        step=step,
        one_step=one_step,
        smoothing=0.98,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train_fast", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=1, help="channel multiplier of the network")
    p.add_argument("--synthetic", type=Path, required=True, help="a `plate-ocr synth` dataset")
    p.add_argument("--darkplate", type=Path, default=None)
    p.add_argument("--distilled", type=Path, default=None, help="a training.fast_labels manifest")
    p.add_argument("--min-confidence", type=float, default=0.9, help="of the teacher's readings")
    p.add_argument("--synthetic-share", type=float, default=0.6)
    p.add_argument("--darkplate-share", type=float, default=0.15)
    p.add_argument("--distilled-share", type=float, default=0.25)
    add_run_options(p, log_every=50, save_every=500)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    refuse_evaluation_data(args.synthetic, args.darkplate, args.distilled)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
