"""Export a fine-tuned line recogniser checkpoint to ONNX, with a manifest beside it.

    python -m training.export_plate_recogniser runs/rec/step_000500.pt OUT.onnx
    python -m training.export_plate_recogniser runs/a/step_*.pt runs/b/step_*.pt OUT.onnx

Several checkpoints are averaged weight by weight (`average_weights`, a "model soup").

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
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from plate_ocr.errors import ModelError
from reader.bundle import file_sha256
from reader.recogniser import LINE_HEIGHT, ppocr_recogniser_path

if TYPE_CHECKING:
    from training.recogniser_net import PlateRecogniserNet

__all__ = ["DATA_SOURCES", "TOLERANCE", "average_weights", "export_checkpoint", "main"]

TOLERANCE: Final = 1e-4  # on softmax outputs, ONNX Runtime against PyTorch

_PPOCR: Final = "PP-OCRv4 rec (PaddleOCR, Apache-2.0), as rapidocr-onnxruntime ships it"

DATA_SOURCES: Final = {
    "synthetic": "training.synth's generic (Debian fonts) and state-faithful renderers, "
    "half and half; fonts under their own licences (training/fonts)",
    "darkplate": "DarkPlate by Stéphane Charette (MIT), ../shared/data/train_darkplate",
    "pseudo": "Open Images crops (CC BY 2.0, their Flickr authors; boxes CC BY 4.0 Google LLC), "
    "../shared/data/real_oid_unlabelled, labelled by training.line_labels",
}


def export_checkpoint(
    checkpoints: Path | Sequence[Path],
    out: Path,
    *,
    source: Path,
    selected_by: str | None = None,
) -> dict[str, Any]:
    """Write `out` and its manifest; returns the manifest. Several checkpoints (of one run or of
    runs from the same `source`) are averaged weight by weight (`average_weights`)."""
    import onnxruntime as ort
    import torch

    from training.recogniser_net import export_onnx, load_net

    paths = [checkpoints] if isinstance(checkpoints, Path) else list(checkpoints)
    net = average_weights(load_net(source), paths).eval()
    runs = {p.parent.name: _settings(p.parent) for p in paths}
    names = [f"{p.parent.name}/{p.name}" for p in paths]
    line_height = _line_height(runs)
    export_onnx(
        net,
        source,
        out,
        source_sha256=file_sha256(source),
        checkpoint=", ".join(names),
        line_height=str(line_height),
    )
    lines = np.random.default_rng(0).uniform(-1, 1, (2, 3, line_height, 256)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(lines)), -1).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: lines})[0]
    worst = float(np.abs(got - expected).max())
    if worst > TOLERANCE:
        out.unlink()
        raise ModelError(f"the exported recogniser differs from the checkpoint by {worst:.2g}")
    used = {name for settings in runs.values() for name in _data_used(settings)}
    manifest = {
        "name": out.stem,
        "sha256": file_sha256(out),
        "source": _source(source),
        "checkpoints": names,
        "training": runs,
        "data": {name: DATA_SOURCES[name] for name in DATA_SOURCES if name in used},
        "onnx_vs_torch_max_abs": worst,
    }
    if len(paths) > 1:
        manifest["averaged"] = f"the uniform average of the {len(paths)} checkpoints' weights"
    if selected_by is not None:
        manifest["selected_by"] = selected_by
    out.with_name(out.name + ".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def average_weights(net: PlateRecogniserNet, checkpoints: Sequence[Path]) -> PlateRecogniserNet:
    """The network (`net`'s, which it loads each checkpoint into) with the uniform average of
    the checkpoints' parameters: a "model soup" of fine-tunes of one starting network (model
    card). Their buffers, the frozen batch norms' statistics among them, must be the same in
    every checkpoint (no run changes them): averaged weights under one checkpoint's statistics
    would read like none of them, so checkpoints that differ there are refused."""
    import torch
    from torch.optim.swa_utils import AveragedModel

    if not checkpoints:
        raise ValueError("no checkpoint to export")

    def load(path: Path) -> dict[str, torch.Tensor]:
        state = torch.load(path, map_location="cpu", weights_only=False)
        net.load_state_dict(state.get("net", state))
        return dict(net.named_buffers())

    first = {name: b.clone() for name, b in load(checkpoints[0]).items()}
    averaged = AveragedModel(net, device=torch.device("cpu"))  # a copy of the first
    averaged.update_parameters(net)
    for path in checkpoints[1:]:
        differing = [n for n, b in load(path).items() if not torch.equal(b, first[n])]
        if differing:
            raise ModelError(
                f"{path} differs from {checkpoints[0]} in {differing[0]} (a buffer, not a "
                "trained weight): not fine-tunes of one frozen-statistics network, no average"
            )
        averaged.update_parameters(net)
    return cast("PlateRecogniserNet", averaged.module)


def _settings(run: Path) -> dict[str, Any]:
    from training.run import recorded_settings

    settings: dict[str, Any] = recorded_settings(run)
    if "source" in settings:  # a path on the training machine; the manifest names the file
        settings["source"] = Path(settings["source"]).name
    return settings


def _line_height(runs: dict[str, dict[str, Any]]) -> int:
    """The line height the runs trained at (a run recorded before the option trained at 48)."""
    heights = {int(settings.get("line_height", LINE_HEIGHT)) for settings in runs.values()}
    if len(heights) > 1:
        raise ModelError(f"the runs trained at different line heights {sorted(heights)}: no soup")
    return heights.pop()


def _source(source: Path) -> dict[str, Any]:
    """What the fine-tune started from. A source that is itself a fine-tune (its manifest
    beside it) brings that manifest, so the chain back to PP-OCR's weights stays on record."""
    described: dict[str, Any] = {"file": source.name, "sha256": file_sha256(source)}
    own = source.with_name(source.name + ".json")
    if own.is_file():
        described["manifest"] = json.loads(own.read_text())
    else:
        described["model"] = _PPOCR
    return described


def _data_used(settings: dict[str, Any]) -> list[str]:
    """The sources a run drew lines from: generated lines, and DarkPlate's and the
    pseudo-labelled ones where the run was given them; a source at a share of 0 drew none,
    except generated lines drawn for the anchor alone (--anchor-lines)."""
    used = []
    for name in DATA_SOURCES:
        given = name == "synthetic" or settings.get(name) not in (None, "None")
        for_anchor = name == "synthetic" and int(settings.get("anchor_lines", 0)) > 0
        drawn = float(settings.get(f"{name}_share", 1.0)) > 0 or for_anchor
        if given and drawn:
            used.append(name)
    return used


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export_plate_recogniser", description=__doc__
    )
    parser.add_argument(
        "checkpoints", type=Path, nargs="+", help="one checkpoint, or several to average"
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=ppocr_recogniser_path())
    parser.add_argument("--selected-by", default=None, help="how the checkpoint was chosen")
    args = parser.parse_args(argv)
    manifest = export_checkpoint(
        args.checkpoints, args.out, source=args.source, selected_by=args.selected_by
    )
    print(
        f"{args.out}: sha256 {manifest['sha256']}; max |onnx - torch| "
        f"{manifest['onnx_vs_torch_max_abs']:.2g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
