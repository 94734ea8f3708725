"""The detector alone under sets of test-time views, on a labelled folder (reader.views).

    python bench/views.py ../shared/data/real_us_dev [--limit N] [SET ...]

A SET is views joined by `+`, each view `STRETCHxMARGIN` (width scale, margin fraction):
`1x0` is the crop as it is; `1x0+1.4x0+1x0.04+1.4x0.04` the shipped DETECTOR_VIEWS (the
default, with `1x0` and `1.4x0` alone beside it). For each set it fits the detector's
corrections (presence model, class bias) on the pooled boxes and prints the exact-match rate
with each plate read by corrections fitted without it (5-fold, as `python -m
training.calibrate` does). About a minute per four-view set on 1 513 plates on two cores.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plate_ocr.settings import Settings  # noqa: E402
from reader.views import View  # noqa: E402
from training.calibrate import fit_detector_cross_validated  # noqa: E402
from training.evaluate import load_labels  # noqa: E402

DEFAULT_SETS = ("1x0", "1.4x0", "1x0+1.4x0+1x0.04+1.4x0.04")


def parse_views(spec: str) -> tuple[View, ...]:
    """`1x0+1.4x0.04` -> (View(1.0, 0.0), View(1.4, 0.04))."""
    try:
        views = []
        for part in spec.split("+"):
            stretch, margin = part.split("x")
            views.append(View(stretch=float(stretch), margin=float(margin)))
    except ValueError as e:
        raise SystemExit(f"bad view set {spec!r} (want e.g. 1x0+1.4x0.04): {e}") from e
    return tuple(views)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("sets", nargs="*", default=list(DEFAULT_SETS))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", type=Path, default=None, help="detector weights")
    args = parser.parse_args(argv)

    rows = load_labels(args.dir, limit=args.limit)
    settings = Settings(model_path=args.model)
    print(f"{len(rows)} plates from {args.dir}; detector alone, corrections 5-fold cross-validated")
    for spec in args.sets:
        fit = fit_detector_cross_validated(rows, settings, parse_views(spec))
        print(f"{spec:40} {fit.exact:>7.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
