"""PlateReader on small untrained checkpoints built by conftest (and on the real weights when
the lead has dropped them into reader/models/)."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from plate_ocr.errors import DeviceUnavailable, JobError, ModelError
from reader.engine import PlateReader, bundled_model_path
from reader.postprocess import OcrResult
from reader.views import View
from schemas.codes import ErrorCode


@pytest.fixture(scope="module")
def sevens(sevens_model_path: Path) -> PlateReader:
    return PlateReader(sevens_model_path, reader="detector", imgsz=128)


def _plate() -> np.ndarray:
    image = np.full((48, 160, 3), 200, dtype=np.uint8)
    image[10:38, 20:140] = 30
    return image


def test_a_36_class_model_loads_with_its_identity(
    char_model_path: Path, trained_imgsz: int
) -> None:
    reader = PlateReader(char_model_path, imgsz=None)
    assert reader.device == "cpu"
    assert reader.imgsz == trained_imgsz  # None: the size the weights were trained at
    assert reader.model_info.name == "chars36"
    assert reader.model_info.sha256 == hashlib.sha256(char_model_path.read_bytes()).hexdigest()
    assert reader.read(_plate()) == OcrResult(text="", confidence=0.0, characters=(), rows=0)


def test_a_model_with_other_classes_is_refused(coco_model_path: Path) -> None:
    with pytest.raises(ModelError, match=r"80 classes \(person, bicycle, class2"):
        PlateReader(coco_model_path)


def test_missing_weights_are_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model weights at"):
        PlateReader(tmp_path / "nope.pt")


def test_missing_bundled_weights_say_how_to_point_elsewhere() -> None:
    if bundled_model_path().is_file():
        pytest.skip("bundled weights are installed")
    with pytest.raises(ModelError, match="PLATE_OCR_MODEL_PATH"):
        PlateReader()


def test_a_corrupt_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04 this is not a checkpoint")
    with pytest.raises(ModelError, match="cannot load model weights"):
        PlateReader(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_gpu_fails_before_loading(char_model_path: Path) -> None:
    with pytest.raises(DeviceUnavailable):
        PlateReader(char_model_path, device="cuda:0")


def test_detections_become_ordered_characters(sevens: PlateReader) -> None:
    result = sevens.read(_plate())
    assert result.text and set(result.text) == {"7"}
    assert result.rows in (1, 2)
    assert result.features is not None
    assert result.features.min_char == min(c.confidence for c in result.characters) > 0.25
    assert 0.0 < result.confidence <= 1.0  # calibrated (reader.calibration), not the raw minimum
    for c in result.characters:
        x1, y1, x2, y2 = c.box
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 48  # crop pixels, not letterbox pixels


def test_bytes_paths_and_arrays_read_the_same(sevens: PlateReader, tmp_path: Path) -> None:
    ok, png = cv2.imencode(".png", _plate())
    assert ok
    path = tmp_path / "plate.png"
    path.write_bytes(png.tobytes())
    from_array = sevens.read(_plate())
    assert sevens.read(png.tobytes()) == from_array
    assert sevens.read(path) == from_array
    assert sevens.read(str(path)) == from_array
    assert sevens.read(_plate()[:, :, 0]) == from_array  # gray arrays are converted


def test_a_batch_of_mixed_sizes_keeps_its_order(sevens: PlateReader) -> None:
    small, large = _plate(), np.asarray(cv2.resize(_plate(), (320, 96)), dtype=np.uint8)
    batch = sevens.read_arrays([small, large, small])
    assert len(batch) == 3
    alone = sevens.read(small)
    # The same crop reads the same wherever it sits in a batch; floats may differ in the last
    # bits between batch sizes (torch picks kernels by shape), so those are compared closely.
    for result in (batch[0], batch[2]):
        assert result.text == alone.text and result.rows == alone.rows
        assert result.confidence == pytest.approx(alone.confidence, abs=1e-4)
        for got, want in zip(result.characters, alone.characters, strict=True):
            assert got.box == pytest.approx(want.box, abs=0.05)
    assert max(c.box[2] for c in batch[1].characters) > 160  # scaled back to the large crop
    assert sevens.read_arrays([]) == []


def test_a_bad_image_raises_its_job_error(sevens: PlateReader) -> None:
    with pytest.raises(JobError) as e:
        sevens.read_batch([_plate(), b"garbage"])
    assert e.value.code is ErrorCode.UNDECODABLE_IMAGE


def test_naive_reader_keeps_every_box_sorted_by_left_edge(
    sevens: PlateReader, sevens_model_path: Path
) -> None:
    naive = PlateReader(sevens_model_path, reader="detector", imgsz=128, naive=True)
    seed = naive.read(_plate())
    assert len(seed.text) > len(sevens.read(_plate()).text)
    lefts = [c.box[0] for c in seed.characters]
    assert lefts == sorted(lefts)


@pytest.mark.model
def test_bundled_model_reads_nothing_on_a_blank_plate(bundled_model: Path) -> None:
    reader = PlateReader(bundled_model)
    assert reader.model_info.name == bundled_model.stem
    assert reader.read(np.full((80, 240, 3), 255, dtype=np.uint8)).text == ""


@pytest.mark.model
def test_bundled_model_reads_the_bundled_samples(bundled_model: Path) -> None:
    import csv

    from plate_ocr.demo import sample_dir
    from training.evaluate import align

    with (sample_dir() / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    reader = PlateReader(bundled_model)
    texts = [r.text for r in reader.read_batch([sample_dir() / row["file"] for row in rows])]
    errors = sum(len(align(row["text"], text)) for row, text in zip(rows, texts, strict=True))
    # A floor, not the model's figure (that is the model card's, on real plates): a model that
    # cannot read our own clean synthetic samples is broken.
    assert errors / sum(len(row["text"]) for row in rows) <= 0.25, texts


@pytest.mark.model
def test_the_fused_pipeline_reads_a_large_batch_as_each_crop_alone(bundled_model: Path) -> None:
    from plate_ocr.demo import sample_dir
    from reader.engine import _PIPELINE_CHUNK

    # More crops than one pipeline chunk, so the two stages overlap across chunks.
    files = sorted(sample_dir().glob("*.jpg")) * 2
    reader = PlateReader(bundled_model)
    together = reader.read_batch(files)
    alone = [reader.read(f) for f in files]
    assert len(files) > _PIPELINE_CHUNK
    # Batched model calls may differ from single ones in the last float bits, no more.
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.confidence for r in together] == pytest.approx([r.confidence for r in alone])
    boxes = [c.box for r in together for c in r.characters]
    assert np.allclose(boxes, [c.box for r in alone for c in r.characters], atol=1e-3)


def test_other_weights_read_one_view_uncalibrated(sevens: PlateReader) -> None:
    from reader.views import IDENTITY

    # The bundled calibration names the bundled detector; these weights are not it.
    assert sevens.views == (IDENTITY,)
    assert sevens.read(_plate()).confidence == pytest.approx(
        min((c.confidence for c in sevens.read(_plate()).characters), default=0.0)
    )


@pytest.mark.model
def test_the_bundled_detector_reads_in_its_views_and_needs_the_crops(bundled_model: Path) -> None:
    from reader.detector import PlateBatch
    from reader.views import DETECTOR_VIEWS, combine

    reader = PlateReader(bundled_model, reader="detector")
    assert reader.views == DETECTOR_VIEWS
    crops = [cv2.imread(str(f)) for f in sorted(_samples().glob("*.jpg"))[:3]]
    batch = reader.preprocess(crops)
    together = reader.detect(batch)
    alone = PlateReader(bundled_model, reader="fused")  # one view, the crop as it is
    per_view = [
        _one_view(alone, view, crops, reader.detect_confidence()) for view in DETECTOR_VIEWS
    ]
    for i, found in enumerate(together):
        expected = combine([views[i] for views in per_view])
        assert np.allclose(found.xyxy, expected.xyxy, atol=1e-3)
        assert np.allclose(found.class_scores, expected.class_scores, atol=1e-4)
    with pytest.raises(ValueError, match="crops"):
        reader.detect(PlateBatch(pixels=batch.pixels, shapes=batch.shapes))


def _samples() -> Path:
    from plate_ocr.demo import sample_dir

    return sample_dir()


def _one_view(reader: PlateReader, view: "View", crops: list[np.ndarray], floor: float) -> list:
    found = reader.detect(reader.preprocess([view.apply(c) for c in crops]), confidence=floor)
    return [view.to_crop(f, c.shape[:2]) for f, c in zip(found, crops, strict=True)]


def test_a_calibration_file_for_these_weights_is_read_and_one_for_others_refused(
    sevens_model_path: Path, tmp_path: Path
) -> None:
    import json

    from plate_ocr.errors import ConfigError
    from plate_ocr.settings import Settings
    from reader.views import IDENTITY, View

    sha = hashlib.sha256(sevens_model_path.read_bytes()).hexdigest()
    path = tmp_path / "calibration.json"
    views = [{"stretch": 1.0, "margin": 0.0}, {"stretch": 1.4, "margin": 0.0}]
    path.write_text(json.dumps({"readers": {}, "detector_views": views, "detector_sha256": sha}))
    settings = Settings(model_path=sevens_model_path, imgsz=128, calibration_path=path)
    reader = PlateReader.from_settings(settings, reader="detector")
    assert reader.views == (IDENTITY, View(stretch=1.4))
    assert all(0 <= c.box[0] < c.box[2] <= 160 for c in reader.read(_plate()).characters)

    path.write_text(json.dumps({"readers": {}, "detector_sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="fitted for detector 000000000000, not these weights"):
        PlateReader.from_settings(settings, reader="detector")
    with pytest.raises(ModelError, match="no calibration file"):
        PlateReader.from_settings(settings.model_copy(update={"calibration_path": tmp_path / "x"}))
