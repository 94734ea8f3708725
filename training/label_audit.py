"""A label audit of an evaluation set: what a person saw in each crop a reader did not read
as labelled.

The real dev set's own README warns that 1-3% of its New York labels are probably wrong, and
a wrong label counts a right reading as a misread: above all among the readings the reader is
surest of, which is exactly where precision at a coverage is measured. An audit is a CSV beside
the other label manifests (`training/labels/real_us_dev_audit.csv`), one row per misread crop
that was looked at:

    file,label,audited,verdict,note

`verdict` says what the crop shows against its label:

    label_wrong   the crop plainly shows `audited`, not `label` (another plate, a digit
                  mistyped): the only verdict that changes a score
    reader_wrong  the label is right
    cut           the label is right, but a character of it lies outside the crop
    stacked       the reader also read small stacked characters that the labels leave out
                  by convention (the set's README: "not wrong in spirit; report how many")
    ambiguous     the crop does not settle it; the label stands

`plate-ocr eval DIR --audit FILE`, `python -m training.calibrate DIR --audit FILE` and
`bench/readers.py --audit FILE` score against the audited labels and say so. An audit names
each row's label as the set had it, so one made for other labels is refused, not applied.
Only the misreads of the reader that was audited were looked at: a label that reader read the
same wrong way would not be found (`summary` counts any misread the audit never saw). The dev
set's audit covers the 108 misreads of the default reader as of commit 298d0e2 (detector
844e7090, recogniser 2071ba95), each looked at by eye; the model card says what it found.
"""

import csv
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from plate_ocr.errors import ConfigError
from training.evaluate import LabelRow

__all__ = ["FIELDS", "NOT_AUDITED", "VERDICTS", "AuditEntry", "LabelAudit"]

FIELDS: Final = ("file", "label", "audited", "verdict", "note")
VERDICTS: Final = ("label_wrong", "reader_wrong", "cut", "stacked", "ambiguous")
NOT_AUDITED: Final = "not_audited"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    file: str  # as labels.csv names it, relative to the set's folder
    label: str
    audited: str
    verdict: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class LabelAudit:
    path: Path
    entries: Mapping[str, AuditEntry]
    _by_name: Mapping[str, AuditEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {Path(f).name: e for f, e in self.entries.items()})

    @classmethod
    def load(cls, path: Path) -> "LabelAudit":
        """The audit at `path`; ConfigError for a missing file, column or unknown verdict."""
        if not path.is_file():
            raise ConfigError(f"label audit {path} not found")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = set(FIELDS) - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
            entries = [AuditEntry(**{k: r[k] or "" for k in FIELDS}) for r in reader]
        for entry in entries:
            if entry.verdict not in VERDICTS:
                raise ConfigError(
                    f"{path}: {entry.file} has verdict {entry.verdict!r}; one of {VERDICTS}"
                )
            if entry.verdict != "label_wrong" and entry.audited != entry.label:
                raise ConfigError(f"{path}: {entry.file} is {entry.verdict} but changes its label")
        return cls(path, {e.file: e for e in entries})

    @property
    def corrections(self) -> int:
        return sum(e.verdict == "label_wrong" for e in self.entries.values())

    def apply(self, rows: Sequence[LabelRow], data_dir: Path) -> list[LabelRow]:
        """`rows` with each wrong label replaced by what its crop shows. ConfigError where
        the audit names a crop the rows lack or a label they do not have: it was made for
        another set or other labels."""
        by_file = {_relative(row.file, data_dir): row for row in rows}
        for entry in self.entries.values():
            row = by_file.get(entry.file)
            if row is None:
                raise ConfigError(f"{self.path}: {entry.file} is not in {data_dir}/labels.csv")
            if row.text != entry.label:
                raise ConfigError(
                    f"{self.path}: {entry.file} was audited as labelled {entry.label!r}, "
                    f"but labels.csv says {row.text!r}"
                )
        return [self._corrected(row, data_dir) for row in rows]

    def verdict(self, name: str) -> str:
        """The verdict on the crop with this file name (as an EvalReport lists misreads), or
        NOT_AUDITED where the audit never looked at it."""
        entry = self._by_name.get(name)
        return entry.verdict if entry is not None else NOT_AUDITED

    def summary(self, misread_names: Iterable[str]) -> Counter[str]:
        """How many of these misread crops got each verdict."""
        return Counter(self.verdict(name) for name in misread_names)

    def describe(self) -> str:
        return f"labels audited by {self.path.name} ({self.corrections} corrected)"

    def _corrected(self, row: LabelRow, data_dir: Path) -> LabelRow:
        entry = self.entries.get(_relative(row.file, data_dir))
        if entry is None or entry.verdict != "label_wrong":
            return row
        return replace(row, text=entry.audited)


def _relative(file: Path, data_dir: Path) -> str:
    return file.relative_to(data_dir).as_posix()
