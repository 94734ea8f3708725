"""The short soak: real worker processes and a real redis-server, one worker SIGKILLed and Redis
SIGKILLed and restarted mid-stream; every job must end as exactly one reading."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH"),
]

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
JOBS = 300


def test_the_short_soak_loses_nothing_and_publishes_nothing_twice(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--jobs", str(JOBS), "--workers", "2", "--rate", "100",
         "--kills", "1", "--restarts", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["lost"] == 0 and report["duplicates"] == 0
    assert report["kills"] == 1 and report["redis_restarts"] == 1  # the faults really happened
    assert report["submitted"] == JOBS and report["submit_failures"] == 0
    assert report["ok"] + report["errors"] == JOBS
    assert report["errors"] > 0, "the poison jobs must be in the mix"
    assert report["unexpected"] == 0, "each poison job ends with its own code, good ones read"
    assert set(report["errors_by_code"]) <= {
        "undecodable_image",
        "foreign_function",
        "invalid_base64",
    }
    last = proc.stdout.strip().splitlines()[-1]
    assert last == (
        f"soak: submitted={JOBS} ok={report['ok']} errors={report['errors']} lost=0 "
        f"duplicates=0 peak_rss_mb={report['peak_rss_mb']}"
    )
