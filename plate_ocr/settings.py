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
    DEFAULT_ALERTS_STREAM,
    DEFAULT_CONFIDENCE,
    DEFAULT_EVENTS_STREAM,
    DEFAULT_MQTT_TOPIC_PREFIX,
    DEFAULT_QUEUE,
    DEFAULT_RESULTS_STREAM,
    DEFAULT_WATCH_THRESHOLD,
    DEFAULT_WEBHOOK_DEAD_LETTER_STREAM,
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

    # Redis behind Sentinel (plate_ocr.connection): a `redis+sentinel://h1:26379,h2:26379/MASTER/DB`
    # redis_url (`rediss+sentinel://` for TLS, `user:password@` for the data nodes' AUTH), or
    # these two, with redis_url then giving only the scheme, user, password and db.
    sentinels: str | None = Field(
        default=None, description="host:port of each Sentinel, comma-separated"
    )
    sentinel_master: str | None = Field(default=None, description="the name Sentinel monitors")
    sentinel_password: SecretStr | None = Field(
        default=None, description="AUTH for the Sentinels themselves, when they require one"
    )
    # Writes you can wait on: a job id is returned, and a batch counted published, only once
    # WAIT says that many replicas have it (0: as soon as the primary has it; see the README).
    replicas_to_wait: int = Field(default=0, ge=0)
    replicas_wait_timeout_ms: int = Field(
        default=1000, ge=1, description="how long one WAIT waits before the write is retried"
    )

    # Producer.
    max_queue_depth: int = Field(default=100_000, ge=1)

    # Model and device.
    model_path: Path | None = Field(default=None, description="None: the bundled model")
    # The detector's calibration (reader.calibration): None, the bundled file, which applies to the
    # bundled detector only; for other weights, the file `python -m training.calibrate` fitted.
    calibration_path: Path | None = Field(
        default=None, description="None: the bundled calibration (bundled detector only)"
    )
    # The fused reader's line recogniser (reader.recogniser): None, the bundled PP-OCRv4 one; or
    # an ONNX file of the same family, such as a fine-tune by `python -m training.train_recogniser`.
    recogniser_path: Path | None = Field(
        default=None, description="None: the bundled line recogniser"
    )
    device: str = "cpu"
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0.0, lt=1.0)
    # fused: the detector locates the serial, PP-OCR's line recogniser reads it, both fused
    # (reader.two_stage); detector: the character detector alone (one model); fast: one small
    # network on the whole crop (reader.fast_reader).
    reader: Literal["fused", "detector", "fast"] = "fused"
    # The fast reader's network (reader.fast_reader): None, the bundled one; or an ONNX file
    # `python -m training.export_fast_reader` wrote.
    fast_reader_path: Path | None = Field(default=None, description="None: the bundled fast reader")
    # The fused reader's cascade (reader.engine.PlateReader): the fast reader reads every crop
    # first, and its readings at this calibrated confidence or more are kept; the rest are read
    # in two stages. None: no cascade, every crop in two stages. CPU only (on a GPU, none).
    cascade_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # What locates the serial for the fused reader's line recogniser (reader.locator): the
    # character detector, or the fast reader (CPU only, 1.6x the plates/s, 0.3 points fewer
    # plates exact on the dev set).
    locator: Literal["detector", "fast"] = "detector"
    imgsz: int = Field(default=256, ge=32, le=2048)
    # The runtime (reader.detector.choose_backend). auto: the shipped ONNX on ONNX Runtime
    # (onnxruntime, no torch) for the bundled model or an .onnx file on the CPU; torch for other
    # .pt weights or CUDA. torch|onnx|openvino|engine (reader.backends) need the [gpu] extra.
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
    # ONNX Runtime's intra-op threads per session (None: half the CPUs, reader.engine.
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

    # Watch lists and alerts (plate-ocr watch), webhooks (plate-ocr webhook), the history
    # (plate-ocr store; the dashboard searches it when history_dsn is set).
    alerts_stream: str = Field(default=DEFAULT_ALERTS_STREAM, min_length=1)
    watch_threshold: float = Field(
        default=DEFAULT_WATCH_THRESHOLD, gt=0.0, le=1.0, description="alert at this score"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of X-Plate-OCR-Signature (required)"
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="then the entry goes to the dead-letter stream"
    )
    webhook_backoff_s: float = Field(
        default=1.0, ge=0, description="before the 2nd attempt, doubled per attempt"
    )
    webhook_max_backoff_s: float = Field(default=60.0, ge=0)
    webhook_dead_letter_stream: str = Field(
        default=DEFAULT_WEBHOOK_DEAD_LETTER_STREAM, min_length=1
    )
    history_dsn: SecretStr | None = Field(
        default=None, description="postgresql://... of plate-ocr store and the dashboard search"
    )
    history_retention_days: int | None = Field(
        default=None, ge=1, description="plate-ocr store deletes older rows (None: keep all)"
    )

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

    def as_env(self) -> dict[str, str]:
        """These settings as PLATE_OCR_ variables, which `from_env` reads back to equal settings:
        how a parent hands its settings to the worker processes it starts."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, tuple):
                if not value:
                    continue
                value = _LIST_SEPARATORS[name].join(str(item) for item in value)
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env


# How the list settings are written in one variable (their `_split_*` validators above).
_LIST_SEPARATORS: dict[str, str] = {"allowed_roots": os.pathsep}
