"""The fast path of PlateReader: one plate-shaped input, preprocess apart from infer, and the
exported backends (ONNX Runtime, OpenVINO) reading exactly as torch does."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from plate_ocr.errors import ConfigError, DeviceUnavailable
from plate_ocr.settings import Settings
from reader.backends import export_model
from reader.calibration import Calibration
from reader.engine import PlateBatch, PlateReader, plate_input_hw
from reader.postprocess import order_characters


@pytest.fixture(scope="module")
def sevens(sevens_model_path: Path) -> PlateReader:
    # Without a presence model every confident box is read, so readings compare box for box
    # with ultralytics' own predict: the runtime is under test here, not the decoding.
    return PlateReader(
        sevens_model_path, reader="detector", imgsz=256, calibration=Calibration(models={})
    )


def _crops() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(48, 160), (90, 170)]]
    return [*crops, np.full((200, 120, 3), 30, dtype=np.uint8), np.zeros((40, 40), np.uint8)]


def test_the_input_is_plate_shaped_and_stride_aligned() -> None:
    assert plate_input_hw(256) == (128, 256)
    assert plate_input_hw(320) == (160, 320)
    assert plate_input_hw(224) == (128, 224)  # 112 rounds up to the stride
    assert plate_input_hw(100) == (64, 128)


def test_an_input_shape_off_the_stride_is_refused(char_model_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        PlateReader(char_model_path, input_hw=(100, 256))


def test_preprocess_letterboxes_every_crop_into_one_rgb_batch(sevens: PlateReader) -> None:
    blue = np.zeros((64, 64, 3), dtype=np.uint8)  # scaled x2 to 128x128, grey bars beside it
    blue[..., 0] = 255  # BGR
    batch = sevens.preprocess([blue, *_crops()])
    assert isinstance(batch, PlateBatch) and len(batch) == 5
    assert batch.pixels.shape == (5, 3, 128, 256) and batch.pixels.dtype == torch.float32
    assert batch.shapes == ((64, 64), (48, 160), (90, 170), (200, 120), (40, 40))
    assert batch.pixels[0, 2, 64, 128] == 1.0 and batch.pixels[0, 0, 64, 128] == 0.0  # RGB
    assert batch.pixels[0, :, 64, 0].tolist() == pytest.approx([114 / 255] * 3)  # grey bars


def test_infer_on_a_preprocessed_batch_is_read_arrays(sevens: PlateReader) -> None:
    crops = _crops()
    assert sevens.infer(sevens.preprocess(crops)) == sevens.read_arrays(crops)
    assert sevens.infer(sevens.preprocess([])) == []


def test_readings_match_ultralytics_predict_at_the_same_input(
    sevens: PlateReader, sevens_model_path: Path
) -> None:
    from ultralytics.models.yolo.model import YOLO

    crops = _crops()[:3]
    expected = YOLO(str(sevens_model_path)).predict(
        crops, imgsz=list(sevens.input_hw), rect=False, conf=sevens.confidence, verbose=False
    )
    for result, reading in zip(expected, sevens.read_arrays(crops), strict=True):
        boxes = result.boxes
        ordered = order_characters(
            boxes.xyxy.cpu().numpy(),
            boxes.conf.cpu().numpy(),
            boxes.cls.cpu().numpy(),
            confidence=sevens.confidence,
        )
        assert reading.text and reading.text == ordered.text
        assert reading.characters == ordered.characters and reading.rows == ordered.rows


def test_a_batch_over_max_batch_is_split_and_reads_the_same(sevens_model_path: Path) -> None:
    small = PlateReader(sevens_model_path, reader="detector", imgsz=256, max_batch=2)
    crops = _crops()
    assert small.read_arrays(crops) == [small.read(c) for c in crops]


def test_unknown_and_impossible_backends_are_refused(char_model_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(backend="tflite")
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        PlateReader(char_model_path, backend="tflite")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="CUDA device only"):
            export_model(
                char_model_path, backend="engine", sha256="0" * 64, input_hw=(128, 256),
                max_batch=32,
            )  # fmt: skip


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace, inside the exporters
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_an_exported_backend_computes_what_torch_does_and_is_cached(
    backend: str, sevens: PlateReader, sevens_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")
    exported = PlateReader(
        sevens_model_path, reader="detector", imgsz=256, backend=backend, cache_dir=tmp_path
    )
    batch = sevens.preprocess(_crops())
    # The head's raw output, not the readings: this model scores every anchor alike, so NMS
    # ties break on float noise. Boxes are in input pixels, scores in 0-1.
    got = exported._detector._runtime(batch.pixels)  # type: ignore[attr-defined]
    want = sevens._detector._runtime(batch.pixels)[0]  # type: ignore[attr-defined]  # torch: (y, x)
    assert got.shape == want.shape == (4, 40, 672)
    assert torch.allclose(got[:, :4], want[:, :4], atol=0.05)
    assert torch.allclose(got[:, 4:], want[:, 4:], atol=1e-3)
    made = export_model(
        sevens_model_path, backend=backend, sha256=sevens.model_info.sha256,
        input_hw=sevens.input_hw, max_batch=64, cache_dir=tmp_path,
    )  # fmt: skip
    stamp = made.stat().st_mtime_ns
    PlateReader(
        sevens_model_path, reader="detector", imgsz=256, backend=backend, cache_dir=tmp_path
    )
    assert made.stat().st_mtime_ns == stamp  # reused, not exported again
    assert [p.name for p in tmp_path.iterdir()] == [made.parent.name]  # no scratch left behind
