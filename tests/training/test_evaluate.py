"""Scoring: normalisation, alignment, CER and grouping, checked exactly on a tiny labelled set."""

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from reader.postprocess import OcrResult
from schemas.reading import ModelInfo
from training.evaluate import align, evaluate, load_labels, normalise, run_eval

# label, source, flag, what the fake reader answers (None: the image file is garbage)
CASES: list[tuple[str, str, str, str | None]] = [
    ("ABC123", "repo1:a", "", "abc-123"),  # exact after normalising
    ("0SG719", "repo1:b", "", "OSG719"),  # exact: letter O folds to digit 0
    ("XYZ789", "repo2:c", "", "XYZ78"),  # one deletion
    ("HELLO1", "repo2:c", "", None),  # unreadable: read as empty, 6 edits
    ("B8", "repo3", "label_suspect", "88"),  # one substitution, flagged
]


class FakeReader:
    """Answers the CASES in order, checking it gets decoded BGR crops."""

    model_info = ModelInfo(name="fake", sha256="0" * 64)
    device = "cpu"
    imgsz = 256

    def __init__(self, answers: Sequence[str], *, naive: bool = False) -> None:
        self.answers = list(answers)
        self.batches: list[int] = []
        self.naive = naive

    def read_arrays(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[OcrResult]:
        assert all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[2] == 3 for i in images)
        self.batches.append(len(images))
        texts, self.answers = self.answers[: len(images)], self.answers[len(images) :]
        return [OcrResult(text=t, confidence=0.9, characters=(), rows=1) for t in texts]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    lines = ["file,text,source,state,flag"]
    for i, (label, source, flag, answer) in enumerate(CASES):
        path = tmp_path / "images" / f"{i}.jpg"
        if answer is None:
            path.write_bytes(b"garbage")
        else:
            image = np.full((60, 200, 3), 255, dtype=np.uint8)
            cv2.putText(image, label, (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
            cv2.imwrite(str(path), image)
        lines.append(f"images/{i}.jpg,{label},{source},,{flag}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _answers() -> list[str]:
    return [a for *_, a in CASES if a is not None]


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("abc-123", "ABC123"),
        ("6 lne 878", "6LNE878"),
        ("OSG719", "0SG719"),
        ("ÉO·1", "01"),
        ("", ""),
    ],
)
def test_normalise(raw: str, norm: str) -> None:
    assert normalise(raw) == norm


@pytest.mark.parametrize(
    ("label", "read", "edits"),
    [
        ("ABC", "ABC", []),
        ("ABC", "AXC", [("B", "X")]),
        ("ABC", "AC", [("B", "")]),
        ("AC", "ABC", [("", "B")]),
        ("ABC", "", [("A", ""), ("B", ""), ("C", "")]),
        ("6LNE878", "6LNE8784", [("", "4")]),
    ],
)
def test_align_lists_the_edits(label: str, read: str, edits: list[tuple[str, str]]) -> None:
    assert align(label, read) == edits


def test_align_length_is_the_edit_distance() -> None:
    assert len(align("KITTEN", "SITTING")) == 3


def test_scores_overall_per_source_and_per_repository(data_dir: Path) -> None:
    reader = FakeReader(_answers())
    report = evaluate(reader, load_labels(data_dir), batch_size=2)
    assert reader.batches == [2, 1, 1]  # the unreadable image never reaches the reader
    o = report.overall
    assert (o.plates, o.exact, o.edits, o.label_chars) == (5, 2, 8, 26)
    assert o.cer == pytest.approx(8 / 26) and o.accuracy == pytest.approx(0.4)
    assert {k: (v.plates, v.exact, v.edits) for k, v in report.by_repository.items()} == {
        "repo1": (2, 2, 0),
        "repo2": (2, 0, 7),
        "repo3": (1, 0, 1),
    }
    assert set(report.by_source) == {"repo1:a", "repo1:b", "repo2:c", "repo3"}
    assert (report.flagged.plates, report.flagged.exact) == (1, 0)
    assert report.unreadable == ["3.jpg: not an image in any known format"]
    assert report.confusions[("B", "8")] == 1 and report.confusions[("9", "")] == 1
    assert report.confusions[("H", "")] == 1 and report.confusions[("0", "")] == 1
    assert report.infer_s > 0 and report.plates_per_s > 0 and report.ms_per_plate > 0


def test_report_renders_as_table_and_json(data_dir: Path) -> None:
    report = evaluate(FakeReader(_answers(), naive=True), load_labels(data_dir))
    table = report.format_table()
    assert "ordering: seed" in table
    assert "overall" in table and "  repo2" in table and "    c" in table
    assert "B→8 1" in table and "unreadable images: 1" in table
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ordering"] == "naive"
    assert data["overall"]["cer"] == pytest.approx(8 / 26)
    assert data["by_source"]["repo2:c"]["edits"] == 7
    assert {"label": "B", "read": "8", "count": 1} in data["confusions"]
    assert data["misreads"] == [
        {"file": "2.jpg", "source": "repo2:c", "label": "XYZ789", "read": "XYZ78"},
        {"file": "3.jpg", "source": "repo2:c", "label": "HELL01", "read": ""},
        {"file": "4.jpg", "source": "repo3", "label": "B8", "read": "88"},
    ]


def test_limit_takes_the_first_rows(data_dir: Path) -> None:
    rows = load_labels(data_dir, limit=2)
    assert [r.text for r in rows] == ["ABC123", "0SG719"]
    assert rows[0].file == data_dir / "images" / "0.jpg" and rows[0].source == "repo1:a"


def test_missing_labels_or_columns_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"labels\.csv"):
        load_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("path,label\nx.jpg,ABC\n")
    with pytest.raises(ConfigError, match="file, text"):
        load_labels(tmp_path)


