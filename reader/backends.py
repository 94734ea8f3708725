"""The runtimes a `PlateReader` can run its detector on: PyTorch, or an export of the same weights.

Every backend takes one (N, 3, H, W) float batch at the reader's single input shape and returns
the raw detection head (N, 4 + 36, anchors); NMS, box scaling and character ordering stay in the
engine, so the backends differ only in how the network itself is computed.

The light install's runtime is not here: `onnxruntime` (reader.onnx_detector) runs the shipped
ONNX with numpy NMS and no torch. These need the `[gpu]` extra (torch, ultralytics):

    torch     the checkpoint itself (Conv+BN fused), any device
    onnx      ONNX Runtime, CPU (needs the `export` extra: onnx, onnxslim, onnxruntime)
    openvino  OpenVINO, CPU (needs the `export` extra: openvino)
    engine    TensorRT FP16, CUDA only (needs the `engine` extra: tensorrt, onnx, onnxslim, and
              for TensorRT 11 nvidia-modelopt; a missing one is named before anything runs)

Exports are made on first use and cached, one folder per (weights hash, input shape); nothing is
ever downloaded. ultralytics writes an export next to the `.pt` it exports, so the weights are
copied into a scratch folder first: the package's `models/` folder may be read-only, and two
workers exporting at once must not see each other's half-written files (the finished export is
moved into place with one rename), and one export of a folder runs at a time (a file lock:
the other workers of a device wait for it, then load it).

Measured with bench/agreement.py on 300 plates of the real dev set (epoch-3 weights, 128x256,
CPU): onnx and openvino read 300/300 texts exactly as torch, confidences within 4e-6 and boxes
within 1e-4 px. TensorRT is unmeasured (no GPU there).
"""

import fcntl
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from plate_ocr.errors import ConfigError, DeviceUnavailable, ModelError

__all__ = ["BACKENDS", "default_cache_dir", "export_model", "load_backend"]

BACKENDS: Final = ("torch", "onnx", "openvino", "engine")


@dataclass(frozen=True, slots=True)
class _Export:
    format: str  # ultralytics' export format name
    suffix: str  # what ultralytics appends to the weights' stem
    needs: tuple[str, ...]  # importable modules the runtime needs
    quantize: int | None  # ultralytics' export precision: 16 for FP16, None for as trained


_EXPORTS: Final = {
    # ultralytics exports ONNX first (simplified by onnxslim) for both of these.
    "onnx": _Export("onnx", ".onnx", ("onnx", "onnxslim", "onnxruntime"), quantize=None),
    "openvino": _Export("openvino", "_openvino_model", ("openvino",), quantize=None),
    # FP16 is where TensorRT's speed comes from. Its agreement with torch has not been measured
    # (no GPU where this was written): run bench/agreement.py --backends engine on the GPU box.
    # TensorRT 11 builds strongly typed networks only: ultralytics bakes FP16 into the ONNX with
    # NVIDIA ModelOpt first (_needs adds it).
    "engine": _Export("engine", ".engine", ("tensorrt", "onnx", "onnxslim"), quantize=16),
}
# What to install for each module a runtime imports, by its pip name.
_PIP_NAMES: Final = {
    "tensorrt": "tensorrt-cu13 (NVIDIA's wheel; tensorrt-cu12 on a CUDA 12 host)",
    "modelopt.onnx": "nvidia-modelopt[onnx]",
}
_EXTRA: Final = {"engine": "plate-ocr-stream[engine]", "onnx": "plate-ocr-stream[export]"}
_LOCK_NAME: Final = ".export.lock"


def default_cache_dir() -> Path:
    """`~/.cache/plate-ocr/exports`: where exports live unless a cache dir is given."""
    return Path.home() / ".cache" / "plate-ocr" / "exports"


def load_backend(
    backend: str,
    *,
    model: torch.nn.Module,
    weights: Path,
    sha256: str,
    device: str,
    input_hw: tuple[int, int],
    max_batch: int,
    cache_dir: Path | None = None,
) -> Any:
    """An ultralytics `AutoBackend` running `model` (loaded from `weights`) the chosen way.

    Raises ConfigError for an unknown backend or a backend that cannot run on `device`,
    DeviceUnavailable when TensorRT is asked for without CUDA, ModelError when exporting fails.
    """
    from ultralytics.nn.autobackend import AutoBackend

    if backend == "torch":
        # FP16 on CUDA, as TensorRT runs: half the memory traffic, tensor cores. Its agreement
        # with FP32 is unmeasured here (no GPU): bench/agreement.py on the GPU box says.
        fp16 = device.startswith("cuda")
        return AutoBackend(
            model=model, device=torch.device(device), fuse=True, fp16=fp16, verbose=False
        )
    path = export_model(
        weights,
        backend=backend,
        sha256=sha256,
        device=device,
        input_hw=input_hw,
        max_batch=max_batch,
        cache_dir=cache_dir,
    )
    if backend == "onnx":
        return _OnnxRuntime(path)
    if backend == "openvino":
        return _OpenVinoRuntime(path)
    return AutoBackend(str(path), device=torch.device(device), fp16=True, verbose=False)


