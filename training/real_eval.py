"""Real-crop accuracy during training: a measurement only, never training data.

Reads a fixed subset of the real development set with the current weights, turns boxes into a
string (left to right, rows top to bottom) and logs exact-match and character error rate to a
CSV beside the run, keeping a copy of the checkpoint with the best exact match.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reader.postprocess import order_characters
from training.evaluate import align, normalise


def normalize(text: str) -> str:
    """Scoring form, the same as `plate-ocr eval`'s."""
    return normalise(text)


def edit_distance(a: str, b: str) -> int:
    return len(align(a, b))


def boxes_to_text(
    xyxy: np.ndarray,
    conf: np.ndarray,
    cls: np.ndarray,
    names: Sequence[str],
    *,
    min_conf: float = 0.25,
) -> str:
    """The worker's own ordering (duplicate suppression, rows, left to right), so the figure
    tracked during training is the one the product would score."""
    return order_characters(xyxy, conf, cls, confidence=min_conf, names=tuple(names)).text


@dataclass(frozen=True)
class RealSample:
    path: Path
    text: str
    group: str


def _group(source: str) -> str:
    if "endtoend" in source:
        return "oalpr_e2e"
    if "usimages" in source:
        return "oalpr_usimages"
    return "nyc_tlc" if "NEWYORK_TLC" in source else "reported"


def load_subset(real_dir: Path, count: int, seed: int = 0) -> list[RealSample]:
    """A fixed, seeded subset of the labelled real set (same files every epoch and run)."""
    with (real_dir / "labels.csv").open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file"])
    idx = np.random.default_rng(seed).permutation(len(rows))[:count]
    return [
        RealSample(
            real_dir / rows[i]["file"], normalize(rows[i]["text"]), _group(rows[i]["source"])
        )
        for i in sorted(idx)
    ]


def evaluate(
    weights: Path, samples: Sequence[RealSample], *, imgsz: int, device: str = "cpu"
) -> dict[str, float]:
    """Exact-match rate overall and per source group, plus character error rate."""
    from ultralytics import YOLO  # type: ignore[attr-defined]  # lazy: model stack

    model = YOLO(str(weights))
    names = [model.names[i] for i in range(len(model.names))]
    hits: dict[str, list[int]] = {}
    errors = 0
    chars = 0
    for start in range(0, len(samples), 32):
        chunk = samples[start : start + 32]
        results: Any = model.predict(
            [str(s.path) for s in chunk], imgsz=imgsz, conf=0.25, device=device, verbose=False
        )
        for s, r in zip(chunk, results, strict=True):
            bx: Any = r.boxes  # ultralytics Boxes on CPU: tensors with .numpy()
            pred = normalize(
                boxes_to_text(bx.xyxy.numpy(), bx.conf.numpy(), bx.cls.numpy().astype(int), names)
            )
            ok = int(pred == s.text)
            hits.setdefault("all", []).append(ok)
            hits.setdefault(s.group, []).append(ok)
            errors += edit_distance(pred, s.text)
            chars += len(s.text)
    out = {f"exact_{k}": float(np.mean(v)) for k, v in sorted(hits.items())}
    out["cer"] = errors / max(1, chars)
    return out


def make_callback(
    real_dir: Path, *, count: int = 300, every: int = 1, imgsz: int = 256
) -> Callable[[Any], None]:
    """An ultralytics on_fit_epoch_end callback logging real-set accuracy to real_eval.csv."""
    samples = load_subset(real_dir, count)
    state: dict[str, float] = {"best": -1.0}

    def on_fit_epoch_end(trainer: Any) -> None:
        epoch = int(trainer.epoch) + 1
        # final_eval() calls this hook again with epoch == epochs + 1; that one is not a new model.
        if epoch > int(trainer.epochs) or (epoch % every and epoch != trainer.epochs):
            return
        last = Path(trainer.last)
        if not last.exists():
            return
        csv_path = Path(trainer.save_dir) / "real_eval.csv"
        if state["best"] < 0 and csv_path.exists():  # resumed run: continue from the logged best
            with csv_path.open(newline="") as f:
                state["best"] = max(
                    (float(r["exact_all"]) for r in csv.DictReader(f)), default=-1.0
                )
        t0 = time.time()
        metrics = evaluate(last, samples, imgsz=imgsz)
        row: dict[str, float | int | str] = {"epoch": epoch, "n": len(samples), **metrics}
        row["eval_s"] = round(time.time() - t0, 1)
        new = not csv_path.exists()
        with csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if metrics["exact_all"] > state["best"]:
            state["best"] = metrics["exact_all"]
            shutil.copyfile(last, last.with_name("best_real.pt"))
        print(
            f"real-eval epoch {epoch}: " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True
        )

    return on_fit_epoch_end
