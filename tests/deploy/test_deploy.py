"""The deployment files agree with the code: real settings, real CLI flags, GPUs pinned one each."""

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from plate_ocr.connection import sentinel_target
from plate_ocr.parser import build_parser
from plate_ocr.settings import ENV_PREFIX, Settings

yaml = pytest.importorskip("yaml")
specifiers = pytest.importorskip("packaging.specifiers")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def workers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if name.startswith("worker")}


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return devices


def test_compose_has_redis_gpu_workers_a_cpu_profile_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"redis", "worker-gpu0", "worker-gpu1", "worker-cpu", "rq-dashboard"} <= set(services)
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert "profiles" not in services["worker-gpu0"]


def test_redis_persists_with_aof_and_never_evicts_jobs(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_each_gpu_worker_reserves_its_own_gpu_and_calls_it_cuda_0(
    services: dict[str, dict[str, Any]],
) -> None:
    gpu_workers = {n: s for n, s in workers(services).items() if gpu_devices(s)}
    assert len(gpu_workers) >= 2
    pinned = []
    for name, service in gpu_workers.items():
        (device,) = gpu_devices(service)
        assert device["capabilities"] == ["gpu"]
        assert device["driver"] == "nvidia"
        assert len(device["device_ids"]) == 1
        pinned.append(device["device_ids"][0])
        # The container sees only the pinned GPU, renumbered to 0.
        assert service["command"][-2:] == ["--device", "cuda:0"], name
    assert sorted(pinned) == [str(i) for i in range(len(pinned))]


def test_the_cpu_worker_reserves_no_gpu(services: dict[str, dict[str, Any]]) -> None:
    assert gpu_devices(services["worker-cpu"]) == []
    assert services["worker-cpu"]["command"][-2:] == ["--device", "cpu"]


def test_worker_commands_are_accepted_by_the_cli(services: dict[str, dict[str, Any]]) -> None:
    for service in workers(services).values():
        assert build_parser().parse_args(service["command"]).command == "worker"


def test_every_plate_ocr_variable_named_in_deploy_is_a_setting() -> None:
    named = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            named |= set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", path.read_text()))
    assert named, "no PLATE_OCR_ variables found: the scan itself is broken"
    unknown = {n for n in named if n[len(ENV_PREFIX) :].lower() not in Settings.model_fields}
    assert not unknown


def test_every_worker_environment_builds_valid_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in workers(services).items():
        settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        if name == "worker-ha":
            continue  # the HA profile's: see test_the_ha_profile_*
        assert settings.redis_url.startswith("redis://redis:")


def test_the_ha_profile_has_a_primary_a_replica_three_sentinels_and_aof(
    services: dict[str, dict[str, Any]],
) -> None:
    ha = {name for name, s in services.items() if s.get("profiles") == ["ha"]}
    assert ha == {"redis-primary", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
                  "worker-ha"}  # fmt: skip
    for node in ("redis-primary", "redis-replica"):
        command = " ".join(services[node]["command"])
        assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
        assert any(v.endswith(":/data") for v in services[node]["volumes"])
    assert "--replicaof redis-primary 6379" in " ".join(services["redis-replica"]["command"])
    quorum = set()
    for n in (1, 2, 3):
        script = services[f"sentinel-{n}"]["command"][0]
        assert services[f"sentinel-{n}"]["entrypoint"] == ["sh", "-c"]
        assert "--sentinel" in script
        monitor = re.search(r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", script)
        assert monitor is not None
        quorum.add(monitor.groups())
    ((master, host, port, votes),) = quorum  # all three watch the same primary
    assert (host, port, int(votes)) == ("redis-primary", "6379", 2)

    settings = Settings.from_env(
        {k: str(v) for k, v in services["worker-ha"]["environment"].items()}
    )
    target = sentinel_target(settings)
    assert target is not None and target.master == master
    assert {h for h, _ in target.sentinels} == {"sentinel-1", "sentinel-2", "sentinel-3"}
    assert settings.replicas_to_wait == 1


def test_workers_finish_in_flight_work_inside_the_stop_grace_period(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in workers(services).items():
        grace = service["stop_grace_period"]
        assert re.fullmatch(r"\d+s", grace), grace
        settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        # A few seconds of slack for closing connections after the last batch.
        assert settings.shutdown_grace_s + 3 <= int(grace[:-1]), name
        assert service["stop_signal"] == "SIGTERM"


def extra(name: str) -> list[str]:
    """The requirements of pyproject's extra `name`."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[str] = pyproject["project"]["optional-dependencies"][name]
    return found


def gpu_requirement(package: str) -> str:
    """The version specifier of `package` in pyproject's `gpu` extra, e.g. '>=2.2,<=2.14.1'."""
    for requirement in extra("gpu"):
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement)
        if name is not None and name.group(0) == package:
            return str(requirement[name.end() :])
    raise AssertionError(f"{package} is not in the gpu extra")


@pytest.mark.parametrize("package", ["torch", "torchvision"])
def test_the_cuda_image_installs_torch_inside_the_pyproject_cap(package: str) -> None:
    text = (DEPLOY / "Dockerfile.cuda").read_text()
    pinned = re.search(rf'"{package}==([^"]+)"', text)
    assert pinned is not None
    assert pinned.group(1) in specifiers.SpecifierSet(gpu_requirement(package))
    assert re.search(r'pip install "\.\[(worker|gpu)\]"', text)
    assert "USER " in text


def test_the_cpu_image_is_the_light_install_without_torch() -> None:
    text = (DEPLOY / "Dockerfile.cpu").read_text()
    assert 'pip install ".[cpu]"' in text
    assert "torch" not in text.replace("no torch", "") and "--index-url" not in text
    assert "USER " in text
    names = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0) for r in extra("cpu")}  # type: ignore[union-attr]
    assert "onnxruntime" in names
    assert not names & {"torch", "torchvision", "ultralytics", "plate-ocr-stream"}


