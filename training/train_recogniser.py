"""Fine-tune PP-OCRv4's line recogniser on plate serials with CTC, resumable, on the CPU or a GPU.

    python -m training.train_recogniser --out runs/rec [--steps 3000 --batch 32]
        [--darkplate ../shared/data/train_darkplate] [--pseudo runs/oid_line_labels.csv]
        [--threads 2 --workers 1 --device cpu] [--anchor-weight 0 [--anchor-lines 0]]
        [--line-height 48] [--resume]

Starts from PP-OCRv4's recogniser as bundled (training.recogniser_net: the network in PyTorch,
a 37-way CTC head from the original classifier's rows) or, with --resume, from OUT/last.pt (weights,
optimiser, step). Every --save-every steps it writes OUT/last.pt and OUT/step_NNNNNN.pt (the
weights alone, for evaluation and export: training.export_plate_recogniser). Settings go to
OUT/train_settings.json (every start's, with its step, to OUT/train_history.jsonl), one line
per --log-every steps to stdout. SIGTERM stops the run after the step in progress, with a
checkpoint.

By default only the SVTR neck and the head train (training.recogniser_net.freeze_backbone: a
step costs a fifth on the CPU); --train-backbone trains it all. Optimiser: AdamW, the
pretrained trunk at --lr, the head at --head-lr-factor times that, a linear warm-up over the
first 5% of the steps, then cosine decay to a tenth. Lines are batched padded on the right to
the widest (at most MAX_TRAIN_WIDTH), as the reader pads its lines. With --anchor-weight W,
W times the KL divergence from the starting network's reading of the same lines joins the
CTC loss (`anchor_loss`); with --anchor-lines N, also on N generated lines a step that CTC
does not see.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from plate_ocr.constants import CLASS_NAMES
from reader.recogniser import (
    LINE_HEIGHT,
    LINE_HEIGHTS,
    line_tensor,
    ppocr_recogniser_path,
    resized_width,
)
from training.line_data import (
    LineSample,
    RealLines,
    darkplate_lines,
    pseudo_lines,
    sample_stream,
)
from training.recogniser_net import PlateRecogniserNet, freeze_backbone, load_net
from training.run import (
    add_run_options,
    batch_loader,
    record_start,
    refuse_evaluation_data,
    resume,
    run_steps,
)

__all__ = [
    "MAX_TRAIN_WIDTH",
    "anchor_loss",
    "collate",
    "ctc_loss",
    "main",
    "parser",
    "train",
    "train_step",
]

MAX_TRAIN_WIDTH: Final = 480  # 10 steps a character for 7 characters, and then some
_STEP_PX: Final = 8
_INDEX: Final = {c: i + 1 for i, c in enumerate(CLASS_NAMES)}  # 0 is the CTC blank

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def collate(samples: Sequence[LineSample], line_height: int = LINE_HEIGHT) -> Batch:
    """Lines, their valid CTC steps, the concatenated targets and their lengths."""
    prepared = [line_tensor(s.line, line_height) for s in samples]
    width = max(t.shape[-1] for t, _ in prepared)
    lines = np.zeros((len(prepared), 3, prepared[0][0].shape[1], width), np.float32)
    for i, (tensor, _) in enumerate(prepared):
        lines[i, :, :, : tensor.shape[-1]] = tensor
    steps = [max(math.ceil(w / _STEP_PX), 1) for _, w in prepared]
    targets = [_INDEX[c] for s in samples for c in s.text]
    return (
        torch.from_numpy(lines),
        torch.tensor(steps, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        torch.tensor([len(s.text) for s in samples], dtype=torch.long),
    )


def _fill(stream: Iterator[LineSample], count: int, line_height: int) -> Batch:
    samples: list[LineSample] = []
    while len(samples) < count:
        sample = next(stream)
        height, width = sample.line.shape[:2]
        resized = resized_width(height, width, line_height)
        # CTC needs a step per character, and one between repeats.
        if resized <= MAX_TRAIN_WIDTH and 2 * len(sample.text) + 1 <= resized // _STEP_PX:
            samples.append(sample)
    return collate(samples, line_height)


def _batches(
    rng: np.random.Generator,
    *,
    batch: int,
    anchor_lines: int,
    line_height: int,
    darkplate: RealLines | None,
    pseudo: RealLines | None,
    weights: tuple[float, float, float],
) -> Iterator[tuple[Batch, Batch | None]]:
    """Each step's batch, and `anchor_lines` generated lines for the anchor alone (None for 0)."""
    stream = sample_stream(rng, darkplate=darkplate, pseudo=pseudo, weights=weights)
    generated = (
        sample_stream(rng, darkplate=None, pseudo=None, weights=(1.0, 0.0, 0.0))
        if anchor_lines
        else None
    )
    while True:
        yield (
            _fill(stream, batch, line_height),
            _fill(generated, anchor_lines, line_height) if generated is not None else None,
        )


