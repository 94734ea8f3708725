"""The CUDA / TensorRT path, shown on a CPU: fake engine runtimes, a fake tensorrt module, CUDA
checks monkeypatched, ONNX Runtime told it has a CUDA provider it cannot load. Each test here
failed before the fix it names (issue 23)."""

import fcntl
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reader.backends as backends
import reader.torch_detector as torch_detector
from plate_ocr.errors import ConfigError, DeviceUnavailable
from reader.calibration import Calibration
from reader.engine import PlateBatch, PlateReader
from reader.onnx_session import open_session
from reader.recogniser import LineRecogniser, bundled_recogniser_path
from reader.views import DETECTOR_VIEWS

_CROPS = [np.full((40, 120, 3), v, dtype=np.uint8) for v in (40, 90, 140)]


class _FakeEngine:
    """What ultralytics' TensorRT runtime needs of its input: it hands `data_ptr()` to
    `execute_v2` as NCHW, so a strided view would be read as garbage."""

    fp16 = False
    end2end = False

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        assert pixels.is_contiguous(), "TensorRT would read this tensor's memory as NCHW"
        self.calls.append(tuple(pixels.shape))
        n, _, height, width = pixels.shape
        anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
        return torch.zeros((n, 4 + 36, anchors))  # no box scores: nothing is found


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> _FakeEngine:
    engine = _FakeEngine()
    monkeypatch.setattr(torch_detector, "load_backend", lambda backend, **_: engine)
    return engine


def test_an_engine_is_handed_contiguous_nchw_pixels(
    fake_engine: _FakeEngine, char_model_path: Path
) -> None:
    reader = PlateReader(
        char_model_path, reader="detector", backend="engine", calibration=Calibration(models={})
    )
    reader.read_arrays(_CROPS)
    assert fake_engine.calls[-1] == (3, 3, *reader.input_hw)


def test_the_torch_backend_keeps_the_channels_last_view(char_model_path: Path) -> None:
    reader = PlateReader(char_model_path, reader="detector", calibration=Calibration(models={}))
    pixels = reader.preprocess(_CROPS).pixels
    assert pixels.is_contiguous(memory_format=torch.channels_last)  # no copy for torch's convs


def test_the_detectors_views_of_a_batch_run_as_one_call(
    fake_engine: _FakeEngine, char_model_path: Path
) -> None:
    calibration = Calibration(models={}, views=DETECTOR_VIEWS)
    reader = PlateReader(
        char_model_path, reader="detector", backend="engine", max_batch=3, calibration=calibration
    )
    fake_engine.calls.clear()
    reader.read_arrays(_CROPS)
    assert fake_engine.calls == [(len(DETECTOR_VIEWS) * 3, 3, *reader.input_hw)]
    fake_engine.calls.clear()
    reader.read_arrays(_CROPS * 2)  # twice max_batch: two calls, each all the views of 3 crops
    assert [c[0] for c in fake_engine.calls] == [len(DETECTOR_VIEWS) * 3] * 2


def test_the_engine_is_built_for_all_the_views_of_a_batch(
    monkeypatch: pytest.MonkeyPatch, char_model_path: Path
) -> None:
    asked: dict[str, Any] = {}

    def load(backend: str, **kwargs: Any) -> _FakeEngine:
        asked.update(kwargs)
        return _FakeEngine()

    monkeypatch.setattr(torch_detector, "load_backend", load)
    calibration = Calibration(models={}, views=DETECTOR_VIEWS)
    PlateReader(
        char_model_path, reader="detector", backend="engine", max_batch=8, calibration=calibration
    )
    assert asked["max_batch"] == 8 * len(DETECTOR_VIEWS)
    PlateReader(char_model_path, reader="fused", backend="engine", max_batch=8)
    assert asked["max_batch"] == 8  # one view: the crop as it is


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_recogniser_on_cuda_whose_session_comes_back_cpu_only_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime

    # What onnxruntime-gpu with a mismatched cuDNN does: the CUDA provider is listed, the
    # session that asked for it is built on the CPU alone, and no error is raised.
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    with pytest.raises(DeviceUnavailable, match=r"CUDA provider did not load.*CPUExecution"):
        LineRecogniser(device="cuda:0")


def test_onnx_runtime_sessions_never_fall_back_to_the_cpu_on_their_own() -> None:
    session = open_session(bundled_recogniser_path(), threads=1, spinning=False)
    assert session._enable_fallback is False  # a provider error reaches us, not a CPU retry


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A CUDA machine with TensorRT 10 as far as export_model can tell; the build itself is
    replaced by a fake that writes a file (see `exports`)."""
    tensorrt = types.ModuleType("tensorrt")
    tensorrt.__version__ = "10.15.1"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    return tensorrt


def _export(weights: Path, cache: Path, max_batch: int = 64) -> Path:
    return backends.export_model(
        weights, backend="engine", sha256="ab" * 32, device="cuda:0", input_hw=(128, 256),
        max_batch=max_batch, cache_dir=cache,
    )  # fmt: skip


def test_an_engine_export_names_every_package_it_lacks(
    fake_gpu: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_gpu.__version__ = "11.4.0"  # type: ignore[attr-defined]  # FP16 needs ModelOpt
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # None: `import onnxslim` fails
    monkeypatch.setitem(sys.modules, "modelopt", None)
    with pytest.raises(ConfigError) as caught:
        _export(tmp_path / "w.pt", tmp_path)
    message = str(caught.value)
    assert "needs onnxslim, modelopt.onnx" in message
    assert "nvidia-modelopt[onnx]" in message and "plate-ocr-stream[engine]" in message
    assert not list(tmp_path.iterdir())  # refused before anything was made


def test_tensorrt_itself_missing_is_named_with_its_wheel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"needs tensorrt.*install tensorrt-cu13"):
        _export(tmp_path / "w.pt", tmp_path)


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """The builds that ran, each checking that it holds the folder's export lock."""
    made: list[Path] = []

    def build(local: Path, spec: Any, **_: Any) -> Path:
        lock = local.parent.parent / backends._LOCK_NAME
        with lock.open("a") as probe, pytest.raises(BlockingIOError):  # another would wait
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        made.append(local)
        out = local.with_suffix(spec.suffix)
        out.write_bytes(b"engine")
        return out

    monkeypatch.setattr(backends, "_run_export", build)
    return made


