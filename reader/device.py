"""Device selection: a worker runs exactly where it was told to, or refuses to start.

A silent fallback to CPU would keep a GPU worker "healthy" while it reads a hundred times more
slowly, so an unavailable device is an error here, never a warning.
"""

import re

from plate_ocr.errors import ConfigError, DeviceUnavailable
from reader.detector import require_torch

__all__ = ["resolve_device"]

_CUDA_SPEC = re.compile(r"(?:cuda:)?(\d+)")


def resolve_device(spec: str) -> str:
    """Normalise "cpu", "cuda", "cuda:N" or "N" to "cpu" or "cuda:N", checking that it exists.

    Raises ConfigError for a spec of another form and DeviceUnavailable when CUDA is missing
    or has no device N.
    """
    text = spec.strip().lower()
    if text == "cpu":
        return "cpu"
    if text == "cuda":
        text = "cuda:0"
    match = _CUDA_SPEC.fullmatch(text)
    if match is None:
        raise ConfigError(f"device {spec!r} is not one of cpu, cuda, cuda:N or N")
    index = int(match.group(1))

    require_torch(f"device {spec!r}")  # the light [cpu] install has no CUDA runtime
    import torch  # only a GPU request pays for importing torch here

    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {spec!r} was requested but CUDA is not available here "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "use --device cpu to run on the CPU"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailable(
            f"device {spec!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return f"cuda:{index}"