def ctc_loss(net: PlateRecogniserNet, batch: Batch, *, device: torch.device) -> torch.Tensor:
    """The mean CTC loss of `batch` (per target character, as torch's "mean" reduction)."""
    return _ctc(net(batch[0].to(device)).log_softmax(-1), batch, device=device)


def _ctc(log_probs: torch.Tensor, batch: Batch, *, device: torch.device) -> torch.Tensor:
    _, steps, targets, lengths = batch
    loss: torch.Tensor = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),  # (T, N, C)
        targets.to(device),
        steps.to(device),
        lengths.to(device),
        blank=0,
        zero_infinity=True,
    )
    return loss


def anchor_loss(
    log_probs: torch.Tensor, anchor: PlateRecogniserNet, lines: torch.Tensor, steps: torch.Tensor
) -> torch.Tensor:
    """KL(anchor || the network whose `log_probs` these are) per CTC step, averaged over the
    lines' valid `steps`: how far the fine-tune has moved from what the anchor network (the
    starting point, frozen) reads on the same `lines` (already on the networks' device)."""
    with torch.no_grad():
        target = anchor(lines).log_softmax(-1)
    per_step = (target.exp() * (target - log_probs)).sum(-1)  # (N, T)
    valid = torch.arange(per_step.shape[1], device=lines.device)[None, :] < steps[:, None]
    mean: torch.Tensor = (per_step * valid).sum() / valid.sum().clamp_min(1)
    return mean


