"""`plate-ocr eval`: score a reader on a labelled folder (`DIR/labels.csv` + images).

Scoring follows the rules of the real-plate dev set so figures compare: texts are uppercased,
stripped to 0-9A-Z, and the letter O is folded to the digit 0 on both sides. Reported: exact
plate match and character error rate (edit distance / label length), overall and per source
and per repository (the part of `source` before ':'), the most frequent character confusions,
and latency (the reader's own time per plate: pre-processing, model and post-processing, not
file decoding). `--naive` reads with the seed's ordering so the gain of post-processing shows.
"""

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from plate_ocr.errors import ConfigError, JobError
from plate_ocr.settings import Settings
from reader.image import decode_image, load_path
from reader.postprocess import OcrResult
from schemas.reading import ModelInfo
from training.reliability import Reliability

__all__ = [
    "EvalReport",
    "GroupScore",
    "LabelRow",
    "Reader",
    "align",
    "alignment",
    "evaluate",
    "load_labels",
    "normalise",
    "run_eval",
]

MISSING = ""  # the empty side of an insertion or deletion in `align`
_TOP_CONFUSIONS = 10


class Reader(Protocol):
    """What `evaluate` needs of a reader; `reader.engine.PlateReader` is one."""

    model_info: ModelInfo
    device: str
    imgsz: int
    naive: bool

    def read_arrays(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[OcrResult]: ...


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One line of labels.csv, with `file` made absolute."""

    file: Path
    text: str
    source: str = ""
    flag: str = ""


@dataclass(slots=True)
class GroupScore:
    """Running totals for a set of plates; CER is summed edits over summed label length."""

    plates: int = 0
    exact: int = 0
    edits: int = 0
    label_chars: int = 0

    def add(self, *, exact: bool, edits: int, label_chars: int) -> None:
        self.plates += 1
        self.exact += exact
        self.edits += edits
        self.label_chars += label_chars

    @property
    def accuracy(self) -> float:
        return self.exact / self.plates if self.plates else 0.0

    @property
    def cer(self) -> float:
        return self.edits / self.label_chars if self.label_chars else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "plates": self.plates,
            "exact": self.exact,
            "accuracy": self.accuracy,
            "edits": self.edits,
            "label_chars": self.label_chars,
            "cer": self.cer,
        }


@dataclass(slots=True)
class EvalReport:
    """Scores of one run of `evaluate`."""

    model: ModelInfo
    device: str
    imgsz: int
    naive: bool
    overall: GroupScore = field(default_factory=GroupScore)
    by_repository: dict[str, GroupScore] = field(default_factory=dict)
    by_source: dict[str, GroupScore] = field(default_factory=dict)
    flagged: GroupScore = field(default_factory=GroupScore)
    unreadable: list[str] = field(default_factory=list)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Every plate not read exactly, normalised (file, source, label, read): where to look next.
    misreads: list[dict[str, str]] = field(default_factory=list)
    infer_s: float = 0.0
    # One (plate confidence, read exactly right) pair per plate, for the reliability table.
    confidences: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    reader: str = "detector"
    views: int = 1  # how many views of each crop the detector looked at (reader.views)

    @property
    def reliability(self) -> Reliability:
        return Reliability.of(self.confidences, self.correct)

    @property
    def ms_per_plate(self) -> float:
        return 1000 * self.infer_s / self.overall.plates if self.overall.plates else 0.0

    @property
    def plates_per_s(self) -> float:
        return self.overall.plates / self.infer_s if self.infer_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.model_dump(),
            "device": self.device,
            "imgsz": self.imgsz,
            "ordering": "naive" if self.naive else "rows+suppression",
            "reader": self.reader,
            "views": self.views,
            "overall": self.overall.to_dict(),
            "by_repository": {k: v.to_dict() for k, v in sorted(self.by_repository.items())},
            "by_source": {k: v.to_dict() for k, v in sorted(self.by_source.items())},
            "flagged": self.flagged.to_dict(),
            "unreadable": self.unreadable,
            "confusions": [
                {"label": a, "read": b, "count": n}
                for (a, b), n in self.confusions.most_common(_TOP_CONFUSIONS)
            ],
            "latency": {"ms_per_plate": self.ms_per_plate, "plates_per_s": self.plates_per_s},
            "reliability": self.reliability.to_dict(),
            "misreads": sorted(self.misreads, key=lambda m: m["file"]),
        }

    def format_table(self) -> str:
        ordering = "seed (left to right only)" if self.naive else "rows + duplicate suppression"
        lines = [
            f"model {self.model.name} ({self.model.sha256[:12]}), {self.device}, "
            f"imgsz {self.imgsz}, reader: {self.reader}"
            + (f" ({self.views} views)" if self.views > 1 else "")
            + f", ordering: {ordering}",
            f"{'':48} {'plates':>7} {'exact':>7} {'accuracy':>9} {'CER':>7}",
            _table_line("overall", self.overall),
        ]
        for repo, score in sorted(self.by_repository.items()):
            lines.append(_table_line(f"  {repo}", score))
            for source, sub in sorted(self.by_source.items()):
                if _repository(source) == repo and source != repo:
                    lines.append(_table_line(f"    {source.partition(':')[2]}", sub))
        lines.append(_table_line("flagged labels (see labels.csv flag)", self.flagged))
        misread = ", ".join(
            f"{a or '∅'}→{b or '∅'} {n}" for (a, b), n in self.confusions.most_common(10)
        )
        lines += [
            f"top confusions (label→read): {misread or 'none'}",
            f"unreadable images: {len(self.unreadable)}",
            f"latency: {self.ms_per_plate:.1f} ms/plate, {self.plates_per_s:.1f} plates/s",
            "plate confidence (reliability; calibrated on the real dev set):",
            self.reliability.format_table(),
        ]
        return "\n".join(lines)


def normalise(text: str) -> str:
    """Uppercase, keep only 0-9A-Z, and fold the letter O to the digit 0."""
    return "".join(c for c in text.upper() if c.isascii() and c.isalnum()).replace("O", "0")


def align(label: str, read: str) -> list[tuple[str, str]]:
    """The edits of a minimal alignment, as (label char, read char) pairs; MISSING ("") marks
    a deleted or an inserted character. `len(align(a, b))` is the edit distance."""
    return [
        (label[i] if i is not None else MISSING, read[j] if j is not None else MISSING)
        for i, j in alignment(label, read)
        if i is None or j is None or label[i] != read[j]
    ]


def alignment(label: str, read: str) -> list[tuple[int | None, int | None]]:
    """A minimal alignment as index pairs (label index, read index), None on the side that
    lacks the character; substitutions are preferred so confusions pair up."""
    rows, cols = len(label) + 1, len(read) + 1
    cost = np.zeros((rows, cols), dtype=np.int32)
    cost[:, 0] = np.arange(rows)
    cost[0, :] = np.arange(cols)
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i, j] = min(
                cost[i - 1, j - 1] + (label[i - 1] != read[j - 1]),
                cost[i - 1, j] + 1,
                cost[i, j - 1] + 1,
            )
    pairs: list[tuple[int | None, int | None]] = []
    i, j = len(label), len(read)
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (label[i - 1] != read[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def load_labels(data_dir: Path, *, limit: int | None = None) -> list[LabelRow]:
    """Rows of `data_dir/labels.csv` (columns file,text and optionally source,flag)."""
    path = data_dir / "labels.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found: expected a labels.csv with columns file,text,source")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"file", "text"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        rows = [
            LabelRow(data_dir / r["file"], r["text"], r.get("source") or "", r.get("flag") or "")
            for r in reader
        ]
    return rows[:limit] if limit is not None else rows


def evaluate(
    reader: Reader,
    rows: Sequence[LabelRow],
    *,
    batch_size: int = 32,
    max_image_bytes: int = Settings.model_fields["max_image_bytes"].default,
    max_image_pixels: int = Settings.model_fields["max_image_pixels"].default,
    progress: bool = False,
) -> EvalReport:
    """Read every row's image in batches and score the readings against the labels.

    An image that cannot be loaded is scored as read empty and listed in `unreadable`.
    """
    report = EvalReport(
        reader.model_info,
        reader.device,
        reader.imgsz,
        reader.naive,
        reader=getattr(reader, "reader", "detector"),
        views=len(getattr(reader, "views", (None,))),
    )
    with tqdm(total=len(rows), unit="plate", disable=not progress, file=sys.stderr) as bar:
        for batch in _batches(rows, batch_size):
            images, readable = [], []
            for row in batch:
                try:
                    data = load_path(row.file, max_bytes=max_image_bytes)
                    images.append(
                        decode_image(data, max_bytes=max_image_bytes, max_pixels=max_image_pixels)
                    )
                    readable.append(row)
                except JobError as e:
                    report.unreadable.append(f"{row.file.name}: {e.message}")
                    _score(report, row, "", 0.0)
            started = time.perf_counter()
            results = reader.read_arrays(images) if images else []
            report.infer_s += time.perf_counter() - started
            for row, result in zip(readable, results, strict=True):
                _score(report, row, result.text, result.confidence)
            bar.update(len(batch))
    return report


def run_eval(
    settings: Settings,
    data_dir: Path,
    *,
    batch_size: int,
    imgsz: int | None,
    limit: int | None,
    naive: bool,
    json_out: Path | None,
    audit: Path | None = None,
) -> int:
    """`plate-ocr eval DIR`: print the score table, optionally write the report as JSON.
    With `audit` (training.label_audit), the labels it found wrong are scored as corrected."""
    from reader.engine import PlateReader  # torch only once there is something to read
    from training.label_audit import LabelAudit

    rows = load_labels(data_dir)
    label_audit = LabelAudit.load(audit) if audit is not None else None
    if label_audit is not None:
        rows = label_audit.apply(rows, data_dir)
    rows = rows[:limit]
    reader = PlateReader.from_settings(settings, imgsz=imgsz, naive=naive)
    report = evaluate(
        reader,
        rows,
        batch_size=batch_size,
        max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels,
        progress=True,
    )
    print(report.format_table())
    document = report.to_dict()
    if label_audit is not None:
        # Scored as audited; the misreads by what the audit saw in their crops.
        document["misreads"] = [
            m | {"verdict": label_audit.verdict(m["file"])} for m in document["misreads"]
        ]
        verdicts = label_audit.summary(m["file"] for m in report.misreads)
        print(f"{label_audit.describe()}; misreads by verdict: {_counts(verdicts)}")
        document["audit"] = {
            "file": str(audit),
            "corrected": label_audit.corrections,
            "misreads": dict(verdicts),
        }
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _counts(counts: Counter[str]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {n}" for k, n in ranked) or "none"


def _score(report: EvalReport, row: LabelRow, read: str, confidence: float) -> None:
    label, text = normalise(row.text), normalise(read)
    report.confidences.append(confidence)
    report.correct.append(label == text)
    edits = align(label, text)
    report.confusions.update(edits)
    groups = [
        report.overall,
        report.by_repository.setdefault(_repository(row.source), GroupScore()),
        report.by_source.setdefault(row.source or "(none)", GroupScore()),
    ]
    if row.flag:
        groups.append(report.flagged)
    for group in groups:
        group.add(exact=label == text, edits=len(edits), label_chars=len(label))
    if label != text:
        report.misreads.append(
            {"file": row.file.name, "source": row.source, "label": label, "read": text}
        )


def _repository(source: str) -> str:
    return source.partition(":")[0] or "(none)"


def _batches(rows: Sequence[LabelRow], size: int) -> Iterator[Sequence[LabelRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _table_line(name: str, score: GroupScore) -> str:
    return (
        f"{name[:48]:48} {score.plates:>7} {score.exact:>7} "
        f"{score.accuracy:>9.1%} {score.cer:>7.1%}"
    )
