"""deploy/k8s agrees with the code: valid objects, real settings, real ports.

The overlays are rendered here by a small kustomize of our own (resources, namespace, labels,
images, patches by path: all that deploy/k8s uses, and it refuses anything else), so the suite
needs no kustomize binary; where `kubectl` is installed, its own rendering must match ours.
"""

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plate_ocr.connection import sentinel_target
from plate_ocr.constants import RQ_QUEUE_KEY_PREFIX
from plate_ocr.parser import build_parser
from plate_ocr.settings import ENV_PREFIX, Settings

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes we promise to run on

Doc = dict[str, Any]


# -- a small kustomize --------------------------------------------------------------------------

_KNOWN_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KNOWN_KEYS
    assert not unknown, f"{directory}: the test's renderer does not know {unknown}"
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, patch
        body = yaml.safe_load((directory / patch["path"]).read_text())
        target = find(docs, body["kind"], body["metadata"]["name"])  # must exist
        if body.get("$patch") == "delete":  # strategic merge's deletion of a whole object
            assert set(body) == {"$patch", "apiVersion", "kind", "metadata"}, body
            docs.remove(target)
            continue
        _merge(target, body)
    for image in kustomization.get("images", []):
        for container in containers(docs):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for doc in docs:
        if "namespace" in kustomization and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kustomization["namespace"]
        for group in kustomization.get("labels", []):
            assert set(group) == {"pairs"}, group  # no selectors or templates touched
            doc["metadata"].setdefault("labels", {}).update(group["pairs"])
    return docs


def _merge(target: Doc, patch: Doc) -> None:
    """Strategic merge as far as deploy/k8s needs it: maps merge, lists of named items merge
    by name, any other list is replaced."""
    for key, value in patch.items():
        old = target.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _merge(old, value)
        elif _named(value) and _named(old):
            by_name = {item["name"]: item for item in old}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    old.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all("name" in v for v in value)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def containers(docs: list[Doc]) -> Iterator[Doc]:
    for doc in of_kind(docs, "Deployment"):
        yield from doc["spec"]["template"]["spec"]["containers"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(K8S / "overlays" / request.param)


def worker(docs: list[Doc]) -> Doc:
    return find(docs, "Deployment", "plate-ocr-worker")


def worker_container(docs: list[Doc]) -> Doc:
    (container,) = worker(docs)["spec"]["template"]["spec"]["containers"]  # one worker per pod
    return container


def worker_settings(docs: list[Doc]) -> Settings:
    """What a worker pod's Settings would be: the ConfigMap, plus the Secret's Redis URL."""
    container = worker_container(docs)
    environ: dict[str, str] = {}
    for source in container["envFrom"]:
        environ |= find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    for var in container["env"]:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            environ[var["name"]] = find(docs, "Secret", ref["name"])["stringData"][ref["key"]]
        elif "value" in var:
            environ[var["name"]] = var["value"]
    return Settings.from_env(environ)


# -- the tests ----------------------------------------------------------------------------------


def test_there_are_a_gpu_and_a_cpu_overlay() -> None:
    assert OVERLAYS == ["cpu", "gpu"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl to compare with")
def test_our_rendering_matches_kubectl_kustomize(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / name)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]

    def key(doc: Doc) -> str:
        return json.dumps(doc, sort_keys=True)

    assert sorted(map(key, docs)) == sorted(map(key, theirs))


def test_every_core_object_passes_kubernetes_validate(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    core = [d for d in docs if (d["apiVersion"], d["kind"]) in _CORE]
    kinds = {d["kind"] for d in core}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"} <= kinds
    assert {"PersistentVolumeClaim", "PodDisruptionBudget"} <= kinds
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_does_catch_a_broken_object(overlay: tuple[str, list[Doc]]) -> None:
    broken = copy.deepcopy(worker(overlay[1]))
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 40  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# What each custom resource's CRD requires, from KEDA's and prometheus-operator's own CRDs
# (keda.sh_scaledobjects.yaml, keda.sh_triggerauthentications.yaml,
# monitoring.coreos.com_servicemonitors.yaml): required fields and their types.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NAMED = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_CRD_SCHEMAS: dict[tuple[str, str], Doc] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": _NAMED,
                    "minReplicaCount": {"type": "integer"},
                    "maxReplicaCount": {"type": "integer"},
                    "pollingInterval": {"type": "integer"},
                    "cooldownPeriod": {"type": "integer"},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"type": "string"},
                                "metadata": _STRING_MAP,  # every value a string: "128", not 128
                                "authenticationRef": _NAMED,
                            },
                        },
                    },
                },
            }
        },
    },
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "properties": {
                                k: {"type": "string"} for k in ("parameter", "name", "key")
                            },
                        },
                    }
                },
            }
        },
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "anyOf": [{"required": ["port"]}, {"required": ["targetPort"]}],
                        },
                    },
                },
            }
        },
    },
}


