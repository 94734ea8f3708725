"""A label audit: loading and refusing, correcting labels, counting misreads by verdict."""

from pathlib import Path

import pytest

from plate_ocr.errors import ConfigError
from training.evaluate import LabelRow
from training.label_audit import NOT_AUDITED, LabelAudit

HEADER = "file,label,audited,verdict,note\n"


def _audit(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "audit.csv"
    path.write_text(HEADER + body)
    return path


def _rows(data_dir: Path) -> list[LabelRow]:
    return [
        LabelRow(data_dir / "images/a.jpg", "KEN4141"),
        LabelRow(data_dir / "images/b.jpg", "3178", source="s", flag="f"),
        LabelRow(data_dir / "images/c.jpg", "ABC123"),
    ]


def test_only_wrong_labels_are_corrected(tmp_path: Path) -> None:
    path = _audit(
        tmp_path,
        "images/a.jpg,KEN4141,KEN5141,label_wrong,the crop shows a 5\n"
        "images/b.jpg,3178,3178,stacked,MTA BB\n",
    )
    audit = LabelAudit.load(path)
    rows = audit.apply(_rows(tmp_path), tmp_path)
    assert [r.text for r in rows] == ["KEN5141", "3178", "ABC123"]
    assert (rows[1].source, rows[1].flag) == ("s", "f")
    assert audit.corrections == 1
    assert audit.describe() == "labels audited by audit.csv (1 corrected)"


def test_summary_counts_misreads_by_verdict_and_the_unaudited(tmp_path: Path) -> None:
    path = _audit(
        tmp_path,
        "images/a.jpg,KEN4141,KEN5141,label_wrong,\nimages/b.jpg,3178,3178,stacked,\n",
    )
    summary = LabelAudit.load(path).summary(["b.jpg", "c.jpg", "z.jpg"])
    assert summary == {"stacked": 1, NOT_AUDITED: 2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("images/a.jpg,KEN4141,KEN5141,typo,\n", "verdict 'typo'"),
        ("images/a.jpg,KEN4141,KEN5141,ambiguous,\n", "changes its label"),
    ],
)
def test_bad_audits_are_refused_on_load(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LabelAudit.load(_audit(tmp_path, body))


def test_missing_file_or_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        LabelAudit.load(tmp_path / "none.csv")
    (tmp_path / "cols.csv").write_text("file,label\nimages/a.jpg,X\n")
    with pytest.raises(ConfigError, match="audited, note, verdict"):
        LabelAudit.load(tmp_path / "cols.csv")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("images/z.jpg,KEN4141,KEN5141,label_wrong,\n", "is not in"),
        ("images/a.jpg,KEN4142,KEN5141,label_wrong,\n", "labels.csv says 'KEN4141'"),
    ],
)
def test_an_audit_of_other_labels_is_refused(tmp_path: Path, body: str, message: str) -> None:
    audit = LabelAudit.load(_audit(tmp_path, body))
    with pytest.raises(ConfigError, match=message):
        audit.apply(_rows(tmp_path), tmp_path)


def test_the_shipped_audit_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "training/labels/real_us_dev_audit.csv"
    audit = LabelAudit.load(path)
    assert audit.corrections == 15
    assert all(Path(f).parts[0] == "images" for f in audit.entries)