class _OnnxRuntime:
    """ONNX Runtime on the CPU, with the process's thread budget (torch.get_num_threads()):
    its default, one thread per core, fights the other workers on a shared node."""

    fp16 = False
    end2end = False

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        (out, *_) = self._session.run(None, {self._input: np.ascontiguousarray(pixels.numpy())})
        return torch.from_numpy(out)


class _OpenVinoRuntime:
    """OpenVINO on the CPU, same thread budget, in f32. OpenVINO's own default on CPUs with AMX
    is bf16: 2.5x faster again, but it read 7% of 200 real plates differently from torch
    (epoch-1 weights), far outside the 1% this backend promises."""

    fp16 = False
    end2end = False

    def __init__(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        xml = next(path.glob("*.xml"))
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._compiled(np.ascontiguousarray(pixels.numpy()))[0])


def export_model(
    weights: Path,
    *,
    backend: str,
    sha256: str,
    device: str = "cpu",
    input_hw: tuple[int, int],
    max_batch: int,
    cache_dir: Path | None = None,
) -> Path:
    """The cached export of `weights` for `backend`, made now if missing. Returns its path."""
    spec = _check(backend, device)
    height, width = input_hw
    tag = f"{weights.stem}-{sha256[:12]}-{height}x{width}"
    if backend == "engine":
        # An engine is built for one GPU model, a maximum batch and one TensorRT version: an
        # engine from another TensorRT does not deserialise (or, across minor versions, is
        # refused), so each version gets its own.
        gpu = torch.cuda.get_device_name(torch.device(device)).replace(" ", "_")
        tag += f"-b{max_batch}-{gpu}-trt{_tensorrt_version()}"
    folder = (cache_dir or default_cache_dir()) / tag
    target = folder / f"{weights.stem}{spec.suffix}"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # One export at a time per folder, across processes: `--procs-per-device N` starts N
    # workers that would otherwise build the same engine N times at once (minutes each, and
    # N times the GPU memory). The others wait, then find the finished export.
    with _locked(folder / _LOCK_NAME):
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
            local = Path(scratch) / weights.name
            shutil.copyfile(weights, local)
            made = _run_export(local, spec, device=device, input_hw=input_hw, max_batch=max_batch)
            os.rename(made, target)
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, held for the block; the kernel drops it if we die."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tensorrt_version() -> str:
    import tensorrt

    return str(tensorrt.__version__)


def _tensorrt_major() -> int:
    return int(_tensorrt_version().split(".", 1)[0])


def _check(backend: str, device: str) -> _Export:
    if backend not in _EXPORTS:
        raise ConfigError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    spec = _EXPORTS[backend]
    if backend == "engine":
        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"the TensorRT backend runs on a CUDA device only (asked for {device!r}, "
                f"CUDA available: {torch.cuda.is_available()}); use --backend torch, onnx or "
                "openvino on a CPU"
            )
    elif device != "cpu":
        raise ConfigError(f"the {backend} backend runs on the CPU here; use --device cpu")
    missing = [module for module in _needs(backend, spec) if not _importable(module)]
    if missing:
        names = ", ".join(_PIP_NAMES.get(m, m) for m in missing)
        extra = _EXTRA.get(backend, "plate-ocr-stream[export]")
        raise ConfigError(
            f"the {backend} backend needs {', '.join(missing)}, not installed here: install "
            f"{names} (pip install '{extra}')"
        )
    return spec


def _needs(backend: str, spec: _Export) -> list[str]:
    needs = list(spec.needs)
    if backend == "engine" and _importable("tensorrt") and _tensorrt_major() >= 11:
        needs.append("modelopt.onnx")
    return needs


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _run_export(
    local: Path, spec: _Export, *, device: str, input_hw: tuple[int, int], max_batch: int
) -> Path:
    from ultralytics.models.yolo.model import YOLO

    try:
        made = YOLO(str(local), task="detect").export(
            format=spec.format,
            imgsz=list(input_hw),
            # Dynamic batch: one export serves any batch size the worker takes; for TensorRT,
            # `batch` is the largest batch of its optimisation profile.
            dynamic=True,
            batch=max_batch if spec.format == "engine" else 1,
            quantize=spec.quantize,
            simplify=True,
            device=device,
            verbose=False,
        )
    except Exception as e:  # exporters raise whatever their toolchain raises
        raise ModelError(f"exporting {local.name} to {spec.format} failed: {e}") from e
    return Path(str(made))
