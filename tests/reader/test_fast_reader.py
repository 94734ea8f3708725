"""The fast reader (reader.fast_reader): the shipped network reads whole crops, its characters
carry boxes from the CTC alignment, and PlateReader runs it alone (`reader="fast"`) or in
front of the fused reader's stages (the cascade)."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from plate_ocr.errors import ConfigError, ModelError
from plate_ocr.settings import Settings
from reader.engine import PlateReader
from reader.fast_reader import INPUT_HW, FastReader, bundled_fast_reader_path, grey_input
from reader.recogniser import bundled_recogniser_path

SAMPLES = Path(__file__).resolve().parents[2] / "plate_ocr" / "samples"


@pytest.fixture(scope="module")
def samples() -> list[tuple[np.ndarray, str]]:
    with open(SAMPLES / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(cv2.imread(str(SAMPLES / r["file"])), r["text"]) for r in rows]


@pytest.fixture(scope="module")
def fast() -> FastReader:
    return FastReader(threads=1)


def test_the_shipped_network_reads_the_samples(
    fast: FastReader, samples: list[tuple[np.ndarray, str]]
) -> None:
    results = fast.read([image for image, _ in samples])
    right = sum(r.text == text for r, (_, text) in zip(results, samples, strict=True))
    assert right >= 10, [r.text for r in results]
    for result, (image, _) in zip(results, samples, strict=True):
        assert result.text == result.candidates[0][0]
        assert 0.0 <= result.confidence <= 1.0
        assert result.models == (fast.model_info, None)
        assert result.rows == 1 and len(result.characters) == len(result.text)
        height, width = image.shape[:2]
        lefts = [c.box[0] for c in result.characters]
        assert lefts == sorted(lefts)  # reading order is left to right
        for char in result.characters:
            x1, y1, x2, y2 = char.box
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert char.row == 0


def test_boxes_follow_the_crop_when_it_is_scaled(
    fast: FastReader, samples: list[tuple[np.ndarray, str]]
) -> None:
    image = samples[0][0]
    big = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2))
    small, large = fast.read([image, big])
    assert small.text == large.text
    for a, b in zip(small.characters, large.characters, strict=True):
        assert np.allclose(np.array(b.box), 2 * np.array(a.box), atol=1.0)


def test_grey_crops_read_as_their_colour_ones(
    fast: FastReader, samples: list[tuple[np.ndarray, str]]
) -> None:
    image = samples[1][0]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert grey_input(grey).shape == INPUT_HW
    assert fast.read([grey])[0].text == fast.read([image])[0].text


def test_a_missing_or_foreign_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no fast reader model"):
        FastReader(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="is not a fast reader"):
        FastReader(bundled_recogniser_path())


def test_the_manifest_names_the_shipped_file() -> None:
    import json

    from reader.bundle import file_sha256

    path = bundled_fast_reader_path()
    manifest = json.loads(Path(f"{path}.json").read_text())
    assert manifest["sha256"] == file_sha256(path)
    assert set(manifest["data"]) == {"synthetic", "darkplate", "distilled"}


def test_plate_reader_reads_fast_without_a_detector(
    fast: FastReader, samples: list[tuple[np.ndarray, str]]
) -> None:
    reader = PlateReader(reader="fast", threads=1)
    assert reader.model_info == fast.model_info and reader.recogniser_info is None
    images = [image for image, _ in samples]
    with pytest.raises(ValueError, match="without the character detector"):
        reader.detect(reader.preprocess(images[:1]))
    assert [r.text for r in reader.read_arrays(images)] == [r.text for r in fast.read(images)]
    # From the settings, as the worker builds it (PLATE_OCR_READER=fast).
    settings = Settings.from_env({"PLATE_OCR_READER": "fast"})
    assert PlateReader.from_settings(settings).reader == "fast"


def test_the_fast_reader_on_a_gpu_is_refused_not_moved_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the GPU were there (it is not on CI): the request is refused, not read on the CPU.
    monkeypatch.setattr("reader.engine.resolve_device", lambda device: device)
    with pytest.raises(ConfigError, match="CPU only"):
        PlateReader(reader="fast", device="cuda:0")
    with pytest.raises(ConfigError, match="CPU only"):
        PlateReader(locator="fast", device="cuda:0")


def test_a_detector_runtime_asked_of_a_reader_without_the_detector_is_refused() -> None:
    with pytest.raises(ConfigError, match="runs the character detector"):
        PlateReader(reader="fast", backend="torch")
    with pytest.raises(ConfigError, match="runs the character detector"):
        PlateReader(locator="fast", backend="onnxruntime")


def test_the_fused_reader_locates_with_the_fast_reader_when_asked(
    fast: FastReader, samples: list[tuple[np.ndarray, str]]
) -> None:
    assert PlateReader(threads=1).locator == "detector"  # the default
    reader = PlateReader(threads=1, locator="fast")
    assert reader.locator == "fast" and reader.fast_info is None  # no cascade by default
    assert reader.model_info == fast.model_info
    assert reader.recogniser_info is not None
    images = [image for image, _ in samples]
    results = reader.read_arrays(images)
    assert sum(r.text == text for r, (_, text) in zip(results, samples, strict=True)) >= 11
    # Its characters are the recogniser's, fused with the fast reader's; none is the fast
    # reader's own reading (that is the cascade's, below).
    assert all(r.models is None for r in results)
    with pytest.raises(ValueError, match="without the character detector"):
        reader.detect(reader.preprocess(images[:1]))


@pytest.mark.parametrize("locator", ["fast", "detector"])
def test_the_cascade_keeps_confident_fast_readings_and_reads_the_rest_in_two_stages(
    samples: list[tuple[np.ndarray, str]], locator: str
) -> None:
    images = [image for image, _ in samples]
    fused = PlateReader(threads=1, locator=locator).read_arrays(images)  # type: ignore[arg-type]
    fast = PlateReader(reader="fast", threads=1).read_arrays(images)
    # Everything through the fast reader, (all but) nothing through it, a split in between.
    for threshold in (0.0, 1.0, float(np.median([r.confidence for r in fast]))):
        cascade = PlateReader(threads=1, cascade_confidence=threshold, locator=locator)  # type: ignore[arg-type]
        assert cascade.fast_info is not None
        got = cascade.read_arrays(images)
        for result, quick, slow in zip(got, fast, fused, strict=True):
            expected = quick if quick.confidence >= threshold else slow
            assert result.text == expected.text
            assert result.confidence == pytest.approx(expected.confidence)
            if quick.confidence >= threshold:
                assert result.models == (cascade.fast_info, None)
            else:
                assert result.models is None  # the reader's own: its locator and recogniser
