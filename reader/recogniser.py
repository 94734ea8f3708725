"""`LineRecogniser`: PP-OCRv4's text-line recogniser, the second reading stage (ONNX Runtime on
the CPU, PyTorch on a GPU: reader.torch_recogniser).

The character detector locates the serial well even where its classes are wrong; a line
recogniser that has seen millions of printed text lines reads the glyphs inside that region
better. This one is PP-OCRv4's recognition network (PaddleOCR, Apache-2.0) in the ONNX form that
RapidOCR ships (`reader/models/ppocr/`, licence beside it). It is a CTC model over 6 623 symbols;
every step's distribution is folded here onto our 36 classes (upper and lower case together),
the CTC blank, and "anything else" (dashes, dots, state-outline glyphs), so the plate alphabet
constrains the reading instead of a post-hoc filter. The default is that network fine-tuned on
plate serials with a 37-way head (blank, 0-9 A-Z; training.train_recogniser), which folds the
same way with nothing left for "anything else"; the original stays loadable by path.

Preprocessing, chosen on the real dev set: height 48 as trained; width stretched 1.5x (two Ms or
two Gs in a row merge less under CTC: the recogniser alone went from 87.0% to 89.0% exact) and
padded with zeros to at least 192 px (the whole fused reader, exact match: no padding 90.9%,
192 px 91.4%, 224 px 91.3%, 320 px as RapidOCR pads 91.2%, at two thirds of 320's compute).
Lines of one padded width run together, so no line is padded more than it would be alone.

A fine-tune may read lines at a smaller height (`training.train_recogniser --line-height`: the
network's cost falls with the square of it): it says so in its ONNX metadata (`line_height`),
and the width and the padding scale with it.
"""

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from plate_ocr.constants import CLASS_NAMES
from plate_ocr.errors import DeviceUnavailable, ModelError
from reader.bundle import file_sha256
from reader.onnx_session import Provider, open_session
from schemas.reading import ModelInfo

log = logging.getLogger("plate_ocr.reader.recogniser")

__all__ = [
    "BLANK",
    "LINE_HEIGHT",
    "LINE_HEIGHTS",
    "MAX_BATCH",
    "OTHER",
    "LineRead",
    "LineRecogniser",
    "RecognisedChar",
    "Runtime",
    "bundled_recogniser_path",
    "choose_runtime",
    "line_tensor",
    "ppocr_recogniser_path",
    "resized_width",
]

LINE_HEIGHT: Final = 48  # PP-OCR's input height, and a model's without `line_height` metadata
# Heights the graph reads: its backbone halves the height four times (padded), and its last pool
# takes three rows, so from 33 to 48 px the features are three rows high; below, two, and the
# pool fails on them in PyTorch.
LINE_HEIGHTS: Final = range(33, 49)
STRETCH: Final = 1.5
MIN_WIDTH_HEIGHTS: Final = 4  # padded to at least 4 line heights: 192 px at 48
MAX_WIDTH: Final = 1600  # a line wider than 33:1 after stretching is not a plate serial
# Lines per network call. Larger batches run slower per line on the CPU (the activations of a
# 48x320 line outgrow the caches): see bench/readers.py.
MAX_BATCH: Final = 4
_WIDTH_STEP: Final = 8  # the network's horizontal downsampling: one CTC step per 8 px

# "auto": `choose_runtime` decides by the device and what this onnxruntime can reach.
Runtime = Literal["auto", "onnxruntime", "torch"]

# Columns of `LineRead.probs`: the CTC blank, then the 36 classes, then everything else.
BLANK: Final = 0
OTHER: Final = len(CLASS_NAMES) + 1


def bundled_recogniser_path() -> Path:
    """The default reader's recogniser: PP-OCRv4's fine-tuned on plate serials (issue 19; its
    manifest `ppocrv4_plate_rec.onnx.json` names the source, data, checkpoint and sha256)."""
    return Path(__file__).resolve().parent / "models" / "ppocr" / "ppocrv4_plate_rec.onnx"


def ppocr_recogniser_path() -> Path:
    """PP-OCRv4's recogniser as RapidOCR ships it (hard-swish fused), weights unchanged: the
    source of the fine-tune, kept for comparison (`--recogniser` / PLATE_OCR_RECOGNISER_PATH)."""
    return Path(__file__).resolve().parent / "models" / "ppocr" / "ppocrv4_rec.onnx"


@dataclass(frozen=True, slots=True)
class RecognisedChar:
    """One character of a line: its class distribution and where on the plate it sits."""

    probs: npt.NDArray[np.float64]  # (36,), sums to 1
    presence: float  # the best step's probability of being one of our classes at all
    x: float  # centre, in plate-crop pixels
    left: float  # the extent of its CTC steps, in plate-crop pixels
    right: float