def test_keda_and_prometheus_operator_objects_have_what_their_crds_require(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) not in _CORE]
    assert {(d["apiVersion"], d["kind"]) for d in custom} == set(_CRD_SCHEMAS)
    for doc in custom:
        jsonschema.validate(doc, _CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


_CORE = {
    ("v1", kind)
    for kind in ("Namespace", "ConfigMap", "Secret", "Service", "PersistentVolumeClaim")
} | {("apps/v1", "Deployment"), ("policy/v1", "PodDisruptionBudget")}


def test_the_gpu_overlay_gives_each_pod_one_gpu_seen_as_cuda_0() -> None:
    docs = render(K8S / "overlays" / "gpu")
    container = worker_container(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["args"] == ["worker", "--device", "cuda:0"]
    assert container["image"].endswith(":cuda")
    tolerations = worker(docs)["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_the_cpu_overlay_asks_for_no_gpu_and_runs_on_the_cpu() -> None:
    docs = render(K8S / "overlays" / "cpu")
    container = worker_container(docs)
    assert "nvidia.com/gpu" not in json.dumps(container)
    assert container["args"] == ["worker", "--device", "cpu"]
    assert container["image"].endswith(":cpu")
    assert worker_settings(docs).batch_size == 8


def test_one_worker_per_pod_with_arguments_the_cli_accepts(overlay: tuple[str, list[Doc]]) -> None:
    args = build_parser().parse_args(worker_container(overlay[1])["args"])
    assert args.command == "worker"
    assert args.devices is None  # several GPUs per pod would hide one wedged GPU behind others


def test_settings_come_from_the_configmap_and_the_redis_url_from_the_secret(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    container = worker_container(docs)
    named = set(find(docs, "ConfigMap", "plate-ocr-settings")["data"])
    named |= {var["name"] for var in container["env"]}
    assert all(n.startswith(ENV_PREFIX) for n in named)
    unknown = {n for n in named if n[len(ENV_PREFIX) :].lower() not in Settings.model_fields}
    assert not unknown
    (url,) = [v for v in container["env"] if v["name"] == f"{ENV_PREFIX}REDIS_URL"]
    assert url["valueFrom"]["secretKeyRef"]["name"] == "plate-ocr-redis"
    assert f"{ENV_PREFIX}REDIS_URL" not in find(docs, "ConfigMap", "plate-ocr-settings")["data"]
    settings = worker_settings(docs)
    assert settings.metrics_port is not None
    # The URL reaches the Redis of redis.yaml.
    redis_service = find(docs, "Service", "redis")
    assert re.fullmatch(
        rf"redis://redis:{redis_service['spec']['ports'][0]['port']}/\d+", settings.redis_url
    )


def test_the_probes_and_ports_are_what_the_worker_serves(overlay: tuple[str, list[Doc]]) -> None:
    from worker.metrics import WorkerMetrics
    from worker.null_reader import NullReader
    from worker.probes import ProbeServer

    _, docs = overlay
    settings = worker_settings(docs)
    container = worker_container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": settings.metrics_port}
    paths = set()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in (ports["metrics"], "metrics"), probe
        paths.add(get["path"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The paths are served by a real probe server (a 404 would fail every pod).
    import urllib.error
    import urllib.request

    metrics = WorkerMetrics()
    reader = NullReader()
    metrics.describe(reader.model_info, device=reader.device, backend=settings.backend)
    server = ProbeServer(metrics, settings, port=0, host="127.0.0.1").start()
    try:
        for path in {*paths, _monitor_path(docs)}:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10):
                    pass
            except urllib.error.HTTPError as e:
                assert e.code == 503, path  # no Redis named "redis" here: not ready, but served
    finally:
        server.close()


def _monitor_path(docs: list[Doc]) -> str:
    (endpoint,) = find(docs, "ServiceMonitor", "plate-ocr-worker")["spec"]["endpoints"]
    return str(endpoint["path"])


def test_prometheus_finds_the_metrics_port_of_every_worker_pod(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    pod_labels = worker(docs)["spec"]["template"]["metadata"]["labels"]
    service = find(docs, "Service", "plate-ocr-worker-metrics")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    monitor = find(docs, "ServiceMonitor", "plate-ocr-worker")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert _monitor_path(docs) == "/metrics"


def test_pods_get_longer_to_stop_than_the_worker_takes_to_finish(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    grace_s = worker(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # A few seconds of slack for closing connections after the last batch.
    assert worker_settings(docs).shutdown_grace_s + 3 <= grace_s


def test_keda_scales_the_workers_on_the_queue_they_take_from(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    scaled = find(docs, "ScaledObject", "plate-ocr-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker(docs)["metadata"]["name"]
    assert "replicas" not in worker(docs)["spec"]  # KEDA's to set
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    settings = worker_settings(docs)
    assert trigger["metadata"]["listName"] == RQ_QUEUE_KEY_PREFIX + settings.queue
    assert int(trigger["metadata"]["databaseIndex"]) == int(settings.redis_url.rsplit("/", 1)[1])
    assert int(trigger["metadata"]["listLength"]) >= settings.batch_size
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in find(docs, "Secret", ref["name"])["stringData"]
    # KEDA's operator runs in its own namespace: the address must be fully qualified.
    secret = find(docs, "Secret", "plate-ocr-redis")["stringData"]
    namespace = worker(docs)["metadata"]["namespace"]
    redis_port = find(docs, "Service", "redis")["spec"]["ports"][0]["port"]
    assert secret["address"] == f"redis.{namespace}.svc.cluster.local:{redis_port}"


def test_a_disruption_takes_at_most_one_worker(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    pdb = find(docs, "PodDisruptionBudget", "plate-ocr-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = worker(docs)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_redis_keeps_an_append_only_file_on_a_persistent_volume(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    redis = find(docs, "Deployment", "redis")
    spec = redis["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = " ".join(container["args"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args
    data_dir = re.search(r"--dir (\S+)", args)
    assert data_dir is not None
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == data_dir.group(1)
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert redis["spec"]["strategy"]["type"] == "Recreate"  # a ReadWriteOnce volume


def test_pods_run_as_the_user_the_images_create(overlay: tuple[str, list[Doc]]) -> None:
    uid = worker(overlay[1])["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    for dockerfile in ("Dockerfile.cuda", "Dockerfile.cpu"):
        created = re.search(r"useradd .*--uid (\d+)", (ROOT / "deploy" / dockerfile).read_text())
        assert created is not None and int(created.group(1)) == uid, dockerfile


# -- the Sentinel variant (deploy/k8s/ha) -------------------------------------------------------


@pytest.fixture(scope="module")
def ha_docs() -> list[Doc]:
    return render(K8S / "ha")


def test_the_ha_variant_points_the_workers_at_sentinel_and_waits_for_a_replica(
    ha_docs: list[Doc],
) -> None:
    settings = worker_settings(ha_docs)
    target = sentinel_target(settings)
    assert target is not None and target.sentinels and target.master
    assert settings.replicas_to_wait == 1
    # The single Redis pod of the base is gone, and nothing else refers to it.
    kinds_names = {(d["kind"], d["metadata"]["name"]) for d in ha_docs}
    assert not kinds_names & {
        ("Deployment", "redis"), ("Service", "redis"), ("PersistentVolumeClaim", "redis-data")
    }  # fmt: skip
    for doc in ha_docs:
        if (doc["apiVersion"], doc["kind"]) in _CORE:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        elif (doc["apiVersion"], doc["kind"]) in _CRD_SCHEMAS:
            jsonschema.validate(doc, _CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])


def test_the_ha_variant_scales_on_the_queue_through_the_same_sentinels(
    ha_docs: list[Doc],
) -> None:
    settings = worker_settings(ha_docs)
    target = sentinel_target(settings)
    assert target is not None
    (trigger,) = find(ha_docs, "ScaledObject", "plate-ocr-worker")["spec"]["triggers"]
    assert trigger["type"] == "redis-sentinel"
    meta = trigger["metadata"]
    assert meta["addresses"] == ",".join(f"{h}:{p}" for h, p in target.sentinels)
    assert meta["sentinelMaster"] == target.master
    assert int(meta["databaseIndex"]) == target.db
    assert meta["listName"] == RQ_QUEUE_KEY_PREFIX + settings.queue


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl to compare with")
def test_our_rendering_of_the_ha_variant_matches_kubectl_kustomize(ha_docs: list[Doc]) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "ha")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]

    def key(doc: Doc) -> str:
        return json.dumps(doc, sort_keys=True)

    assert sorted(map(key, ha_docs)) == sorted(map(key, theirs))
