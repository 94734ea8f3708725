"""The PP-OCR line recogniser on lines drawn with OpenCV's built-in (file-free) Hershey font."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from plate_ocr.errors import ModelError
from reader.recogniser import BLANK, OTHER, LineRecogniser, ppocr_recogniser_path


def _line(text: str, *, scale: float = 2.0) -> np.ndarray:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 4)
    image = np.full((h + base + 30, w + 30, 3), 255, np.uint8)
    cv2.putText(image, text, (15, h + 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4)
    return image


def _whole(image: np.ndarray) -> tuple[int, int, int, int]:
    return (0, 0, image.shape[1], image.shape[0])


@pytest.fixture(scope="module")
def recogniser() -> LineRecogniser:
    return LineRecogniser(threads=1)


def test_a_clean_line_is_read_exactly(recogniser: LineRecogniser) -> None:
    image = _line("7ABC123")
    (read,) = recogniser.read_lines(image, [_whole(image)])
    assert read.text == "7ABC123"


def test_lower_case_folds_onto_the_plate_alphabet(recogniser: LineRecogniser) -> None:
    image = _line("xyz")
    (read,) = recogniser.read_lines(image, [_whole(image)])
    assert read.text == "XYZ"


def test_steps_are_distributions_over_blank_classes_and_other(
    recogniser: LineRecogniser,
) -> None:
    image = _line("K9")
    (read,) = recogniser.read_lines(image, [_whole(image)])
    assert read.probs.shape[1] == OTHER + 1
    np.testing.assert_allclose(read.probs.sum(axis=1), 1.0, atol=1e-3)
    assert read.probs[:, BLANK].max() > 0.5  # CTC: most steps are blank


def test_characters_lie_left_to_right_inside_the_line(recogniser: LineRecogniser) -> None:
    image = _line("AB12")
    box = (5, 0, image.shape[1] - 5, image.shape[0])
    (read,) = recogniser.read_lines(image, [box])
    xs = [c.x for c in read.characters()]
    assert xs == sorted(xs)
    assert box[0] < xs[0] < xs[-1] < box[2]
    # the first glyph sits in the left quarter, the last in the right quarter
    width = box[2] - box[0]
    assert xs[0] < box[0] + width / 4 and xs[-1] > box[2] - width / 4


def test_a_batch_reads_as_each_line_alone(recogniser: LineRecogniser) -> None:
    lines = [_line(t) for t in ("AB", "7ABC123", "T123456C", "XY9")]
    alone = [recogniser.read_lines(img, [_whole(img)])[0].text for img in lines]
    together = [r.text for r in recogniser.read_batch([(img, _whole(img)) for img in lines])]
    assert together == alone == ["AB", "7ABC123", "T123456C", "XY9"]


def test_a_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no recogniser model"):
        LineRecogniser(tmp_path / "nothing.onnx")


def test_a_model_declaring_a_line_height_outside_the_graphs_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    model = onnx.load(str(ppocr_recogniser_path()))
    props = {p.key: p.value for p in model.metadata_props} | {"line_height": "32"}
    helper.set_model_props(model, props)
    path = tmp_path / "low.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="declares line_height '32'"):
        LineRecogniser(path)


def test_a_model_without_a_line_height_reads_at_pp_ocrs_48(recogniser: LineRecogniser) -> None:
    assert recogniser.line_height == 48


def test_the_recogniser_runs_on_the_readers_gpu_when_onnxruntime_can(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from reader.recogniser import _providers

    cuda_and_cpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _providers("cpu", cuda_and_cpu) == ["CPUExecutionProvider"]
    assert _providers("cuda:3", cuda_and_cpu) == [
        ("CUDAExecutionProvider", {"device_id": "3"}),
        "CPUExecutionProvider",
    ]
    # Without onnxruntime-gpu it still reads, on the CPU, and says so.
    with caplog.at_level("WARNING", logger="plate_ocr.reader.recogniser"):
        assert _providers("cuda:0", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert "install onnxruntime-gpu" in caplog.text


def test_calls_run_side_by_side_on_a_pool_and_read_as_in_turn() -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Widths differ, so these lines make several network calls, which the pool runs at once.
    lines = [_line(t, scale=s) for t, s in (("AB", 2.0), ("7ABC123", 1.5), ("T123456C", 2.5))]
    boxes = [(img, _whole(img)) for img in lines] * 3
    in_turn = LineRecogniser(threads=1).read_batch(boxes)
    with ThreadPoolExecutor(max_workers=2) as pool:
        side_by_side = LineRecogniser(threads=1, pool=pool).read_batch(boxes)
    assert [r.text for r in side_by_side] == [r.text for r in in_turn]
    for a, b in zip(side_by_side, in_turn, strict=True):
        assert a.box == b.box
        np.testing.assert_array_equal(a.probs, b.probs)
