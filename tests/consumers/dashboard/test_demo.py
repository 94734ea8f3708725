"""`plate-ocr demo --dashboard`: the newcomer's one command shows live readings in the page,
and the vehicle events the consolidator beside the worker votes from the made-up gates' tracks."""

import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from plate_ocr.demo import run_demo

pytestmark = [pytest.mark.model, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DEADLINE_MS = 60_000  # the model loads on a CPU first, on a loaded machine
EVENT_DEADLINE_S = 30.0  # a vehicle event is on the page this soon after the demo starts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, thread: threading.Thread) -> None:
    deadline = time.monotonic() + DEADLINE_MS / 1000
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert thread.is_alive(), "the demo ended before serving the dashboard"
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.1)  # polling a starting server: there is nothing else to wait on


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_demo_with_dashboard_shows_live_readings_in_the_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    outcome: list[int | BaseException] = []

    def demo() -> None:
        try:
            # Long enough for the first made-up vehicle's three crops and its track's idle close.
            outcome.append(run_demo({}, count=2, dashboard=True, port=port, keep_going_s=15))
        except BaseException as e:  # handed to the test thread, which reports it
            outcome.append(e)

    thread = threading.Thread(target=demo)
    started = time.monotonic()
    thread.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _wait_for_port(port, thread)
            page.goto(f"http://127.0.0.1:{port}/")
            rows = page.locator("#readings .reading")
            # The first pass (camera "demo"), then the trickle from the two made-up gates, live.
            expect(rows.locator(".camera", has_text="demo")).to_have_count(2, timeout=DEADLINE_MS)
            expect(rows.locator(".camera", has_text="-gate").first).to_be_visible(
                timeout=DEADLINE_MS
            )
            expect(page.locator("#worker-count")).to_have_text("1", timeout=DEADLINE_MS)
            page.wait_for_function(
                "[...document.querySelectorAll('#readings .reading img')]"
                ".some(i => i.complete && i.naturalWidth > 0)",
                timeout=DEADLINE_MS,
            )
            # A vehicle event, with its vote, from the first made-up vehicle's track.
            event = page.locator("#events .event").first
            left_ms = (EVENT_DEADLINE_S - (time.monotonic() - started)) * 1000
            expect(event).to_be_visible(timeout=max(1.0, left_ms))
            expect(event).to_contain_text("-gate")
            expect(event).to_contain_text("car-")
            expect(event.locator("dd", has_text=re.compile(r"^\d of 3 agree$"))).to_have_count(1)
            text = event.locator(".text").evaluate("node => node.firstChild.textContent")
            vote = event.locator("dt:text-is('vote') + dd").inner_text()
            assert vote.startswith(f"{text} "), (text, vote)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo-dashboard.png"), full_page=True)
            browser.close()
    finally:
        thread.join(timeout=120)
    assert outcome == [0]
    out = capsys.readouterr().out
    assert f"dashboard: http://127.0.0.1:{port}/" in out and "2 readings" in out
