"""bench/events.py end to end, small: it reads real crops with the bundled model and prints per-read
vs per-event accuracy. Figures are never asserted (a bench, not a timed test), only that both are
measured on the tracks asked for."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.model
@pytest.mark.slow
def test_the_events_bench_reports_per_read_and_per_event_exact_match(tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    command = [sys.executable, str(REPO / "bench" / "events.py"), "--tracks", "3", "--reads", "3"]
    done = subprocess.run(
        [*command, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "per read" in done.stdout and "event" in done.stdout
    synthetic = json.loads(out.read_text())["synthetic"]
    assert (synthetic["tracks"], synthetic["reads"]) == (3, 9)
    for key in ("per_read_exact", "best_read_exact", "per_event_exact"):
        assert 0.0 <= synthetic[key] <= 1.0
