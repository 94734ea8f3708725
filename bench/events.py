"""Per-read vs per-event exact match, on vehicle tracks the model has never seen.

    python bench/events.py [--tracks 100] [--reads 8] [--seed 7] [--approach 14-40]
        [--device cpu] [--json OUT] [--real /work/shared/data/real_us_dev]

Synthetic tracks: each is one plate, rendered once by the training generator (`render_flat`),
then put through the generator's camera `--reads` times, each a fresh draw of its degradations
(scale, perspective and angle, blur and motion blur, glare and shadow, partial occlusion, sensor
noise, JPEG), as a car passing a camera is seen from frame to frame. Every crop is read by the
bundled model (`worker.PlateReader`), turned into a reading by the worker's own factory, and each
track's readings are consolidated exactly as `plate-ocr events` does (`build_event`). A second
set, the same plates with the same cameras, has the car drive up to the camera: its plate grows
from `--approach` FAR to NEAR pixels high across the track, so its first reads are the hard ones.

Printed: exact-match accuracy per read, of the most confident read of each track (what a
"best read wins" consolidator would publish), and per event (per-character voting). Exact match
uses `plate-ocr eval`'s normalisation (uppercase 0-9A-Z, letter O folded to digit 0).

The real dev set holds no tracks (one crop per photo, no consecutive frames of one pass);
`--real DIR` groups its crops that share a label (different photos of one plate) as stand-in
tracks, for what that is worth.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from consumers.events.event import build_event
from schemas import PlateReading
from training import evaluate, synth_augment, synth_render
from worker.intake import Envelope
from worker.readings import ReadingFactory

__all__ = ["Score", "main", "score_tracks", "synthetic_tracks"]

_LEGIBLE_CONTRAST = 18.0  # the generator's own re-draw threshold (synth.render_plate)
_BATCH = 64

Track = tuple[str, list[np.ndarray]]  # (label, crops)


@dataclass(frozen=True)
class Score:
    tracks: int
    reads: int
    per_read_exact: float
    best_read_exact: float
    per_event_exact: float
    event_wins: int  # tracks the event got right and the best read got wrong
    event_losses: int  # and the other way round


def synthetic_tracks(
    count: int, reads: int, seed: int, *, approach_px: tuple[int, int] | None = None
) -> list[Track]:
    """`count` plates, each seen `reads` times by a freshly drawn camera. `approach_px`: the
    car drives up to the camera, its plate's height in the crop growing from the first value
    to the second across the track (far-away frames are the hard ones)."""
    import cv2

    tracks: list[Track] = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        flat = synth_render.render_flat(rng)
        crops = []
        for k in range(reads):
            for _ in range(4):  # as the generator does: re-draw a camera that left nothing legible
                img, _, contrast = synth_augment.camera(rng, flat)
                if contrast >= _LEGIBLE_CONTRAST:
                    break
            if approach_px is not None:
                near, far = approach_px[1], approach_px[0]
                height = round(far + (near - far) * k / max(reads - 1, 1))
                width = max(8, round(img.shape[1] * height / img.shape[0]))
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
            crops.append(img)
        tracks.append((flat.text, crops))
    return tracks


def real_pseudo_tracks(data_dir: Path) -> list[Track]:
    """The crops of `data_dir/labels.csv` that share a label, grouped (2+ crops each)."""
    import cv2

    by_label: dict[str, list[np.ndarray]] = defaultdict(list)
    for row in evaluate.load_labels(data_dir):
        image = cv2.imread(str(data_dir / row.file), cv2.IMREAD_COLOR)
        if image is not None:
            by_label[evaluate.normalise(row.text)].append(image)
    return [(label, crops) for label, crops in sorted(by_label.items()) if len(crops) > 1]


def read_tracks(reader: Any, tracks: Sequence[Track]) -> list[list[PlateReading]]:
    """Every crop read by `reader`, as the worker's readings, grouped back into tracks."""
    factory = ReadingFactory(model=reader.model_info, device=reader.device, worker_id="bench")
    crops = [(t, k, crop) for t, (_, cs) in enumerate(tracks) for k, crop in enumerate(cs)]
    readings: list[list[PlateReading]] = [[] for _ in tracks]
    for start in range(0, len(crops), _BATCH):
        chunk = crops[start : start + _BATCH]
        results = reader.read_arrays([crop for _, _, crop in chunk])
        for (t, k, _), result in zip(chunk, results, strict=True):
            envelope = Envelope(
                job_id=f"t{t}-r{k}", camera_id="bench", metadata={}, track_id=f"t{t}"
            )
            readings[t].append(
                factory.ok(
                    envelope,
                    result,
                    enqueued_at=None,
                    taken_at=datetime.now(UTC),
                    decode_ms=0.0,
                    infer_ms=0.0,
                )
            )
    return readings


def score_tracks(labels: Sequence[str], readings: Sequence[Sequence[PlateReading]]) -> Score:
    def right(label: str, text: str) -> bool:
        return evaluate.normalise(text) == evaluate.normalise(label)

    reads = right_reads = best_right = event_right = wins = losses = 0
    for label, track in zip(labels, readings, strict=True):
        reads += len(track)
        right_reads += sum(right(label, r.text) for r in track)
        best = right(label, max(track, key=lambda r: r.confidence).text)
        event = right(label, build_event(track, closed_by="idle").text)
        best_right += best
        event_right += event
        wins += event and not best
        losses += best and not event
    n = len(labels)
    return Score(n, reads, right_reads / reads, best_right / n, event_right / n, wins, losses)


def _line(name: str, score: Score) -> str:
    return (
        f"{name:<24} {score.tracks:>6} {score.reads:>6} {score.per_read_exact:>9.1%} "
        f"{score.best_read_exact:>10.1%} {score.per_event_exact:>9.1%} "
        f"{score.event_wins:>5} {score.event_losses:>6}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100)
    parser.add_argument("--reads", type=int, default=8, help="crops per track")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--approach", default="14-40", help="FAR-NEAR plate heights (px) of a second set ('': none)"
    )
    parser.add_argument("--real", type=Path, default=None, help="a labelled dir (labels.csv)")
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    args = parser.parse_args(argv)

    from worker import PlateReader

    reader = PlateReader(args.model, device=args.device)
    started = time.perf_counter()
    results: dict[str, Score] = {}
    synthetic = synthetic_tracks(args.tracks, args.reads, args.seed)
    results["synthetic"] = score_tracks([t for t, _ in synthetic], read_tracks(reader, synthetic))
    if args.approach:
        far, _, near = args.approach.partition("-")
        approaching = synthetic_tracks(
            args.tracks, args.reads, args.seed, approach_px=(int(far), int(near))
        )
        results[f"approaching {args.approach} px"] = score_tracks(
            [t for t, _ in approaching], read_tracks(reader, approaching)
        )
    if args.real is not None:
        real = real_pseudo_tracks(args.real)
        results["real (same label)"] = score_tracks([t for t, _ in real], read_tracks(reader, real))
    print(f"model {reader.model_info.name} ({reader.model_info.sha256[:12]}), {args.device}")
    print(
        f"{'tracks':<24} {'tracks':>6} {'reads':>6} {'per read':>9} {'best read':>10} "
        f"{'event':>9} {'wins':>5} {'losses':>6}"
    )
    for name, score in results.items():
        print(_line(name, score))
    print(f"({time.perf_counter() - started:.0f} s; exact match, O folded to 0)")
    if args.json_out is not None:
        report: dict[str, dict[str, Any]] = {n: asdict(score) for n, score in results.items()}
        report["args"] = {k: str(v) for k, v in vars(args).items()}
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
