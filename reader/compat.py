"""What users of the seed model already call: `read_plate()`, `test_ocr.py`, `plate-ocr read`.

`read_plate` returns the seed's dict, `{'text': str, 'characters': [{'char', 'confidence',
'x'}]}`, where `x` is the box's LEFT edge in crop pixels, as in the seed. Two differences, both
deliberate: duplicate boxes of one character are dropped, and characters come in reading order
(top row, then bottom row, each left to right) where the seed sorted every box by `x`. On a
one-row plate without duplicates the two agree exactly.
"""

import json
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from plate_ocr.constants import DEFAULT_CONFIDENCE
from plate_ocr.errors import JobError, PlateOcrError
from plate_ocr.settings import Settings
from reader.engine import PlateReader
from reader.image import BgrImage, decode_image, load_path
from reader.postprocess import OcrResult
from reader.two_stage import ReaderKind

__all__ = ["read_plate", "read_plate_bytes", "run_read", "seed_main", "seed_result"]

_SEED_USAGE = """USA License Plate OCR
========================================

Usage: python test_ocr.py <cropped_plate_image> [confidence]

Example:
  python test_ocr.py plate_crop.jpg
  python test_ocr.py plate_crop.jpg 0.3

Note: Input image must be a cropped license plate,
      not a full vehicle image."""


def read_plate(
    image_path: str | Path,
    confidence: float = DEFAULT_CONFIDENCE,
    model_path: str | Path | None = None,
    *,
    device: str = "cpu",
    reader: ReaderKind = "fused",
) -> dict[str, Any]:
    """Read one cropped plate, returning the seed's dict. The model is loaded once per
    (model path, device, reader) and reused by later calls. `reader="detector"` reads with the
    character detector alone, as the seed did.

    Raises FileNotFoundError for a missing image (as the seed did), JobError for an image that
    cannot be decoded, ModelError for missing or wrong weights.
    """
    path = Path(image_path)
    if not path.exists():
        raise FileNotFoundError(f"Image not found: {path}")
    return seed_result(_reader(model_path, device, reader).read(path, confidence=confidence))


def read_plate_bytes(
    data: bytes,
    confidence: float = DEFAULT_CONFIDENCE,
    model_path: str | Path | None = None,
    *,
    device: str = "cpu",
    reader: ReaderKind = "fused",
) -> dict[str, Any]:
    """`read_plate` for encoded image bytes (what an inline job carries), same dict, same cache.

    Raises JobError for bytes that are not a readable image (or over the default limits).
    """
    return seed_result(_reader(model_path, device, reader).read(data, confidence=confidence))


def seed_result(result: OcrResult) -> dict[str, Any]:
    """The seed's result dict for a reading."""
    return {
        "text": result.text,
        "characters": [
            {"char": c.char, "confidence": c.confidence, "x": c.box[0]} for c in result.characters
        ],
    }


def run_read(settings: Settings, images: list[Path], *, confidence: float, as_json: bool) -> int:
    """`plate-ocr read`: print `path: TEXT (confidence)` per image, or one JSON dict per line.

    Returns 0 when every image was read, 1 when any could not be (each reported on stderr;
    the others are still read and printed).
    """
    reader = PlateReader.from_settings(settings)
    failed = 0
    # A batch at a time, so a long list of paths never holds every decoded image at once.
    for start in range(0, len(images), settings.batch_size):
        batch: list[tuple[Path, BgrImage]] = []
        for path in images[start : start + settings.batch_size]:
            try:
                batch.append((path, _decode_file(path, settings)))
            except JobError as e:
                failed += 1
                print(f"{path}: error: {e.message} [{e.code}]", file=sys.stderr)
        results = reader.read_arrays([image for _, image in batch], confidence=confidence)
        for (path, _), result in zip(batch, results, strict=True):
            if as_json:
                print(json.dumps({"image": str(path), **seed_result(result)}))
            else:
                print(f"{path}: {result.text or '(no characters)'} ({result.confidence:.2f})")
    return 1 if failed else 0


def seed_main(argv: Sequence[str]) -> int:
    """The seed's `python test_ocr.py <image> [confidence]`, with its output."""
    if not argv:
        print(_SEED_USAGE)
        return 1
    image_path = argv[0]
    try:
        confidence = float(argv[1]) if len(argv) > 1 else DEFAULT_CONFIDENCE
    except ValueError:
        print(f"Error: the confidence must be a number, not {argv[1]!r}", file=sys.stderr)
        return 1
    print("USA License Plate OCR\n" + "=" * 40)
    print(f"Image: {image_path}\nConfidence threshold: {confidence}\n")
    try:
        result = read_plate(image_path, confidence)
    except (FileNotFoundError, PlateOcrError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if not result["characters"]:
        print("No characters detected.\nTry lowering the confidence threshold.")
        return 0
    print(f"Detected {len(result['characters'])} character(s):\n")
    for i, char in enumerate(result["characters"], 1):
        print(f"  {i}. '{char['char']}' (confidence: {char['confidence']:.1%})")
    print(f"\nPlate text: {result['text']}")
    return 0


def _decode_file(path: Path, settings: Settings) -> BgrImage:
    data = load_path(path, max_bytes=settings.max_image_bytes)
    return decode_image(
        data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )


def _reader(model_path: str | Path | None, device: str, reader: ReaderKind) -> PlateReader:
    # One cache entry per file, however the caller spells its path.
    key = str(Path(model_path).resolve()) if model_path is not None else None
    return _cached_reader(key, device, reader)


@lru_cache(maxsize=4)
def _cached_reader(model_path: str | None, device: str, reader: ReaderKind) -> PlateReader:
    # imgsz=None: the size the weights were trained at, which the seed's plain YOLO call used.
    return PlateReader(model_path, device=device, imgsz=None, reader=reader)
