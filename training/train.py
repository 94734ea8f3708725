"""Train the YOLO11n character detector (36 classes) on a generated dataset, offline and resumable.

    plate-ocr train --data DATA.yaml --project RUNS --name NAME
        [--epochs 12 --imgsz 256 --batch 32 --device cpu --workers 2] [--resume]
        [--init-weights WEIGHTS.pt] [--real-dir REAL_CROPS_DIR]

Starts from the architecture in ultralytics (yolo11n.yaml, no download), or from init weights,
or resumes RUNS/NAME/weights/last.pt. Settings are written to RUNS/NAME/train_settings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_HYP", "main", "train"]

# Credit owed by any model trained with the DarkPlate crops (MIT licence).
DARKPLATE_CREDIT = "DarkPlate by Stéphane Charette (MIT)"

# Fixed choices, and why:
# - fliplr 0: a mirrored character is a different (or no) character.
# - amp off by default (CPU training; --amp turns it on for CUDA: ultralytics then checks it
#   against FP32 first, or, offline, skips that check with a warning), plots off: plots would
#   fetch Arial.ttf from the internet.
# - AdamW 1e-3 with 1 warm-up epoch: from scratch in ~12 epochs, SGD warms up too slowly.
# - close_mosaic 2: the last epochs see whole single crops, as the reader does.
DEFAULT_HYP: dict[str, Any] = {
    "amp": False,
    "plots": False,
    "fliplr": 0.0,
    "optimizer": "AdamW",
    "lr0": 0.001,
    "warmup_epochs": 1.0,
    "close_mosaic": 2,
    "degrees": 2.0,
    "patience": 100,
    "seed": 0,
    "cache": False,
}


def _offline() -> None:
    """Keep ultralytics from touching the network: no fonts, no hub, no pretrained weights."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks

    def no_font_download(font: str = "Arial.ttf") -> Path | None:
        # Arial only labels plots: hand over a bundled face instead of fetching it.
        from training.synth_fonts import FONT_DIR

        return FONT_DIR / "overpass" / "Overpass-Medium.ttf"

    data_utils.check_font = no_font_download  # type: ignore[attr-defined]
    checks.check_font = no_font_download


def _cpu_threads(threads: int | None) -> None:
    """Let CPU training use every core: ultralytics caps torch at cpu_count - 1 threads, which on
    a 2-core machine halves the speed while the data workers sit mostly idle."""
    import ultralytics.utils.torch_utils as torch_utils

    torch_utils.NUM_THREADS = max(1, threads or os.cpu_count() or 1)  # type: ignore[attr-defined]


def _uses_darkplate(data: Path) -> bool:
    text = data.read_text()
    root = Path(data).parent
    for line in text.splitlines():
        if line.startswith("path:"):
            root = Path(line.split(":", 1)[1].strip())
    return any((root / "images" / "train").glob("real*_*.jpg"))


def _write_settings(run_dir: Path, settings: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "train_settings.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(settings)  # one entry per start / resume
    path.write_text(json.dumps(history, indent=2, default=str) + "\n")


def train(
    *,
    data: Path,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    project: Path,
    name: str,
    resume: bool,
    init_weights: Path | None,
    workers: int,
    real_dir: Path | None = None,
    real_count: int = 300,
    real_every: int = 1,
    hyp: dict[str, Any] | None = None,
    threads: int | None = None,
) -> Path:
    """Train and return the weights to use: best_real.pt if the real set was tracked, else best.pt.

    Returned weights are stripped of optimizer state. With resume=True and an existing
    last.pt, training continues from it (a finished run just returns its weights).
    """
    _offline()
    _cpu_threads(threads)
    import torch
    import ultralytics
    from ultralytics import YOLO  # type: ignore[attr-defined]
    from ultralytics.utils.torch_utils import strip_optimizer

    project = Path(project).resolve()
    run_dir = project / name
    wdir = run_dir / "weights"
    last = wdir / "last.pt"
    settings: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": str(Path(data).resolve()),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "workers": workers,
        "resume": resume,
        "threads": threads,
        "init_weights": str(init_weights) if init_weights else None,
        "architecture": "yolo11n.yaml",
        "hyp": {**DEFAULT_HYP, **(hyp or {})},
        "real_eval": str(real_dir) if real_dir else None,
        "versions": {
            "ultralytics": ultralytics.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "credits": [DARKPLATE_CREDIT] if _uses_darkplate(Path(data)) else [],
    }

    finished = False
    if resume and last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        finished = int(ckpt.get("epoch", -1)) < 0  # stripped checkpoints mark a completed run
        model = YOLO(str(last))
        settings["resumed_from"] = str(last)
    elif init_weights is not None:
        model = YOLO(str(init_weights))
    else:
        model = YOLO("yolo11n.yaml")  # architecture only, random init: nothing to download
    _write_settings(run_dir, settings)

    if not finished:
        if real_dir is not None:
            from training.real_eval import make_callback

            model.add_callback(
                "on_fit_epoch_end",
                make_callback(real_dir, count=real_count, every=real_every, imgsz=imgsz),
            )
        if resume and last.exists():
            model.train(resume=True, workers=workers)
        else:
            model.train(
                # ultralytics builds a fresh model when pretrained is False, dropping init weights
                pretrained=init_weights is not None,
                data=str(Path(data).resolve()),
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                device=device,
                project=str(project),
                name=name,
                exist_ok=True,
                workers=workers,
                save_period=-1,
                **{**DEFAULT_HYP, **(hyp or {})},
            )

    best_real = wdir / "best_real.pt"
    if best_real.exists():
        strip_optimizer(best_real)
        return best_real
    best = wdir / "best.pt"
    if best.exists():
        return best
    if last.exists():
        strip_optimizer(last)
        return last
    raise RuntimeError(f"training produced no weights under {wdir}")


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m training.train") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, required=True, help="data.yaml from training.synth")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--project", type=Path, required=True, help="runs directory")
    p.add_argument("--name", default="plate_chars")
    p.add_argument("--resume", action="store_true", help="continue NAME/weights/last.pt if present")
    p.add_argument(
        "--init-weights", type=Path, help="start from these weights (no local checkpoint)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--real-dir", type=Path, help="labelled real crops to measure on (never trained on)"
    )
    p.add_argument("--real-count", type=int, default=300)
    p.add_argument("--real-every", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument(
        "--lr0", type=float, help="initial learning rate (default 0.001; lower to fine-tune)"
    )
    p.add_argument(
        "--close-mosaic",
        type=int,
        help="last epochs trained without mosaic (default 2; 0 keeps mosaic on throughout)",
    )
    p.add_argument(
        "--warmup-epochs",
        type=float,
        help="warm-up epochs (default 1; 0 to fine-tune: the warm-up starts the biases at"
        " lr 0.1, which under AdamW undoes much of what the init weights learnt)",
    )
    p.add_argument("--copy-to", type=Path, help="also copy the chosen weights here")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA; ignored on the CPU)")
    args = p.parse_args(argv)
    weights = train(
        data=args.data,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        project=args.project,
        name=args.name,
        resume=args.resume,
        init_weights=args.init_weights,
        workers=args.workers,
        real_dir=args.real_dir,
        real_count=args.real_count,
        real_every=args.real_every,
        threads=args.threads,
        hyp={
            k: v
            for k, v in (
                ("lr0", args.lr0),
                ("close_mosaic", args.close_mosaic),
                ("warmup_epochs", args.warmup_epochs),
                ("amp", True if args.amp else None),
            )
            if v is not None
        },
    )
    if args.copy_to:
        shutil.copyfile(weights, args.copy_to)
    print(weights, file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
