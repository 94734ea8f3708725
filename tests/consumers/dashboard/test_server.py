"""Serving the dashboard: where it may bind, the command line, and the light install."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import redis
from pydantic import SecretStr

from consumers.dashboard.crop import image_type
from consumers.dashboard.server import DashboardThread, check_binding
from plate_ocr.errors import ConfigError
from plate_ocr.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_binding(Settings(), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "dashboard.example"])
def test_anything_else_needs_the_token(host: str) -> None:
    with pytest.raises(ConfigError, match="PLATE_OCR_DASHBOARD_TOKEN"):
        check_binding(Settings(), host)
    check_binding(Settings(dashboard_token=SecretStr("t")), host)


def test_the_dashboard_binds_to_loopback_by_default() -> None:
    settings = Settings()
    assert settings.dashboard_host == "127.0.0.1" and settings.dashboard_port == 8080


def test_a_public_bind_without_token_is_refused_before_serving() -> None:
    with pytest.raises(ConfigError, match=r"reachable on 0\.0\.0\.0 by anyone"):
        DashboardThread(Settings(), host="0.0.0.0")


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"<svg onload=alert(1)>", None),
        (b"", None),
    ],
)
def test_only_bytes_that_start_like_an_image_are_images(data: bytes, media_type: str) -> None:
    assert image_type(data) == media_type


def test_the_dashboard_imports_no_model_stack() -> None:
    code = (
        "import sys; import consumers.dashboard.app, consumers.dashboard.server; "
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2', 'worker') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.redis
def test_plate_ocr_dashboard_serves_the_page_and_the_api(
    settings: Settings, redis_client: redis.Redis
) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "plate_ocr.cli", "--redis-url", settings.redis_url]
    command += ["--queue", settings.queue, "dashboard", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats") as answer:
                    stats = json.load(answer)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "the dashboard did not answer"
                time.sleep(0.1)  # polling a starting process: there is nothing to wait on
        assert stats["queue"] == settings.queue and stats["queued"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:
            assert b"plate-ocr" in page.read()
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert f"dashboard on http://127.0.0.1:{port}/" in output
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it so that the parent sees it.
    assert server.returncode in (0, -signal.SIGTERM), output


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"did not start on 127.0.0.1:{port}"):
            DashboardThread(Settings(), port=port).start()


def test_the_command_line_takes_the_dashboard_and_its_port() -> None:
    from plate_ocr.parser import build_parser

    args = build_parser().parse_args(["dashboard", "--host", "0.0.0.0", "--port", "9001"])
    assert (args.command, args.host, args.port) == ("dashboard", "0.0.0.0", 9001)
    args = build_parser().parse_args(["demo", "--dashboard", "--port", "9002"])
    assert (args.dashboard, args.port) == (True, 9002)
    assert build_parser().parse_args(["demo"]).dashboard is False


def test_plate_ocr_dashboard_off_loopback_without_token_exits_with_a_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from plate_ocr.cli import main

    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    assert "PLATE_OCR_DASHBOARD_TOKEN" in capsys.readouterr().err