@dataclass(frozen=True, slots=True)
class LineRead:
    """The recogniser's per-step distributions over one line crop.

    `probs` is (T, 38): column `BLANK`, columns 1..36 our classes, column `OTHER`. `box` is the
    line crop in plate pixels, `px_per_step` how many of its pixels one step covers.
    """

    probs: npt.NDArray[np.float32]
    box: tuple[int, int, int, int]
    px_per_step: float

    def characters(self) -> list[RecognisedChar]:
        """Greedy CTC decoding over the folded alphabet: runs of one class, blanks and
        other symbols separating them."""
        best = self.probs.argmax(axis=1)
        runs: list[tuple[int, list[int]]] = []
        previous = -1
        for step, label in enumerate(best.tolist()):
            if BLANK < label < OTHER:
                if label == previous:
                    runs[-1][1].append(step)
                else:
                    runs.append((label, [step]))
            previous = label
        chars = []
        for _, steps in runs:
            mass = self.probs[steps, 1:OTHER].astype(np.float64).sum(axis=0)
            presence = 1.0 - self.probs[steps, BLANK] - self.probs[steps, OTHER]
            centre = (float(np.mean(steps)) + 0.5) * self.px_per_step
            chars.append(
                RecognisedChar(
                    probs=mass / max(float(mass.sum()), 1e-12),
                    presence=float(np.clip(presence.max(), 0.0, 1.0)),
                    x=self.box[0] + centre,
                    left=self.box[0] + steps[0] * self.px_per_step,
                    right=self.box[0] + (steps[-1] + 1) * self.px_per_step,
                )
            )
        return chars

    @property
    def text(self) -> str:
        return "".join(CLASS_NAMES[int(c.probs.argmax())] for c in self.characters())


def choose_runtime(runtime: Runtime, device: str, available: Sequence[str]) -> Runtime:
    """Where the recogniser runs: ONNX Runtime on the CPU, or on a GPU when this onnxruntime
    has the CUDA provider (onnxruntime-gpu); otherwise, on a GPU, PyTorch (`[gpu]` has it). An
    explicit choice is kept as given."""
    if runtime != "auto":
        return runtime
    if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
        return "torch"
    return "onnxruntime"


