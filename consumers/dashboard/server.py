"""Serving the dashboard: `plate-ocr dashboard`, and a server in a thread for the demo and tests.

It binds to 127.0.0.1 unless told otherwise; any other address needs `dashboard_token`, because
the page shows every plate the service reads. Put a TLS proxy in front of it off the machine: the
token travels in the clear otherwise.
"""

import contextlib
import ipaddress
import logging
import threading
import time
from types import TracebackType
from typing import Any, Self

from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings

__all__ = ["DashboardThread", "check_binding", "is_loopback", "run_dashboard"]

log = logging.getLogger("plate_ocr.consumers.dashboard")

_START_TIMEOUT_S = 10.0
_SHUTDOWN_GRACE_S = 2
_INSTALL_HINT = "the dashboard needs starlette and uvicorn: pip install -e '.[dashboard]'"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or "localhost") is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_binding(settings: Settings, host: str) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and settings.dashboard_token is None:
        raise ConfigError(
            f"the dashboard would be reachable on {host} by anyone: set "
            "PLATE_OCR_DASHBOARD_TOKEN, or bind 127.0.0.1"
        )


def _server(settings: Settings, host: str, port: int, **app_options: Any) -> Any:
    """A uvicorn.Server (imported here: the light install may not have it)."""
    try:
        import uvicorn

        from consumers.dashboard.app import create_app
    except ImportError as e:
        raise ConfigError(f"{_INSTALL_HINT} ({e})") from e
    check_binding(settings, host)
    config = uvicorn.Config(
        create_app(settings, **app_options),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # An open page holds its event stream forever: do not wait on it to stop.
        timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
    )
    return uvicorn.Server(config)


def run_dashboard(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """`plate-ocr dashboard`: serve until interrupted."""
    host = host or settings.dashboard_host
    port = settings.dashboard_port if port is None else port
    server = _server(settings, host, port)
    print(f"dashboard on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    server.run()
    return 0


class DashboardThread:
    """The dashboard served from a background thread: `with DashboardThread(s, port=0) as d:`.

    Port 0 picks a free port; `url` says which once started. `stream_idle_timeout_s` ends a
    quiet event stream (so that tests can watch a browser reconnect).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int = 0,
        stream_idle_timeout_s: float | None = None,
    ) -> None:
        self._host = host or settings.dashboard_host
        self._port = port
        self._server = _server(
            settings, self._host, port, stream_idle_timeout_s=stream_idle_timeout_s
        )
        # uvicorn takes over signals only in the main thread, so Ctrl-C stays the caller's.
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)
        self.url = ""

    def _serve(self) -> None:
        # uvicorn exits when it cannot bind (it has logged why); start() says so.
        with contextlib.suppress(SystemExit):
            self._server.run()

    def start(self) -> "DashboardThread":
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"the dashboard did not start on {self._host}:{self._port} "
                    "(is the port taken? choose another with --port)"
                )
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}/"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
