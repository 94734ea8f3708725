"""deploy/grafana and compose's Prometheus agree with what a worker really exports and serves."""

import json
import re
from pathlib import Path

import pytest

from plate_ocr.settings import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]

GRAFANA = ROOT / "deploy" / "grafana"


def exported_metric_names() -> set[str]:
    """Every sample name a worker's /metrics can carry, from its real registry."""
    from worker.metrics import WorkerMetrics
    from worker.null_reader import NullReader
    from worker.probes import ProbeServer

    metrics = WorkerMetrics()
    reader = NullReader()
    metrics.describe(reader.model_info, device=reader.device, backend="torch")
    # The probe server adds the queue depth (no samples here: nothing answers on port 1).
    ProbeServer(
        metrics, Settings(redis_url="redis://127.0.0.1:1/0"), port=0, host="127.0.0.1"
    ).close()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
        "info": ("_info",),
    }
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def test_the_dashboard_only_queries_metrics_the_worker_exports() -> None:
    dashboard = json.loads((GRAFANA / "plate-ocr.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bplate_ocr_[a-z0-9_]+", e)}
    exported = exported_metric_names()
    assert not used - exported
    # Throughput, latency, error codes, queue depth, per device: all there.
    for needed in (
        "plate_ocr_readings_total",
        "plate_ocr_end_to_end_latency_seconds_bucket",
        "plate_ocr_queue_wait_seconds_bucket",
        "plate_ocr_queue_depth_jobs",
        "plate_ocr_model_call_seconds_bucket",
        "plate_ocr_model_info",
    ):
        assert needed in used, needed
    assert any("error_code" in e for e in exprs)
    assert any("by (instance, device)" in e for e in exprs)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_compose_provisions_grafana_with_the_dashboard_and_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./grafana/plate-ocr.json"].startswith("/var/lib/grafana/dashboards/")
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/plate-ocr.yml").read_text())
    (entry,) = provider["providers"]
    assert mounts["./grafana/plate-ocr.json"].startswith(entry["options"]["path"] + "/")
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = source["datasources"]
    assert datasource["type"] == "prometheus"
    port = compose["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://prometheus:{port}"


def test_compose_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    deploy = ROOT / "deploy"
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    (config_mount,) = [v for v in prometheus["volumes"] if v.endswith("prometheus.yml:ro")]
    config = yaml.safe_load((deploy / config_mount.split(":")[0]).read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    expected = set()
    for name, service in compose["services"].items():
        if name.startswith("worker"):
            settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
            expected.add(f"{name}:{settings.metrics_port}")
    assert targets == expected
