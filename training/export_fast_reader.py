"""Export a fast reader checkpoint (training.train_fast) to ONNX, with a manifest beside it.

    python -m training.export_fast_reader runs/fast/step_020000.pt OUT.onnx [--selected-by TEXT]

The ONNX computes per-column class probabilities `probs` (N, 32, 37: the CTC blank, then 0-9 A-Z)
and the serial row `row` (N, 2: top and bottom as shares of the height) from `image` (N, 1, 64,
128, grey in 0..1), with a dynamic batch; reader.fast_reader.FastReader reads it. Before it is
kept, ONNX Runtime's output on random crops is checked against the PyTorch module's
(TOLERANCE). OUT.onnx.json, the manifest, names the checkpoint, the training settings and data
(with their licences) and the exported file's sha256.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import ModelError
from reader.bundle import file_sha256
from reader.fast_reader import INPUT_HW

__all__ = ["DATA_SOURCES", "TOLERANCE", "export_checkpoint", "main"]

TOLERANCE: Final = 1e-4  # on the outputs, ONNX Runtime against PyTorch
_OPSET: Final = 17

DATA_SOURCES: Final = {
    "synthetic": "training.synth's generic (Debian fonts) and state-faithful renderers, "
    "half and half; fonts under their own licences (training/fonts)",
    "darkplate": "DarkPlate by Stéphane Charette (MIT), ../shared/data/train_darkplate",
    "distilled": "Open Images crops (CC BY 2.0, their Flickr authors; boxes CC BY 4.0 Google LLC), "
    "../shared/data/real_oid_unlabelled, read by the fused reader (training.fast_labels)",
}


def export_checkpoint(
    checkpoint: Path, out: Path, *, selected_by: str | None = None
) -> dict[str, Any]:
    """Write `out` and its manifest; returns the manifest."""
    import onnx
    import onnxruntime as ort
    import torch

    from training.fast_net import FastPlateNet, ProbsAndRow
    from training.run import recorded_settings

    settings = recorded_settings(checkpoint.parent)
    width = int(settings.get("width", 1))
    net = FastPlateNet(width=width)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net.load_state_dict(state.get("net", state))
    module = ProbsAndRow(net).eval()
    example = torch.rand(2, 1, *INPUT_HW)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        (example,),
        str(out),
        input_names=["image"],
        output_names=["probs", "row"],
        dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}, "row": {0: "batch"}},
        opset_version=_OPSET,
        dynamo=False,
    )
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = "character", "".join(CLASS_NAMES)
    onnx.save(model, str(out))

    crops = torch.rand(8, 1, *INPUT_HW)
    with torch.no_grad():
        expected = [t.numpy() for t in module(crops)]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": crops.numpy()})
    difference = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    if difference > TOLERANCE:
        out.unlink()
        raise ModelError(
            f"the ONNX export reads {difference:.2e} away from PyTorch (> {TOLERANCE})"
        )
    manifest = {
        "model": out.name,
        "sha256": file_sha256(out),
        "network": f"training.fast_net.FastPlateNet(width={width}), trained from scratch",
        "input": {"name": "image", "shape": ["N", 1, *INPUT_HW], "grey": True, "range": [0, 1]},
        "outputs": {"probs": "N x 32 x 37: CTC blank, 0-9 A-Z", "row": "N x 2: top, bottom"},
        "checkpoint": checkpoint.name,
        "step": _step_of(checkpoint, state),
        "training": {k: v for k, v in settings.items() if k not in {"out"}},
        "data": DATA_SOURCES,
        "selected_by": selected_by,
        "max_abs_difference_from_pytorch": difference,
    }
    Path(f"{out}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _step_of(checkpoint: Path, state: dict[str, Any]) -> int | None:
    """The training step of a checkpoint: recorded in last.pt, named in step_NNNNNN.pt."""
    if "step" in state:
        return int(state["step"])
    named = re.fullmatch(r"step_(\d+)", checkpoint.stem)
    return int(named.group(1)) if named else None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export_fast_reader", description=__doc__)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--selected-by", default=None, help="how the checkpoint was chosen")
    args = p.parse_args(argv)
    manifest = export_checkpoint(args.checkpoint, args.out, selected_by=args.selected_by)
    print(
        json.dumps({k: manifest[k] for k in ("model", "sha256", "max_abs_difference_from_pytorch")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