def test_the_cuda_image_is_built_on_an_nvidia_cuda_runtime() -> None:
    text = (DEPLOY / "Dockerfile.cuda").read_text()
    base = re.search(r"ARG CUDA_IMAGE=(\S+)", text)
    assert base is not None
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", base.group(1))
    assert "--index-url" in text and "/whl/cu" in text


def test_the_dashboard_reads_our_json_jobs_and_has_what_it_imports(
    services: dict[str, dict[str, Any]],
) -> None:
    dashboard = services["rq-dashboard"]
    # Without --json rq-dashboard unpickles job data, and its finished/failed lists answer 500.
    assert "--json" in dashboard["command"]
    url = dashboard["command"][dashboard["command"].index("--redis-url") + 1]
    worker_env = services["worker-cpu"]["environment"]
    assert url == worker_env["PLATE_OCR_REDIS_URL"]  # the workers' Redis and database
    assert dashboard["build"]["dockerfile"] == "deploy/Dockerfile.dashboard"
    text = (DEPLOY / "Dockerfile.dashboard").read_text()
    pins = dict(re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', text))
    # rq-dashboard imports six without declaring it: the image must install it itself.
    assert {"rq-dashboard", "six", "rq"} <= set(pins)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (rq_requirement,) = (r for r in pyproject["project"]["dependencies"] if r.startswith("rq"))
    assert pins["rq"] in specifiers.SpecifierSet(rq_requirement[2:].split("#")[0].strip())
    assert "USER " in text


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_the_worker_images_copy_every_package_the_worker_runs(dockerfile: str) -> None:
    copied = set(re.findall(r"^COPY (\w+) \1$", (DEPLOY / dockerfile).read_text(), re.M))
    assert {"schemas", "plate_ocr", "producer", "reader", "worker", "consumers"} <= copied
