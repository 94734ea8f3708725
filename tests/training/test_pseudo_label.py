"""Pseudo-labelling: a crop is kept only where both readers agree, with the detector's boxes."""

from pathlib import Path

import cv2
import numpy as np

from plate_ocr.constants import CLASS_NAMES
from reader.postprocess import OcrResult
from schemas.reading import CharacterReading
from training.pseudo_label import pseudo_label, yolo_lines


def _result(text: str, *, rows: int = 1) -> OcrResult:
    chars = tuple(
        CharacterReading(
            char=c, confidence=0.9, box=(10.0 + 20 * i, 5.0, 28.0 + 20 * i, 35.0), row=0
        )
        for i, c in enumerate(text)
    )
    return OcrResult(text=text, confidence=0.9, characters=chars, rows=rows if text else 0)


def _crops(tmp_path: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / "in" / f"{name}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.full((40, 200, 3), 200, np.uint8))
        paths.append(path)
    return paths


def test_only_crops_both_readers_agree_on_are_kept(tmp_path: Path) -> None:
    files = _crops(tmp_path, ["agree", "differ", "short", "two_rows"])
    ours = {
        "agree": _result("7ABC123"),
        "differ": _result("7ABC128"),
        "short": _result("AB1"),
        "two_rows": _result("ABC1234", rows=2),
    }
    theirs = {"agree": "7abc-123", "differ": "7ABC123", "short": "AB1", "two_rows": "ABC1234"}
    order = iter(f.stem for f in files)
    current: list[str] = []

    def detector(images: list[np.ndarray]) -> list[OcrResult]:
        current.append(next(order))
        return [ours[current[-1]]]

    decided = pseudo_label(
        files, tmp_path / "out", detector=detector, second=lambda _: theirs[current[-1]]
    )
    assert [d.kept for d in decided] == [True, False, False, False]
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["agree.jpg"]
    labels = (tmp_path / "out" / "labels" / "agree.txt").read_text().split()
    assert labels[0::5] == [str(CLASS_NAMES.index(c)) for c in "7ABC123"]
    csv_text = (tmp_path / "out" / "pseudo_labels.csv").read_text()
    assert "agree.jpg,7ABC123,7ABC123,7ABC123,True" in csv_text


def test_yolo_lines_are_normalised_centres_and_sizes() -> None:
    (line,) = yolo_lines(_result("A"), (40, 200))
    cls, cx, cy, w, h = line.split()
    assert int(cls) == CLASS_NAMES.index("A")
    assert float(cx) == 19 / 200 and float(cy) == 20 / 40
    assert float(w) == 18 / 200 and float(h) == 30 / 40
