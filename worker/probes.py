"""`ProbeServer`: /metrics, /healthz and /readyz of one worker, on `--metrics-port`.

- `/metrics`  Prometheus exposition of `WorkerMetrics` (prometheus-client's own WSGI app, so
  content negotiation and gzip are its), plus the queue depth read from Redis per scrape.
- `/healthz`  liveness: 200 while the model loads and while the loop keeps going round; 503 once
  it has not for `health_stale_s` (a model call or a Redis call that never returns). A Redis
  outage is *not* unhealthy: the loop goes on retrying, and restarting the pod would not help.
- `/readyz`   readiness: 200 when the model is loaded and Redis answers a PING; 503 otherwise.

The server runs in daemon threads beside the worker and never touches the worker's own Redis
connection: probes get a client of their own with short timeouts, so a hung Redis answers the
kubelet with a 503 within a couple of seconds instead of hanging the probe.
"""

import logging
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from rq import Queue

from plate_ocr.connection import connect
from plate_ocr.constants import PROBE_REDIS_TIMEOUT_S
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings
from worker.metrics import WorkerMetrics

__all__ = ["ProbeServer"]

log = logging.getLogger("plate_ocr.worker.probes")

StartResponse = Callable[..., Any]


class ProbeServer:
    """Serves the probes of `metrics` on `host:port` until `close()`."""

    def __init__(
        self, metrics: WorkerMetrics, settings: Settings, *, port: int, host: str = "0.0.0.0"
    ) -> None:
        self._metrics = metrics
        self._stale_s = settings.health_stale_s
        self._redis = connect(
            settings,
            client_name="plate-ocr-probes",
            socket_timeout_s=PROBE_REDIS_TIMEOUT_S,
            connect_timeout_s=PROBE_REDIS_TIMEOUT_S,
        )
        metrics.registry.register(_QueueDepth(Queue(settings.queue, connection=self._redis)))
        self._metrics_app = make_wsgi_app(metrics.registry)
        try:
            self._server = make_server(
                host, port, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
            )
        except OSError as e:  # most often: another worker on this host has the port
            self._redis.close()
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from e
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probes", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> "ProbeServer":
        self._thread.start()
        log.info("metrics and probes on :%d (/metrics, /healthz, /readyz)", self.port)
        return self

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever() that never began
            self._server.shutdown()
        self._server.server_close()
        self._redis.close()

    # -- the answers --------------------------------------------------------------------------

    def healthz(self) -> tuple[bool, str]:
        if not self._metrics.loop_started:
            return True, "starting"
        idle_s = self._metrics.seconds_since_progress()
        if idle_s > self._stale_s:
            return False, f"wedged: no progress for {idle_s:.1f} s (limit {self._stale_s:g} s)"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        if not self._metrics.model_loaded:
            return False, "model not loaded"
        try:
            self._redis.ping()
        except redis.RedisError as e:
            return False, f"redis does not answer: {type(e).__name__}: {e}"
        return True, "ok"

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        checks = {"/healthz": self.healthz, "/readyz": self.readyz}
        if path not in checks:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]
        good, why = checks[path]()
        status = "200 OK" if good else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [why.encode() + b"\n"]


class _QueueDepth(Collector):
    """Jobs queued, waiting out a retry backoff, and started, per scrape; nothing when Redis
    does not answer (a gap in the graph, and /readyz says why), never a made-up zero."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "plate_ocr_queue_depth_jobs",
            "Jobs on the queue (queued), waiting to be retried (scheduled) and being read "
            "(started), across all workers",
            labels=["queue", "state"],
        )
        q = self._queue
        try:
            pipe = q.connection.pipeline(transaction=False)
            pipe.llen(q.key)
            pipe.zcard(q.scheduled_job_registry.key)
            pipe.zcard(q.started_job_registry.key)
            queued, scheduled, started = pipe.execute()
        except redis.RedisError as e:
            log.debug("queue depth not collected: %s", e)
        else:
            depths = {"queued": queued, "scheduled": scheduled, "started": started}
            for state, value in depths.items():
                family.add_metric([q.name, state], float(value))
        yield family


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    # A slow /readyz (Redis timing out) must not hold up /healthz or a scrape.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no noise
        pass
