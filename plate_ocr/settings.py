"""The one settings object, read once at start-up (env prefix PLATE_OCR_) and passed down.

Nothing else in the code reads the environment. Tests build `Settings(...)` directly or through
`Settings.from_env({...})`, never by patching `os.environ`.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from plate_ocr.constants import (
    DEFAULT_CONFIDENCE,
    DEFAULT_EVENTS_STREAM,
    DEFAULT_MQTT_TOPIC_PREFIX,
    DEFAULT_QUEUE,
    DEFAULT_RESULTS_STREAM,
)

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "PLATE_OCR_"


class Settings(BaseSettings):
    """Every knob of the service. Durations carry their unit in the name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # Connections and names. rediss:// for TLS; user:password@ for AUTH and ACL users.
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = Field(default=DEFAULT_QUEUE, pattern=r"^[A-Za-z0-9_.\-]+$")
    results_stream: str = Field(default=DEFAULT_RESULTS_STREAM, min_length=1)
    stream_maxlen: int = Field(default=100_000, ge=1, description="approximate MAXLEN trimming")
    stream_claim_idle_ms: int = Field(
        default=300_000,
        ge=0,
        description="a group consumer takes over readings another consumer has left "
        "unacknowledged this long, e.g. because it died (0: never)",
    )

    # Producer.
    max_queue_depth: int = Field(default=100_000, ge=1)

    # Model and device.
    model_path: Path | None = Field(default=None, description="None: the bundled model")
    # The detector's calibration (worker.calibration): None, the bundled file, which applies to the
    # bundled detector only; for other weights, the file `python -m training.calibrate` fitted.
    calibration_path: Path | None = Field(
        default=None, description="None: the bundled calibration (bundled detector only)"
    )
    # The fused reader's line recogniser (worker.recogniser): None, the bundled PP-OCRv4 one; or
    # an ONNX file of the same family, such as a fine-tune by `python -m training.train_recogniser`.
    recogniser_path: Path | None = Field(
        default=None, description="None: the bundled line recogniser"
    )
    device: str = "cpu"
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0.0, lt=1.0)
    # fused: the detector locates the serial, PP-OCR's line recogniser reads it, both fused
    # (worker.two_stage); detector: the character detector alone (one model).
    reader: Literal["fused", "detector"] = "fused"
    imgsz: int = Field(default=256, ge=32, le=2048)
    # The runtime (worker.detector.choose_backend). auto: the shipped ONNX on ONNX Runtime
    # (onnxruntime, no torch) for the bundled model or an .onnx file on the CPU; torch for other
    # .pt weights or CUDA. torch|onnx|openvino|engine (worker.backends) need the [gpu] extra.
    backend: str = Field(default="auto", pattern=r"^(auto|onnxruntime|torch|onnx|openvino|engine)$")

    # Batching.
    batch_size: int = Field(default=32, ge=1, le=1024)
    max_wait_ms: int = Field(default=10, ge=0)
    # Batches taken and decoded ahead of the one being read (worker.prefetch). Two, so that
    # the prefetch thread's Python overlaps the publishing script as well as the taking one:
    # with the no-op reader one worker did 7.0-8.1k jobs/s at 1 and 11.2-12.4k at 2. A worker
    # holds up to this + 1 batches started; shutdown_grace_s must cover reading them.
    prefetch_batches: int = Field(default=2, ge=1, le=8)
    # Threads decoding a batch's images beside the prefetch thread; None: one per two CPUs (so
    # none on a 2-core box, where they would only take cores from the model), at most 4.
    decode_threads: int | None = Field(default=None, ge=0, le=64)
    # ONNX Runtime's intra-op threads per session (None: half the CPUs, worker.engine.
    # default_threads, measured). Spinning off: a worker's two sessions run one after the other
    # beside the prefetch thread, and idle threads that spin take the cores those need.
    threads: int | None = Field(default=None, ge=1, le=256)
    ort_spinning: bool = False

    # Input limits: safe defaults for plate crops.
    max_image_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=16_000_000, ge=1)
    max_metadata_bytes: int = Field(default=4096, ge=0)
    allowed_roots: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(), description="file:// references resolve only under these (os.pathsep list)"
    )

    # Reliability.
    lease_s: int = Field(default=30, ge=2, description="a started job is orphaned after this")
    recovery_interval_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    retry_delay_s: float = Field(
        default=1.0,
        ge=0,
        description="a job whose model call failed is retried after this, doubled per attempt "
        "(0: at once, at the end of the queue)",
    )
    result_ttl_s: int = Field(default=3600, ge=0)
    failure_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    reconnect_max_backoff_s: float = Field(default=10.0, gt=0)
    shutdown_grace_s: float = Field(default=25.0, ge=0, description="< the pod's 30 s grace")

    # The dashboard (plate-ocr dashboard). It only reads; off loopback it needs the token.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8080, ge=1, le=65535)
    dashboard_token: SecretStr | None = Field(
        default=None, description="required by every request when set (and off loopback)"
    )
    dashboard_window: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="newest readings the page loads, counts per camera and code, and searches",
    )

    # Metrics and probes (worker.probes): /metrics, /healthz, /readyz. None: not served.
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="--devices / --procs-per-device: the n-th process serves on metrics_port + n",
    )
    health_stale_s: float = Field(
        default=60.0,
        gt=0,
        description="/healthz fails once the loop has not gone round this long (keep it above "
        "lease_s plus a batch's model time)",
    )

    worker_id: str | None = None

    # Vehicle events (plate-ocr events): one PlateEvent per (camera_id, track_id).
    events_stream: str = Field(default=DEFAULT_EVENTS_STREAM, min_length=1)
    events_idle_timeout_s: float = Field(
        default=3.0, gt=0, description="a track is closed once no reading came for this long"
    )
    events_max_duration_s: float = Field(
        default=60.0, gt=0, description="a track open this long is closed (a parked car)"
    )
    events_single_reads: bool = Field(
        default=False, description="readings without a track_id become single-read events"
    )

    # MQTT out (plate-ocr mqtt). mqtt_tls with no CA file trusts the system's CAs.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_topic_prefix: str = Field(default=DEFAULT_MQTT_TOPIC_PREFIX, pattern=r"^[^#+]+$")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_client_id: str | None = Field(default=None, description="None: plate-ocr-mqtt-<host>")
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    mqtt_discovery: bool = Field(default=False, description="Home Assistant MQTT discovery")
    mqtt_discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+]+$")

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(p) for p in value.split(os.pathsep) if p)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> "Settings":
        """Settings from an explicit environment mapping plus overrides (CLI flags win)."""
        values: dict[str, Any] = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in environ.items()
            if key.startswith(ENV_PREFIX)
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        # A prefix no variable has: what was passed in is the whole truth, not os.environ.
        return cls(_env_prefix="__PLATE_OCR_UNUSED__", **values)  # type: ignore[call-arg]
