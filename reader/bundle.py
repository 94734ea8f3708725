"""The model files shipped in the package: the weights, their ONNX export, and its manifest.

`reader/models/plate_ocr_yolo11n.pt` is the trained checkpoint (PyTorch, needs the `[gpu]`
extra). `plate_ocr_yolo11n.onnx` is made from it by `python -m reader.export_onnx`, and
`plate_ocr_yolo11n.onnx.json` (the manifest) records what it was made from: the `.pt`'s name and
sha256, the ONNX file's own sha256, the class names and sizes. ONNX Runtime loads the pair with
no torch; a test checks that the manifest names the shipped `.pt` by its hash, so a retrained
`.pt` cannot ship with a stale ONNX.

Readings name the model by the **source `.pt`**: `model.name` is its stem and `model.sha256` its
hash, on every backend. The same weights give the same texts whichever runtime computes them
(bench/agreement.py measures it), so dashboards and evaluations group readings by the weights,
not by the runtime; the ONNX file's own hash is checked on load instead.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from plate_ocr.errors import ModelError

__all__ = [
    "BUNDLED_MODEL_NAME",
    "MANIFEST_FORMAT",
    "OnnxManifest",
    "bundled_model_path",
    "bundled_onnx_path",
    "file_sha256",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]

BUNDLED_MODEL_NAME: Final = "plate_ocr_yolo11n.pt"
MANIFEST_FORMAT: Final = "plate-ocr-onnx/1"
_MODELS: Final = Path(__file__).resolve().parent / "models"


def bundled_model_path() -> Path:
    """Where the weights shipped with the package live (`reader/models/`)."""
    return _MODELS / BUNDLED_MODEL_NAME


def bundled_onnx_path() -> Path:
    """The shipped ONNX export of `bundled_model_path()`."""
    return bundled_model_path().with_suffix(".onnx")


def manifest_path(onnx: Path) -> Path:
    """The manifest beside an ONNX file: `NAME.onnx.json`."""
    return onnx.with_name(onnx.name + ".json")


def file_sha256(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class OnnxManifest:
    """What an ONNX export was made from and how to feed it.

    `source_name`/`source_sha256` identify the `.pt` (what readings carry); `onnx_sha256` is the
    export's own hash; `imgsz` the size the weights were trained at; `input_hw` the shape it was
    exported at (height and width are dynamic axes, so any stride multiple runs);
    `made_with` the tool versions, for the record.
    """

    source_name: str
    source_sha256: str
    onnx_sha256: str
    class_names: tuple[str, ...]
    imgsz: int
    input_hw: tuple[int, int]
    opset: int
    made_with: dict[str, str]
    command: str
    format: str = MANIFEST_FORMAT


def write_manifest(onnx: Path, manifest: OnnxManifest) -> Path:
    """Write the manifest beside `onnx`; returns its path."""
    target = manifest_path(onnx)
    target.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return target


def read_manifest(onnx: Path) -> OnnxManifest:
    """The manifest of `onnx`. Raises ModelError when it is missing or malformed."""
    path = manifest_path(onnx)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ModelError(
            f"{onnx} has no manifest {path.name}: make the pair with "
            "`python -m reader.export_onnx --weights WEIGHTS.pt --out MODEL.onnx`"
        ) from e
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the ONNX manifest {path}: {e}") from e
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path} is not a {MANIFEST_FORMAT} manifest: {data.get('format')!r}")
    try:
        return OnnxManifest(
            source_name=str(data["source_name"]),
            source_sha256=str(data["source_sha256"]),
            onnx_sha256=str(data["onnx_sha256"]),
            class_names=tuple(str(n) for n in data["class_names"]),
            imgsz=int(data["imgsz"]),
            input_hw=(int(data["input_hw"][0]), int(data["input_hw"][1])),
            opset=int(data["opset"]),
            made_with={str(k): str(v) for k, v in data["made_with"].items()},
            command=str(data["command"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ModelError(f"the ONNX manifest {path} is malformed: {e!r}") from e
