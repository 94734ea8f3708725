"""Pseudo-labels for the line recogniser: a crop is kept only where three readers agree, each
asked only while the crop can still pass, and the manifest says why for every crop."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TypedDict

import cv2
import numpy as np
import pytest

from reader.postprocess import OcrResult
from schemas.reading import CharacterReading
from training.line_labels import LINE_LABEL_FIELDS, decide, label_lines, line_box, read_manifest


class Limits(TypedDict):
    min_confidence: float
    min_detector_confidence: float
    min_chars: int


LIMITS: Limits = {"min_confidence": 0.9, "min_detector_confidence": 0.2, "min_chars": 4}


def reading(text: str, confidence: float, *, rows: int = 1) -> OcrResult:
    chars = tuple(
        CharacterReading(
            char=c, confidence=confidence, box=(10.0 + 20 * i, 10.0, 28.0 + 20 * i, 40.0), row=0
        )
        for i, c in enumerate(text)
    )
    return OcrResult(text=text, confidence=confidence, characters=chars, rows=rows if text else 0)


@pytest.mark.parametrize(
    ("fused", "detector", "rapidocr", "how"),
    [
        (reading("ABC123", 0.95), reading("ABC123", 0.3), "ABC-123", "agree"),
        (reading("ABC0123", 0.95), reading("ABCO123", 0.3), "abc0123", "agree"),  # O folds to 0
        (reading("ABC123", 0.95), reading("ABC123", 0.3), "ABC128", "rapidocr disagrees"),
        (reading("ABC123", 0.95), reading("A8C123", 0.9), None, "detector disagrees"),
        (reading("ABC123", 0.95), reading("ABC123", 0.1), None, "detector not confident"),
        (reading("ABC123", 0.95), None, None, "detector not asked"),
        (reading("ABC123", 0.95), reading("ABC123", 0.3), None, "rapidocr not asked"),
        (reading("ABC123", 0.5), None, None, "fused not confident"),
        (reading("AB1", 0.99), None, None, "too short"),
        (reading("ABC123", 0.99, rows=2), None, None, "not one row"),
    ],
)
def test_decide(
    fused: OcrResult, detector: OcrResult | None, rapidocr: str | None, how: str
) -> None:
    assert decide(fused, detector, rapidocr, **LIMITS) == how


def test_only_agreeing_crops_are_kept_and_costly_readers_asked_only_when_needed(
    tmp_path: Path,
) -> None:
    files = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.jpg"
        cv2.imwrite(str(path), np.full((60, 160, 3), 200, np.uint8))
        files.append(path)
    fused = {"a": reading("ABC123", 0.95), "b": reading("XYZ789", 0.95), "c": reading("Q1", 0.99)}
    asked: list[str] = []
    order = iter(["a", "b", "c"])
    current: list[str] = []

    def fused_reader(images: list[np.ndarray]) -> list[OcrResult]:
        current[:] = [next(order)]
        return [fused[current[0]]]

    def detector(images: list[np.ndarray]) -> list[OcrResult]:
        asked.append(f"detector {current[0]}")
        return [fused[current[0]]]

    def rapidocr(image: np.ndarray) -> str:
        asked.append(f"rapidocr {current[0]}")
        return "ABC 123" if current[0] == "a" else "XYZ"

    rows = list(
        label_lines(files, fused=fused_reader, detector=detector, rapidocr=rapidocr, **LIMITS)
    )
    assert [r["how"] for r in rows] == ["agree", "rapidocr disagrees", "too short"]
    assert asked == ["detector a", "rapidocr a", "detector b", "rapidocr b"]
    assert rows[0]["label"] == "ABC123" and rows[1]["label"] == ""
    # The line box is the reader's serial region: the boxes widened by its margins.
    x1, y1, x2, y2 = line_box(fused["a"], (60, 160))
    assert (int(rows[0]["x1"]), int(rows[0]["y2"])) == (x1, y2)
    assert x1 < 10 and y1 < 10 and x2 > 128 and y2 > 40

    manifest = tmp_path / "labels.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LINE_LABEL_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    kept = read_manifest(manifest)
    assert [(Path(k.file).name, k.text, k.box) for k in kept] == [
        ("a.jpg", "ABC123", (x1, y1, x2, y2))
    ]