def train_step(
    net: PlateRecogniserNet,
    optimiser: Any,
    batch: Batch,
    *,
    device: torch.device,
    anchor: PlateRecogniserNet | None = None,
    anchor_weight: float = 0.0,
    anchor_batch: Batch | None = None,
) -> float:
    """One optimiser step on `batch`; its loss before the step: CTC, plus `anchor_weight`
    times the `anchor_loss` where an anchor network is given, on `batch` and, where given, on
    `anchor_batch` (lines the anchor alone acts on: no CTC)."""
    lines = batch[0].to(device)  # once, for both networks
    log_probs = net(lines).log_softmax(-1)
    loss = _ctc(log_probs, batch, device=device)
    if anchor is not None and anchor_weight > 0:
        steps = batch[1].to(device)
        loss = loss + anchor_weight * anchor_loss(log_probs, anchor, lines, steps)
        if anchor_batch is not None:
            held, held_steps = anchor_batch[0].to(device), anchor_batch[1].to(device)
            held_log_probs = net(held).log_softmax(-1)
            loss = loss + anchor_weight * anchor_loss(held_log_probs, anchor, held, held_steps)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    optimiser.step()
    return float(loss.detach())


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) the fine-tune; returns the last logged figures (and the step)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    net: PlateRecogniserNet = load_net(args.source).to(device)
    if not args.train_backbone:
        trainable = freeze_backbone(net)
        print(f"train_recogniser: backbone frozen, {trainable} parameters train", flush=True)
    head = list(net.head.parameters())
    head_ids = {id(p) for p in head}
    trunk = [p for p in net.parameters() if id(p) not in head_ids and p.requires_grad]
    base_lrs = [args.lr, args.lr * args.head_lr_factor]
    optimiser = torch.optim.AdamW(
        [{"params": trunk, "lr": base_lrs[0]}, {"params": head, "lr": base_lrs[1]}],
        weight_decay=1e-4,
    )
    step = resume(net, optimiser, out, device, name="train_recogniser") if args.resume else 0
    record_start(args, out, step)
    anchor: PlateRecogniserNet | None = None
    if args.anchor_weight > 0:
        anchor = load_net(args.source).to(device).eval().requires_grad_(False)

    darkplate = darkplate_lines(args.darkplate) if args.darkplate else None
    pseudo = pseudo_lines(args.pseudo) if args.pseudo else None
    weights = (args.synthetic_share, args.darkplate_share, args.pseudo_share)
    loader = batch_loader(
        functools.partial(
            _batches,
            batch=args.batch,
            anchor_lines=args.anchor_lines,
            line_height=args.line_height,
            darkplate=darkplate,
            pseudo=pseudo,
            weights=weights,
        ),
        seed=args.seed,
        start_step=step,
        workers=args.workers,
    )
    return run_steps(
        args,
        name="train_recogniser",
        net=net,
        optimiser=optimiser,
        base_lrs=base_lrs,
        batches=loader,
        step=step,
        one_step=lambda batches: train_step(
            net,
            optimiser,
            batches[0],
            device=device,
            anchor=anchor,
            anchor_weight=args.anchor_weight,
            anchor_batch=batches[1],
        ),
        smoothing=0.95,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train_recogniser", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--source", type=Path, default=ppocr_recogniser_path())
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    # The head starts from PP-OCR's own rows, so it needs no faster rate than the rest: at 10x
    # (run 1, 100 steps) the fused reader fell from 91.0% (the untrained 37-way head) to 88.4%
    # on the dev set, its head's prior drifting to the generated plates' letters (2 read as Z).
    p.add_argument("--head-lr-factor", type=float, default=1.0)
    p.add_argument("--darkplate", type=Path, default=None)
    p.add_argument("--pseudo", type=Path, default=None, help="a training.line_labels manifest")
    p.add_argument("--synthetic-share", type=float, default=0.5)
    p.add_argument("--darkplate-share", type=float, default=0.2)
    p.add_argument("--pseudo-share", type=float, default=0.3)
    # Fine-tuned on these lines, the recogniser drifts from what PP-OCR read well on real
    # plates it never sees here (New York's 2 read as Z, above). This term keeps each step's
    # distributions near the starting network's on the same lines (--source, frozen). At 1.0
    # with the backbone frozen it did not stop that drift (model card); it is there for the
    # GPU's --train-backbone runs, where the network has the most room to move.
    p.add_argument("--anchor-weight", type=float, default=0.0)
    # Real lines hold few of some glyphs (a thin I, Y): trained on them alone the recogniser
    # forgot the demo's I (model card, "What it reads worse"). These generated lines are read
    # by both networks each step and only the anchor acts on them, so the glyphs are held
    # where the starting network read them while CTC learns from the batch's lines. At 16,
    # two and four seeds averaged read one dev plate more and the demo's I, but 1-3 character
    # edits more and no more of 13 generated I-plates: not in the shipped recipe (model card).
    p.add_argument(
        "--anchor-lines",
        type=int,
        default=0,
        help="generated lines a step on which only the anchor acts (needs --anchor-weight)",
    )
    # The network's cost falls with the square of the line height; the exported model declares
    # it (reader.recogniser.LINE_HEIGHTS: the heights this graph reads). The anchor, where on,
    # reads the same lines at this height: distilled from its reading of the 48 px line instead
    # (its steps pooled onto the student's), a 36 px student read worse (model card, "A smaller
    # line height").
    p.add_argument("--line-height", type=int, default=LINE_HEIGHT)
    add_run_options(p, log_every=10, save_every=100)
    p.add_argument(
        "--train-backbone",
        action="store_true",
        help="train the whole network (a GPU's choice); by default the backbone stays frozen",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.anchor_lines and args.anchor_weight <= 0:
        p.error("--anchor-lines needs --anchor-weight above 0")
    if args.line_height not in LINE_HEIGHTS:
        p.error(f"--line-height: {LINE_HEIGHTS.start} to {LINE_HEIGHTS.stop - 1} px")
    refuse_evaluation_data(args.darkplate, args.pseudo)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