def _providers(device: str, available: Sequence[str]) -> list[Provider]:
    """ONNX Runtime's CUDA provider on the reader's GPU when this onnxruntime has it
    (onnxruntime-gpu); otherwise the CPU, said out loud (only with `runtime="onnxruntime"`
    asked for on a GPU): on a GPU box the recogniser on the CPU is what caps the fused reader."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        index = device.partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    log.warning(
        "the line recogniser runs on the CPU (this onnxruntime has no CUDA provider: install "
        "onnxruntime-gpu); the detector runs on %s",
        device,
    )
    return ["CPUExecutionProvider"]


def _check_providers(session: Any, device: str, requested: Sequence[Provider]) -> None:
    """Raise DeviceUnavailable when a session asked for CUDA came back on the CPU alone: ONNX
    Runtime builds a CPU-only session, with a printed line and no error, when the CUDA provider
    is listed but cannot load (a cuDNN or driver mismatch)."""
    names = [p[0] if isinstance(p, tuple) else p for p in requested]
    if not device.startswith("cuda") or "CUDAExecutionProvider" not in names:
        return
    running = session.get_providers()
    if "CUDAExecutionProvider" not in running:
        raise DeviceUnavailable(
            f"the line recogniser was asked to run on {device}, but ONNX Runtime's CUDA "
            f"provider did not load (the session runs on {', '.join(running)}): check that "
            "onnxruntime-gpu matches this machine's CUDA and cuDNN"
        )


class LineRecogniser:
    """Reads cropped text lines, batched. Thread-compatible: one `read_batch` at a time per
    instance (its network calls may run side by side on the `pool`)."""

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        threads: int | None = None,
        max_batch: int = MAX_BATCH,
        spinning: bool = True,
        device: str = "cpu",
        pool: Executor | None = None,
        runtime: Runtime = "auto",
    ) -> None:
        import onnxruntime as ort  # the light CPU runtime; imported with the reader, not before

        path = Path(model_path) if model_path is not None else bundled_recogniser_path()
        if not path.is_file():
            raise ModelError(f"no recogniser model at {path}")
        available = ort.get_available_providers()
        self.runtime = choose_runtime(runtime, device, available)
        metadata: dict[str, str]
        self._run: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
        if self.runtime == "torch":
            from reader.torch_recogniser import TorchLineNetwork

            network = TorchLineNetwork(path, device)
            self._run = network
            metadata = network.metadata
        else:
            providers = _providers(device, available)
            self._session = open_session(
                path, threads=threads, spinning=spinning, providers=providers, what="recogniser"
            )
            _check_providers(self._session, device, providers)
            self._input = self._session.get_inputs()[0].name
            self._run = self._run_session
            metadata = self._session.get_modelmeta().custom_metadata_map
        fold = _fold_alphabet(metadata)
        self.line_height = _line_height(metadata, path)
        # Only ~62 of the 6 625 symbols are ours: gather them, then fold that small matrix.
        self._symbols = np.flatnonzero(fold.any(axis=1))
        self._fold = np.ascontiguousarray(fold[self._symbols])
        self.model_info = ModelInfo(name=path.stem, sha256=file_sha256(path))
        self.max_batch = max_batch
        self._pool = pool

    def read_lines(
        self, image: npt.NDArray[np.uint8], boxes: Sequence[tuple[int, int, int, int]]
    ) -> list[LineRead]:
        """Read the given line boxes of one BGR crop. See `read_batch`."""
        return self.read_batch([(image, box) for box in boxes])

    def read_batch(
        self, lines: Sequence[tuple[npt.NDArray[np.uint8], tuple[int, int, int, int]]]
    ) -> list[LineRead]:
        """Read line boxes (x1, y1, x2, y2 in the image's pixels) of BGR images, in order.

        Lines that pad to the same width share one network call. With a `pool`, the calls run
        on its threads, side by side (an ONNX Runtime session may run concurrently; each call
        uses the session's own intra-op threads).
        """
        prepared = [
            line_tensor(image[y1:y2, x1:x2], self.line_height) for image, (x1, y1, x2, y2) in lines
        ]
        by_width: dict[int, list[int]] = {}
        for i, (tensor, _) in enumerate(prepared):
            by_width.setdefault(tensor.shape[-1], []).append(i)
        reads: list[LineRead | None] = [None] * len(lines)
        chunks = [
            same[start : start + self.max_batch]
            for same in by_width.values()
            for start in range(0, len(same), self.max_batch)
        ]
        batches = [np.stack([prepared[i][0] for i in indices]) for indices in chunks]
        if self._pool is not None and len(batches) > 1:
            outputs = list(self._pool.map(self._run, batches))
        else:
            outputs = [self._run(batch) for batch in batches]
        for indices, batch, probs in zip(chunks, batches, outputs, strict=True):
            net_px_per_step = batch.shape[-1] / probs.shape[1]
            for row, i in zip(probs, indices, strict=True):
                resized_w = prepared[i][1]
                x1, _, x2, _ = lines[i][1]
                valid = max(math.ceil(resized_w / net_px_per_step), 1)
                reads[i] = LineRead(
                    probs=self._fold_steps(row[:valid]),
                    box=lines[i][1],
                    px_per_step=net_px_per_step * (x2 - x1) / resized_w,
                )
        return [read for read in reads if read is not None]

    def _run_session(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        probs: npt.NDArray[np.float32] = self._session.run(None, {self._input: batch})[0]
        return probs

    def _fold_steps(self, probs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        folded = np.zeros((len(probs), OTHER + 1), np.float32)
        folded[:, BLANK] = probs[:, 0]
        folded[:, 1:OTHER] = probs[:, self._symbols] @ self._fold
        folded[:, OTHER] = np.clip(1.0 - folded[:, :OTHER].sum(axis=1), 0.0, 1.0)
        return folded


def resized_width(height: int, width: int, line_height: int = LINE_HEIGHT) -> int:
    stretched = math.ceil(line_height * width / max(height, 1) * STRETCH)
    return min(max(stretched, _WIDTH_STEP), MAX_WIDTH)


def line_tensor(
    line: npt.NDArray[np.uint8], line_height: int = LINE_HEIGHT
) -> tuple[npt.NDArray[np.float32], int]:
    """(3, line_height, W) in -1..1, zero-padded on the right to at least MIN_WIDTH_HEIGHTS
    line heights; and the unpadded width."""
    height, width = line.shape[:2]
    resized_w = resized_width(height, width, line_height)
    resized = cv2.resize(line, (resized_w, line_height), interpolation=cv2.INTER_LINEAR)
    padded_w = max(MIN_WIDTH_HEIGHTS * line_height, -(-resized_w // _WIDTH_STEP) * _WIDTH_STEP)
    tensor = np.zeros((3, line_height, padded_w), np.float32)
    tensor[:, :, :resized_w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return tensor, resized_w


def _line_height(metadata: dict[str, Any], path: Path) -> int:
    """The height the model reads lines at: its `line_height` metadata, else PP-OCR's 48."""
    declared = metadata.get("line_height")
    if declared is None:
        return LINE_HEIGHT
    if not declared.isdigit() or int(declared) not in LINE_HEIGHTS:
        raise ModelError(
            f"{path.name} declares line_height {declared!r}: this graph reads lines of "
            f"{LINE_HEIGHTS.start}-{LINE_HEIGHTS.stop - 1} px"
        )
    return int(declared)


def _fold_alphabet(metadata: dict[str, Any]) -> npt.NDArray[np.float32]:
    """(V, 36) 0/1 matrix mapping the network's symbols onto our classes, case folded.

    The network's symbol list is in the ONNX metadata ("character"); index 0 is the CTC blank
    and the last is a space, as in PaddleOCR's CTCLabelDecode.
    """
    if "character" not in metadata:
        raise ModelError("recogniser ONNX has no 'character' metadata (not a PP-OCR rec model?)")
    symbols = ["<blank>", *metadata["character"].splitlines(), " "]
    fold = np.zeros((len(symbols), len(CLASS_NAMES)), np.float32)
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    for v, symbol in enumerate(symbols[1:], start=1):
        cls = index.get(symbol.upper()) if len(symbol) == 1 else None
        if cls is not None:
            fold[v, cls] = 1.0
    return fold
