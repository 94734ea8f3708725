"""The real reader's readings of a labelled crop folder, cached so that consumer benches rerun fast.

    python bench/dev_readings.py [DIR] [--device cpu]

Reads every crop of `DIR/labels.csv` once with the reader the settings make (`worker.PlateReader`
from `PLATE_OCR_*`: by default the bundled models on the default path), turns each result into
the worker's own `PlateReading` (`ReadingFactory`) and writes them, one JSON line per crop with
its label, under `runs/bench-cache/` (ignored by git), keyed by the models' hashes, their
calibration and how the reader puts them together: anything new reads afresh, reruns take a
second.
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
    from plate_ocr.settings import Settings
    from reader.bundle import file_sha256
    from reader.calibration import bundled_calibration_path
    from training import evaluate
    from worker import PlateReader
    from worker.intake import Envelope
    from worker.readings import ReadingFactory

    rows = evaluate.load_labels(data_dir)
    # The reader as the settings make it (PLATE_OCR_LOCATOR, ..._CASCADE_CONFIDENCE and all),
    # keyed by its models, their calibration and how they are put together.
    settings = Settings(device=device)
    reader = PlateReader.from_settings(settings)
    models = [reader.model_info, reader.recogniser_info, reader.fast_info]
    calibration = settings.calibration_path or bundled_calibration_path()
    key = "".join(m.sha256[:8] for m in models if m is not None) + file_sha256(calibration)[:8]
    key += f"-{reader.reader}-{reader.locator}-{reader.cascade_confidence}"
    path = _cache_path(data_dir, key)
    if path.is_file():
        cached = [json.loads(line) for line in path.read_text().splitlines()]
        if len(cached) == len(rows):
            return [(c["label"], PlateReading.model_validate(c["reading"])) for c in cached]
    import cv2

    factory = ReadingFactory(
        model=reader.model_info,
        device=reader.device,
        worker_id="bench",
        recogniser=reader.recogniser_info,
        fast=reader.fast_info,
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