def test_the_engine_cache_key_has_the_gpu_batch_and_tensorrt_version(
    fake_gpu: types.ModuleType, exports: list[Path], tmp_path: Path
) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    first = _export(weights, tmp_path / "cache")
    assert first.parent.name.endswith("-b64-NVIDIA_H200-trt10.15.1")
    assert _export(weights, tmp_path / "cache") == first and len(exports) == 1
    fake_gpu.__version__ = "10.16.0"  # type: ignore[attr-defined]
    assert _export(weights, tmp_path / "cache") != first and len(exports) == 2


def test_workers_of_one_device_build_an_engine_once(
    fake_gpu: types.ModuleType, exports: list[Path], tmp_path: Path
) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(_export(weights, tmp_path / "cache")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(exports) == 1 and len(set(results)) == 1 and len(results) == 4


def test_the_runtime_runs_inside_its_device_on_any_thread(
    fake_engine: _FakeEngine, monkeypatch: pytest.MonkeyPatch, char_model_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    reader = PlateReader(
        char_model_path, reader="detector", backend="engine", calibration=Calibration(models={})
    )
    batch = reader.preprocess(_CROPS)
    current: list[str] = []
    seen: list[list[str]] = []

    @contextmanager
    def device(name: str) -> Any:  # torch.cuda.device, recorded: it sets the thread's device
        current.append(name)
        yield
        current.pop()

    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(fake_engine, "calls", _Recorder(seen, current))
    reader._detector.device = "cuda:1"  # type: ignore[attr-defined]  # as loaded on a GPU
    with ThreadPoolExecutor(1) as pool:  # a stage-pool thread, whose current device is 0
        pool.submit(reader._detector.detect, batch, confidence=0.25).result()
    assert seen == [["cuda:1"]] and current == []


class _Recorder(list[tuple[int, ...]]):
    """A fake engine's call log that also notes the devices entered at each call."""

    def __init__(self, seen: list[list[str]], current: list[str]) -> None:
        super().__init__()
        self._seen, self._current = seen, current

    def append(self, shape: tuple[int, ...]) -> None:
        self._seen.append(list(self._current))
        super().append(shape)


class _FakeHeadEngine(_FakeEngine):
    """A runtime whose head has confident, overlapping boxes, so NMS decides things."""

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        empty = super().__call__(pixels)
        g = torch.Generator().manual_seed(7)
        n, _, anchors = empty.shape
        head = torch.rand((n, 40, anchors), generator=g) ** 8 * 0.3
        head[:, :2] = torch.rand((n, 2, anchors), generator=g) * 200 + 20
        head[:, 2:4] = torch.rand((n, 2, anchors), generator=g) * 10 + 20
        head[:, 4 + 7, :200] = 0.3 + 0.6 * torch.rand((n, 200), generator=g)
        return head


def test_on_cuda_the_batch_has_one_nms_call_that_keeps_what_ultralytics_keeps(
    monkeypatch: pytest.MonkeyPatch, char_model_path: Path
) -> None:
    from contextlib import nullcontext

    import reader.torch_nms as torch_nms

    engine = _FakeHeadEngine()
    monkeypatch.setattr(torch_detector, "load_backend", lambda backend, **_: engine)
    calls: list[int] = []

    def counted(head: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(head))
        return torch_nms.batched_nms(head, *args, **kwargs)

    monkeypatch.setattr(torch_detector, "batched_nms", counted)
    monkeypatch.setattr(torch.cuda, "device", lambda name: nullcontext())
    options: dict[str, Any] = {
        "backend": "engine", "imgsz": 256, "input_hw": None, "max_batch": 8, "cache_dir": None,
    }  # fmt: skip
    on_cpu = torch_detector.TorchDetector(char_model_path, device="cpu", **options)
    on_gpu = torch_detector.TorchDetector(char_model_path, device="cuda:0", **options)
    on_gpu.device = "cpu"  # its tensors stay here; the detector was built for a GPU
    canvas = np.full((5, *on_cpu.input_hw, 3), 114, dtype=np.uint8)
    batch = PlateBatch(pixels=on_cpu.to_pixels(canvas), shapes=((64, 128),) * 5)
    want = on_cpu.detect(batch, confidence=0.25)
    got = on_gpu.detect(batch, confidence=0.25)
    assert calls == [5]  # the whole batch in one call
    assert all(len(w) for w in want)
    for w, g in zip(want, got, strict=True):
        assert np.array_equal(w.xyxy, g.xyxy) and np.array_equal(w.classes, g.classes)
        assert np.array_equal(w.class_scores, g.class_scores)
