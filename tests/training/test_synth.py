"""The synthetic plate generator: determinism, exact labelled boxes, unlabelled distractors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")

from training.synth import generate_dataset, main, render_plate
from training.synth_render import render_flat
from training.synth_text import CLASS_NAMES


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in {".jpg", ".txt", ".yaml"}:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_class_names_are_digits_then_letters() -> None:
    assert len(CLASS_NAMES) == 36
    assert CLASS_NAMES[:10] == tuple("0123456789")
    assert CLASS_NAMES[10] == "A" and CLASS_NAMES[35] == "Z"


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", count=12, seed=7).parent
    b = generate_dataset(tmp_path / "b", count=12, seed=7, workers=2).parent
    c = generate_dataset(tmp_path / "c", count=12, seed=8).parent
    # data.yaml holds the absolute path, so compare the image/label bytes only.
    strip = {".jpg", ".txt"}
    da = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.suffix in strip}
    db = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.suffix in strip}
    dc = {p.relative_to(c): p.read_bytes() for p in c.rglob("*") if p.suffix in strip}
    assert da == db
    assert list(da.values()) != list(dc.values())
    assert len(list((a / "images" / "val").glob("*.jpg"))) == 1
    assert len(list((a / "images" / "train").glob("*.jpg"))) == 11


def test_boxes_match_text_and_stay_inside() -> None:
    for i in range(60):
        img, text, boxes = render_plate(np.random.default_rng([11, i]))
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.ndim == 3
        assert 5 <= len(text) <= 8 or 2 <= len(text) <= 7
        assert [b[0] for b in boxes] == list(text)
        for _, x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        # reading order: boxes run left to right
        centres = [(b[1] + b[3]) / 2 for b in boxes]
        assert centres == sorted(centres)


def test_boxes_cover_the_ink_of_their_character() -> None:
    # On the flat plate the index map marks each character's ink; the distractors (state name,
    # slogan, stickers, stacked letters, separators) must carry no index at all.
    for i in range(30):
        flat = render_flat(np.random.default_rng([5, i]))
        labelled = flat.index_map > 0
        assert set(np.unique(flat.index_map[labelled]).tolist()) == set(
            range(1, len(flat.text) + 1)
        )
        # State names, slogans and bolts sit above/below the serial band and stacked letters
        # beside it, so labelled ink spans one cap height, never the whole plate.
        ys, _ = np.nonzero(labelled)
        assert ys.max() - ys.min() <= 0.65 * flat.image.shape[0]
        assert labelled.mean() < 0.5


def test_label_files_are_valid_yolo(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "d", count=10, seed=1, val_fraction=0.2)
    text = data.read_text()
    assert "nc: 36" in text and "  10: 'A'" in text and "  0: '0'" in text
    for lab in (tmp_path / "d" / "labels").rglob("*.txt"):
        rows = [line.split() for line in lab.read_text().splitlines()]
        assert rows
        for cls, *xywh in rows:
            assert 0 <= int(cls) < 36
            cx, cy, bw, bh = map(float, xywh)
            assert 0 < bw <= 1 and 0 < bh <= 1
            assert cx - bw / 2 + 1e-6 >= 0 and cx + bw / 2 <= 1 + 1e-6
            assert cy - bh / 2 + 1e-6 >= 0 and cy + bh / 2 <= 1 + 1e-6


def test_cli_writes_dataset(tmp_path: Path) -> None:
    assert main([str(tmp_path / "cli"), "--count", "4", "--seed", "2"]) == 0
    assert (tmp_path / "cli" / "data.yaml").is_file()
    assert _digest(tmp_path / "cli" / "labels")


def test_legibility_separates_ink_from_plate() -> None:
    from training.synth_augment import legibility

    img = np.full((20, 40, 3), 220, np.uint8)
    ink = np.zeros((20, 40), bool)
    ink[5:15, 10:12] = True
    ink[5:15, 20:22] = True
    assert legibility(img, ink) == 0.0  # ink the same grey as the plate: unreadable
    img[ink] = 30
    assert legibility(img, ink) > 150
    assert legibility(img, np.zeros_like(ink)) == 0.0


def test_die_letters_have_a_short_v_and_w_is_m_upside_down() -> None:
    from training.synth_dies import die_m, die_w
    from training.synth_fonts import plate_fonts

    font = plate_fonts()[0][0]
    m = die_m(font, 0.3, 0.5)
    h, w = m.shape
    middle = m[:, w // 2 - 1 : w // 2 + 2].max(axis=1) > 0  # ink down the centre column
    assert middle[: int(h * 0.25)].any() and not middle[int(h * 0.5) :].any()
    assert m[:, 0].all() and m[:, -1].all()  # two full-height legs, no crossbar
    assert abs(w / h - 0.5) < 0.05
    assert np.array_equal(die_w(font, 0.3, 0.5), m[::-1])
    assert die_m(font, 0.58, 0.5)[int(h * 0.55), w // 2] > 0  # a deeper V reaches lower


def test_generator_renders_only_with_its_bundled_fonts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same seed must give the same data on any machine, so no system font may be opened.
    from PIL import ImageFont

    from training import synth_fonts

    opened: list[Path] = []
    real = ImageFont.truetype

    def spy(font: str, *args: object, **kwargs: object) -> ImageFont.FreeTypeFont:
        opened.append(Path(font))
        return real(font, *args, **kwargs)  # type: ignore[arg-type]

    caches = (synth_fonts._font, synth_fonts.glyph_mask, synth_fonts._text_mask)
    for cached in caches:
        cached.cache_clear()
    monkeypatch.setattr(ImageFont, "truetype", spy)
    try:
        for i in range(20):
            render_plate(np.random.default_rng([3, i]))
    finally:
        for cached in caches:
            cached.cache_clear()
    assert opened
    assert all(p.resolve().is_relative_to(synth_fonts.FONT_DIR) for p in opened), opened
    for family in {p.resolve().parent for p in opened}:
        assert "SIL Open Font License" in (family / "OFL.txt").read_text()
