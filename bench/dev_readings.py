"""The real reader's readings of a labelled crop folder, cached so that consumer benches rerun fast.

    python bench/dev_readings.py [DIR] [--device cpu]

Reads every crop of `DIR/labels.csv` once with the bundled reader (`worker.PlateReader`, the
default fused path), turns each result into the worker's own `PlateReading` (`ReadingFactory`)
and writes them, one JSON line per crop with its label, under `runs/bench-cache/` (ignored by
git), keyed by the models' hashes: new weights read afresh, reruns take a second.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import PlateReading

__all__ = ["CACHE_DIR", "DEFAULT_DEV_DIR", "LabelledReading", "dev_readings"]

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "runs" / "bench-cache"
DEFAULT_DEV_DIR = ROOT.parent / "shared" / "data" / "real_us_dev"
_BATCH = 32

LabelledReading = tuple[str, PlateReading]  # (label as labels.csv has it, the reading)


def _cache_path(data_dir: Path, key: str) -> Path:
    return CACHE_DIR / f"{data_dir.resolve().name}-{key}.jsonl"


def dev_readings(data_dir: Path = DEFAULT_DEV_DIR, *, device: str = "cpu") -> list[LabelledReading]:
    """(label, reading) for every crop of `data_dir`, from the cache when it has them."""
    from reader.bundle import bundled_model_path, file_sha256
    from reader.recogniser import bundled_recogniser_path
    from training import evaluate
    from worker import PlateReader
    from worker.intake import Envelope
    from worker.readings import ReadingFactory

    rows = evaluate.load_labels(data_dir)
    # Keyed by the files that decide a reading, hashed without loading a model.
    calibration = ROOT / "worker" / "models" / "calibration.json"
    files = (bundled_model_path(), bundled_recogniser_path(), calibration)
    key = "".join(file_sha256(f)[:8] for f in files if f.is_file())
    path = _cache_path(data_dir, key)
    if path.is_file():
        cached = [json.loads(line) for line in path.read_text().splitlines()]
        if len(cached) == len(rows):
            return [(c["label"], PlateReading.model_validate(c["reading"])) for c in cached]
    import cv2

    reader = PlateReader(None, device=device)
    factory = ReadingFactory(
        model=reader.model_info,
        device=reader.device,
        worker_id="bench",
        recogniser=reader.recogniser_info,
    )
    out: list[LabelledReading] = []
    started = time.perf_counter()
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start : start + _BATCH]
        images = [cv2.imread(str(r.file), cv2.IMREAD_COLOR) for r in chunk]
        results = reader.read_arrays(images)
        for row, result in zip(chunk, results, strict=True):
            envelope = Envelope(job_id=row.file.name, camera_id="dev", metadata={})
            reading = factory.ok(
                envelope,
                result,
                enqueued_at=None,
                taken_at=datetime.now(UTC),
                decode_ms=0.0,
                infer_ms=0.0,
            )
            out.append((row.text, reading))
    print(f"read {len(out)} crops in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"label": label, "reading": r.model_dump(mode="json")}) + "\n"
            for label, r in out
        )
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?", default=DEFAULT_DEV_DIR)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    readings = dev_readings(args.dir, device=args.device)
    print(f"{len(readings)} readings cached under {CACHE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
