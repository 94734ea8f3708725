import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from plate_ocr.constants import DEFAULT_QUEUE, DEFAULT_RESULTS_STREAM
from plate_ocr.settings import Settings


def test_defaults_are_safe_for_plate_crops() -> None:
    settings = Settings.from_env({})
    assert (settings.queue, settings.results_stream) == (DEFAULT_QUEUE, DEFAULT_RESULTS_STREAM)
    assert settings.device == "cpu"
    assert settings.allowed_roots == ()  # no file:// reference is readable until roots are given
    assert settings.max_image_bytes <= 16 * 1024 * 1024
    assert settings.shutdown_grace_s < 30  # inside the usual 30 s termination grace period


def test_from_env_reads_only_prefixed_variables_and_casts_them() -> None:
    settings = Settings.from_env(
        {
            "PLATE_OCR_QUEUE": "night-plates",
            "PLATE_OCR_BATCH_SIZE": "64",
            "PLATE_OCR_CONFIDENCE": "0.4",
            "PLATE_OCR_MODEL_PATH": "/models/chars.pt",
            "PLATE_OCR_CALIBRATION_PATH": "/models/chars-calibration.json",
            "REDIS_URL": "redis://elsewhere:6379/0",  # not ours: ignored
        }
    )
    assert (settings.queue, settings.batch_size, settings.confidence) == ("night-plates", 64, 0.4)
    assert settings.model_path == Path("/models/chars.pt")
    assert settings.calibration_path == Path("/models/chars-calibration.json")
    assert settings.redis_url == Settings().redis_url


def test_overrides_win_over_the_environment_and_none_means_not_given() -> None:
    env = {"PLATE_OCR_QUEUE": "from-env", "PLATE_OCR_DEVICE": "cuda:0"}
    settings = Settings.from_env(env, queue="from-flag", device=None)
    assert (settings.queue, settings.device) == ("from-flag", "cuda:0")


def test_from_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATE_OCR_QUEUE", "leaked")
    assert Settings.from_env({}).queue == DEFAULT_QUEUE


def test_an_unknown_plate_ocr_variable_fails_loudly() -> None:
    with pytest.raises(ValidationError, match="batchsize"):
        Settings.from_env({"PLATE_OCR_BATCHSIZE": "64"})  # a typo must not be silently ignored


def test_allowed_roots_is_an_os_pathsep_separated_list() -> None:
    settings = Settings.from_env(
        {"PLATE_OCR_ALLOWED_ROOTS": f"/data{os.pathsep}/mnt/crops{os.pathsep}"}
    )
    assert settings.allowed_roots == (Path("/data"), Path("/mnt/crops"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("queue", "has space"),
        ("queue", "a:b"),
        ("batch_size", 0),
        ("confidence", 1.0),
        ("max_queue_depth", 0),
        ("lease_s", 1),
        ("reconnect_max_backoff_s", 0),
    ],
)
def test_invalid_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.from_env({}, **{name: value})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.queue = "other"


def test_every_duration_carries_its_unit() -> None:
    counts = {"replicas_to_wait"}  # how many replicas WAIT waits for (the name), no time
    for name, field in Settings.model_fields.items():
        if name in counts:
            continue
        if field.annotation in (int, float) and any(
            w in name for w in ("ttl", "wait", "grace", "lease", "backoff", "interval")
        ):
            assert name.endswith(("_s", "_ms")), name


def test_the_backend_defaults_to_auto_and_knows_the_light_runtime() -> None:
    assert Settings.from_env({}).backend == "auto"
    light = Settings.from_env({"PLATE_OCR_BACKEND": "onnxruntime"})
    assert light.backend == "onnxruntime"
    with pytest.raises(ValidationError):
        Settings.from_env({"PLATE_OCR_BACKEND": "tensorflow"})


def test_as_env_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/3",
        allowed_roots=(tmp_path / "a", tmp_path / "b"),
        sentinels="127.0.0.1:26379,127.0.0.1:26380",
        sentinel_master="plates",
        dashboard_token="s3cret",
        batch_size=7,
    )
    assert Settings.from_env(settings.as_env()) == settings
    assert "PLATE_OCR_MQTT_PASSWORD" not in settings.as_env()  # None: left unset
