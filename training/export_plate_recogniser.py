"""Export a fine-tuned line recogniser checkpoint to ONNX, with a manifest beside it.

    python -m training.export_plate_recogniser runs/rec/step_000500.pt OUT.onnx

The ONNX is the bundled recogniser's own graph (hard-swish fused as reader.export_recogniser
fuses it) carrying the checkpoint's tensors and a 37-way head (training.recogniser_net), so
reader.recogniser.LineRecogniser reads it as it reads the original (`--recogniser OUT.onnx`,
PLATE_OCR_RECOGNISER_PATH). Before it is kept, ONNX Runtime's output on random lines is checked
against the PyTorch module's (TOLERANCE). OUT.onnx.json, the manifest, names the source model
and its sha256, the checkpoint, the training settings and data (with their licences), and the
exported file's sha256.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from plate_ocr.errors import ModelError
from reader.bundle import file_sha256
from reader.recogniser import ppocr_recogniser_path

__all__ = ["DATA_SOURCES", "TOLERANCE", "export_checkpoint", "main"]

TOLERANCE: Final = 1e-4  # on softmax outputs, ONNX Runtime against PyTorch

DATA_SOURCES: Final = {
    "synthetic": "training.synth's generic (Debian fonts) and state-faithful renderers, "
    "half and half; fonts under their own licences (training/fonts)",
    "darkplate": "DarkPlate by Stéphane Charette (MIT), ../shared/data/train_darkplate",
    "pseudo": "Open Images crops (CC BY 2.0, their Flickr authors; boxes CC BY 4.0 Google LLC), "
    "../shared/data/real_oid_unlabelled, labelled by training.line_labels",
}


def export_checkpoint(
    checkpoint: Path, out: Path, *, source: Path, selected_by: str | None = None
) -> dict[str, Any]:
    """Write `out` and its manifest; returns the manifest."""
    import onnxruntime as ort
    import torch

    from training.recogniser_net import export_onnx, load_net

    net = load_net(source)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net.load_state_dict(state.get("net", state))
    net.eval()
    settings_file = checkpoint.parent / "train_settings.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    if "source" in settings:  # a path on the training machine; the manifest names the file
        settings["source"] = Path(settings["source"]).name
    export_onnx(
        net,
        source,
        out,
        source_sha256=file_sha256(source),
        checkpoint=checkpoint.name,
    )
    lines = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 256)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(lines)), -1).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: lines})[0]
    worst = float(np.abs(got - expected).max())
    if worst > TOLERANCE:
        out.unlink()
        raise ModelError(f"the exported recogniser differs from the checkpoint by {worst:.2g}")
    used = ["synthetic"]
    used += [name for name in ("darkplate", "pseudo") if settings.get(name) not in (None, "None")]
    manifest = {
        "name": out.stem,
        "sha256": file_sha256(out),
        "source": {
            "file": source.name,
            "sha256": file_sha256(source),
            "model": "PP-OCRv4 rec (PaddleOCR, Apache-2.0), as rapidocr-onnxruntime ships it",
        },
        "checkpoint": checkpoint.name,
        "training": settings,
        "data": {name: DATA_SOURCES[name] for name in used},
        "onnx_vs_torch_max_abs": worst,
    }
    if selected_by is not None:
        manifest["selected_by"] = selected_by
    out.with_name(out.name + ".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export_plate_recogniser", description=__doc__
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=ppocr_recogniser_path())
    parser.add_argument("--selected-by", default=None, help="how the checkpoint was chosen")
    args = parser.parse_args(argv)
    manifest = export_checkpoint(
        args.checkpoint, args.out, source=args.source, selected_by=args.selected_by
    )
    print(
        f"{args.out}: sha256 {manifest['sha256']}; max |onnx - torch| "
        f"{manifest['onnx_vs_torch_max_abs']:.2g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
