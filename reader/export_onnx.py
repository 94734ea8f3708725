"""Make the ONNX export that the light (`[cpu]`) install runs, with its manifest.

    python -m reader.export_onnx                      # the bundled .pt -> reader/models/*.onnx
    python -m reader.export_onnx --weights my.pt --out my.onnx
    python -m reader.export_onnx --check              # exit 1 unless the pair matches

Needs the `[gpu]` extra (torch, ultralytics); the result needs only onnxruntime. The export is
ultralytics' own ONNX export of the raw detection head (N, 4 + 36, anchors), exported at the
plate-shaped input with batch, height and width as dynamic axes and simplified by onnxslim;
NMS stays outside the graph (reader.nms), as on the torch path. Run it after every retraining
and commit both files: tests/reader/test_bundle.py fails while the manifest names another `.pt`.
"""

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from plate_ocr.errors import ModelError, PlateOcrError
from reader.bundle import (
    OnnxManifest,
    bundled_model_path,
    bundled_onnx_path,
    file_sha256,
    read_manifest,
    write_manifest,
)
from reader.detector import plate_input_hw, require_torch

__all__ = ["check_pair", "export_onnx", "main"]

_COMMAND = "python -m reader.export_onnx"


def export_onnx(weights: Path, out: Path, *, imgsz: int | None = None) -> OnnxManifest:
    """Export `weights` to `out` (and its manifest beside it). Raises ModelError on failure."""
    require_torch("exporting weights to ONNX")
    import onnx
    import torch
    import ultralytics

    from reader.torch_detector import load_yolo, trained_imgsz

    model = load_yolo(weights)  # checks the classes before anything is written
    size = imgsz if imgsz is not None else trained_imgsz(model.overrides)
    input_hw = plate_input_hw(size)
    out.parent.mkdir(parents=True, exist_ok=True)
    # ultralytics writes the export beside the .pt: work on a copy, move the result in place.
    with tempfile.TemporaryDirectory(prefix="plate-ocr-export-") as scratch:
        local = Path(scratch) / weights.name
        shutil.copyfile(weights, local)
        try:
            made = model.__class__(str(local), task="detect").export(
                format="onnx",
                imgsz=list(input_hw),
                dynamic=True,
                simplify=True,
                device="cpu",
                verbose=False,
            )
        except Exception as e:  # exporters raise whatever their toolchain raises
            raise ModelError(f"exporting {weights} to ONNX failed: {e}") from e
        shutil.move(str(made), out)
    opset = max(o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx"))
    manifest = OnnxManifest(
        source_name=weights.stem,
        source_sha256=file_sha256(weights),
        onnx_sha256=file_sha256(out),
        class_names=tuple(str(model.names[i]) for i in sorted(model.names)),
        imgsz=size,
        input_hw=input_hw,
        opset=opset,
        made_with={
            "ultralytics": ultralytics.__version__,
            "torch": torch.__version__.split("+")[0],
            "onnx": onnx.__version__,
        },
        command=_COMMAND,
    )
    write_manifest(out, manifest)
    return manifest


def check_pair(weights: Path, onnx_path: Path) -> list[str]:
    """What is wrong with `onnx_path` as the export of `weights` (empty: they match)."""
    manifest = read_manifest(onnx_path)
    problems = []
    if manifest.source_sha256 != file_sha256(weights):
        problems.append(
            f"{onnx_path.name} was made from a .pt with sha256 {manifest.source_sha256[:12]}…, "
            f"not {weights.name} ({file_sha256(weights)[:12]}…): rerun `{_COMMAND}`"
        )
    if manifest.onnx_sha256 != file_sha256(onnx_path):
        problems.append(f"{onnx_path.name} is not the file its manifest describes: rerun it")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=bundled_model_path())
    p.add_argument("--out", type=Path, default=None, help="default: the weights' path, .onnx")
    p.add_argument("--imgsz", type=int, default=None, help="default: the trained size")
    p.add_argument("--check", action="store_true", help="only check the existing pair")
    args = p.parse_args(argv)
    out = args.out
    if out is None:
        bundled = args.weights.resolve() == bundled_model_path()
        out = bundled_onnx_path() if bundled else args.weights.with_suffix(".onnx")
    try:
        if args.check:
            problems = check_pair(args.weights, out)
            for problem in problems:
                print(f"{_COMMAND}: {problem}", file=sys.stderr)
            return 1 if problems else 0
        manifest = export_onnx(args.weights, out, imgsz=args.imgsz)
    except PlateOcrError as e:
        print(f"{_COMMAND}: error: {e}", file=sys.stderr)
        return 2
    made, source = manifest.onnx_sha256[:12], manifest.source_sha256[:12]
    print(f"{out} ({made}…) from {args.weights} ({source}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
