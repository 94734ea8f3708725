"""The fast reader's teacher: the fused reader's readings of unlabelled real crops, as a manifest.

    python -m training.fast_labels ../shared/data/real_oid_unlabelled/images \
        training/labels/oid_fast_labels.csv

The fast reader is distilled from the default reader: every crop is read by the fused reader
(detector + fine-tuned line recogniser) and written with its text, its calibrated confidence,
the recogniser named by its sha256, and the serial row's top and bottom (its characters'
boxes, as shares of the crop's height). training.train_fast keeps the readings at
`--min-confidence` or more. The manifest holds labels only, no images. Never run it on
real_us_dev: that set is for evaluation only.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from reader.image import decode_image, load_path

__all__ = ["FIELDS", "main", "write_labels"]

FIELDS: Final = ("file", "text", "confidence", "row_top", "row_bottom", "teacher")
_BATCH: Final = 32
_MAX_BYTES: Final = 8 << 20


def write_labels(images: Sequence[Path], out: Path) -> int:
    """Read `images` with the default fused reader; write the manifest; return rows written."""
    from reader.engine import PlateReader

    reader = PlateReader()
    recogniser = reader.recogniser_info
    assert recogniser is not None  # the default reader is the fused one
    teacher = f"fused:{recogniser.name}@{recogniser.sha256[:12]}"
    written = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for start in range(0, len(images), _BATCH):
            chunk = images[start : start + _BATCH]
            arrays = [
                decode_image(
                    load_path(p, max_bytes=_MAX_BYTES), max_bytes=_MAX_BYTES, max_pixels=_MAX_BYTES
                )
                for p in chunk
            ]
            for path, image, result in zip(chunk, arrays, reader.read_arrays(arrays), strict=True):
                if not result.characters:
                    continue
                height = image.shape[0]
                top = min(c.box[1] for c in result.characters) / height
                bottom = max(c.box[3] for c in result.characters) / height
                writer.writerow(
                    (
                        path,
                        result.text,
                        f"{result.confidence:.4f}",
                        f"{top:.4f}",
                        f"{bottom:.4f}",
                        teacher,
                    )
                )
                written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fast_labels", description=__doc__)
    parser.add_argument("images", type=Path, help="a folder of crops")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if "real_us_dev" in str(args.images.resolve()):
        raise SystemExit("real_us_dev is for evaluation only; never label it for training")
    images = sorted(args.images.glob("*.jpg"))
    print(f"fast_labels: {write_labels(images, args.out)} of {len(images)} crops read", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
