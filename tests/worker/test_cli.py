"""`plate-ocr worker --metrics-port`: the real command, the bundled model, scraped over HTTP."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from plate_ocr.settings import Settings
from producer import PlateProducer
from reader.detector import LIGHT_BACKEND
from worker.cli import _pinned

SAMPLES = Path(__file__).resolve().parents[2] / "plate_ocr" / "samples"


def test_each_gpu_process_serves_on_the_port_plus_its_gpu_index() -> None:
    settings = Settings(metrics_port=9100)
    first, fourth = _pinned(settings, "cuda:0", 0), _pinned(settings, "cuda:3", 3)
    assert (first.device, first.metrics_port) == ("cuda:0", 9100)
    assert (fourth.device, fourth.metrics_port) == ("cuda:3", 9103)
    assert _pinned(Settings(), "cuda:1", 1).metrics_port is None
    named = Settings(worker_id="gpu-box")
    assert [_pinned(named, "cuda:0", n).worker_id for n in (0, 1)] == ["gpu-box-0", "gpu-box-1"]


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met before the deadline: {what}")
        time.sleep(0.1)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, "not listening"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.redis
@pytest.mark.model
@pytest.mark.slow
def test_the_worker_command_serves_metrics_and_probes_for_the_bundled_model(
    settings: Settings, redis_client: redis.Redis, bundled_model: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
    env |= {
        "PLATE_OCR_REDIS_URL": settings.redis_url,
        "PLATE_OCR_QUEUE": settings.queue,
        "PLATE_OCR_RESULTS_STREAM": settings.results_stream,
        "YOLO_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "plate_ocr.cli", "worker", "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--metrics-port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        crops = sorted(SAMPLES.glob("*.jpg"))[:4]
        producer = PlateProducer(settings)
        for crop in crops:
            producer.submit(crop.read_bytes(), camera_id="gate-3")
        wait_for(lambda: get(port, "/readyz") == (200, "ok\n"), timeout_s=180, what="/readyz")
        n = len(crops)
        wait_for(lambda: redis_client.xlen(settings.results_stream) == n, timeout_s=60, what="read")
        assert get(port, "/healthz") == (200, "ok\n")
        status, text = get(port, "/metrics")
        assert status == 200
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        (info,) = [s for s in samples if s.name == "plate_ocr_model_info"]
        assert info.labels["name"] == bundled_model.stem
        # The runtime "auto" resolved to for the bundled model on the CPU.
        assert info.labels["device"] == "cpu" and info.labels["backend"] == LIGHT_BACKEND
        assert len(info.labels["sha256"]) == 64
        read = sum(s.value for s in samples if s.name == "plate_ocr_readings_total")
        assert read == n
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert "metrics and probes on :" in stderr


@pytest.mark.redis
@pytest.mark.model
@pytest.mark.slow
def test_ctrl_c_reaches_each_worker_process_once_and_they_drain(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # As a terminal does: SIGINT to the whole foreground process group. Each child used to get
    # it twice (the terminal's, then the parent's), and a second signal stops without draining.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATE_OCR_")}
    env |= {
        "PLATE_OCR_REDIS_URL": settings.redis_url,
        "PLATE_OCR_QUEUE": settings.queue,
        "PLATE_OCR_RESULTS_STREAM": settings.results_stream,
        "YOLO_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "plate_ocr.cli", "worker", "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--procs-per-device", "2", "--metrics-port", str(port)],
        env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for p in (port, port + 1):
            wait_for(lambda p=p: get(p, "/readyz") == (200, "ok\n"), timeout_s=300, what="ready")
        # Two SIGINTs close together may merge into one, so the group is checked as well: the
        # terminal's Ctrl-C must reach the parent alone, which passes it on once.
        children = psutil.Process(proc.pid).children()  # the workers and multiprocessing's tracker
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        assert all(os.getpgid(w.pid) != proc.pid for w in workers)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    assert stderr.count("SIGINT: finishing the batch in hand") == 2, stderr[-3000:]
    assert "stopping now" not in stderr


def test_a_worker_process_makes_its_gpu_the_current_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from plate_ocr.errors import DeviceUnavailable
    from worker.cli import pin_cuda_device

    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    pin_cuda_device("cuda:2")
    pin_cuda_device("cpu")
    assert chosen == [torch.device("cuda:2")]
    with pytest.raises(DeviceUnavailable, match="4 CUDA device"):
        pin_cuda_device("cuda:7")
