"""Device selection never falls back: a missing GPU is an error."""

import pytest
import torch

from plate_ocr.errors import ConfigError, DeviceUnavailable
from reader.device import resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize("spec", ["cpu", " CPU "])
def test_cpu_is_always_there(spec: str) -> None:
    assert resolve_device(spec) == "cpu"


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", "cuda:-1", "mps:0"])
def test_malformed_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:N or N"):
        resolve_device(spec)


@no_cuda
@pytest.mark.parametrize("spec", ["cuda:0", "cuda", "0"])
def test_gpu_without_cuda_raises_instead_of_using_the_cpu(spec: str) -> None:
    with pytest.raises(DeviceUnavailable, match=r"CUDA is not available.*--device cpu"):
        resolve_device(spec)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("spec", "device"), [("cuda", "cuda:0"), ("1", "cuda:1"), ("CUDA:1", "cuda:1")]
)
def test_existing_gpus_are_normalised(spec: str, device: str) -> None:
    assert resolve_device(spec) == device


@pytest.mark.usefixtures("two_gpus")
def test_a_gpu_index_beyond_the_count_names_what_exists() -> None:
    with pytest.raises(DeviceUnavailable, match=r"2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