def test_run_eval_prints_the_table_and_writes_json(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reader.engine import PlateReader

    built: list[dict[str, object]] = []

    def fake_from_settings(
        cls: type[PlateReader], /, settings: Settings, **kwargs: object
    ) -> FakeReader:
        built.append(kwargs)
        return FakeReader(_answers()[:2], naive=bool(kwargs["naive"]))

    monkeypatch.setattr(PlateReader, "from_settings", classmethod(fake_from_settings))
    out = tmp_path / "report.json"
    code = run_eval(
        Settings(), data_dir, batch_size=4, imgsz=320, limit=2, naive=True, json_out=out
    )
    assert code == 0
    assert built == [{"imgsz": 320, "naive": True}]
    assert "overall" in capsys.readouterr().out
    assert json.loads(out.read_text())["overall"]["exact"] == 2


def test_run_eval_scores_against_an_audit(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reader.engine import PlateReader

    def fake_from_settings(
        cls: type[PlateReader], /, settings: Settings, **kwargs: object
    ) -> FakeReader:
        return FakeReader(_answers())

    monkeypatch.setattr(PlateReader, "from_settings", classmethod(fake_from_settings))
    audit = tmp_path / "audit.csv"
    audit.write_text(
        "file,label,audited,verdict,note\n"
        "images/2.jpg,XYZ789,XYZ78,label_wrong,\n"
        "images/4.jpg,B8,B8,ambiguous,\n"
    )
    out = tmp_path / "report.json"
    kwargs = dict(batch_size=4, imgsz=None, limit=None, naive=False, json_out=out)
    run_eval(Settings(), data_dir, **kwargs)  # type: ignore[arg-type]
    assert json.loads(out.read_text())["overall"]["exact"] == 2
    run_eval(Settings(), data_dir, audit=audit, **kwargs)  # type: ignore[arg-type]
    report = json.loads(out.read_text())
    assert report["overall"]["exact"] == 3
    assert report["audit"]["corrected"] == 1
    assert report["audit"]["misreads"] == {"ambiguous": 1, "not_audited": 1}
    assert {m["file"]: m["verdict"] for m in report["misreads"]} == {
        "3.jpg": "not_audited",
        "4.jpg": "ambiguous",
    }
    assert "misreads by verdict: ambiguous 1, not_audited 1" in capsys.readouterr().out
