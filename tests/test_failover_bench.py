"""The short failover soak (bench/failover.py): the primary behind Sentinel SIGKILLed twice with
REPLICAS_TO_WAIT=1, nothing lost or published twice, readings flowing again within 30 s."""

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

BENCH = Path(__file__).resolve().parents[1] / "bench" / "failover.py"


def test_the_short_failover_soak_loses_nothing_with_replicas_to_wait_1(tmp_path: Path) -> None:
    out = tmp_path / "failover.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--modes", "1", "--between-s", "2", "--rate", "50",
         "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (report,) = json.loads(out.read_text())
    assert report["replicas_to_wait"] == 1
    assert [k.split(":")[0] for k in report["kills"]] == ["take", "finish"]  # both kills happened
    assert report["submitted"] > 100 and report["readings"] >= report["submitted"]
    assert report["lost"] == 0 and report["duplicates"] == 0 and report["vanished"] == 0
    assert len(report["flow_gap_s"]) == 2 and max(report["flow_gap_s"]) < 30
