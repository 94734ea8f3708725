"""Alerts end to end: a reading, `plate-ocr watch`, then the dashboard (Debian's Chromium,
headless, as test_browser.py drives it) and the MQTT bridge show them live."""

import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from consumers.dashboard.server import DashboardThread
from consumers.watch.lists import WatchLists
from consumers.watch.watcher import Watcher
from plate_ocr.settings import Settings
from schemas import WatchEntry

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DEADLINE_MS = 10_000

pytestmark = [pytest.mark.redis]


@pytest.fixture
def alert_settings(settings: Settings) -> Settings:
    token = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={"alerts_stream": f"test-alerts:{token}", "events_stream": f"test-events:{token}"}
    )


@pytest.mark.slow
def test_the_dashboard_shows_alerts_as_they_are_raised(
    redis_client: redis.Redis, alert_settings: Settings, make_reading: Any, publish: Any
) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import expect

    s = alert_settings
    WatchLists(redis_client).add("stolen", [WatchEntry(plate="ABC12B4", label="red van")])
    watcher = Watcher(s, consumer="w")
    publish(redis_client, make_reading("before", text="ABC12B4", camera_id="gate-1"))
    watcher.run(from_start=True, burst=True)  # one alert before the page opens
    with (
        DashboardThread(s, port=0) as board,
        playwright_sync.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(board.url)
            cards = page.locator("#alerts .alert")
            expect(cards).to_have_count(1, timeout=DEADLINE_MS)
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            # A misread of the listed plate (8 for B), raised while the page is open.
            publish(redis_client, make_reading("live", text="ABC1284", camera_id="gate-2"))
            publish(redis_client, make_reading("other", text="XYZ9999", camera_id="gate-2"))
            watcher.run(burst=True)
            expect(cards).to_have_count(2, timeout=DEADLINE_MS)
            expect(cards.first).to_have_attribute("data-plate", "ABC12B4")
            expect(cards.first).to_contain_text("ABC1284")  # what was read
            expect(cards.first).to_contain_text("fuzzy 8>B")
            expect(cards.first).to_contain_text("gate-2")
            expect(cards.first).to_contain_text("red van")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-alerts.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.mqtt
def test_the_mqtt_bridge_publishes_alerts(
    redis_client: redis.Redis, alert_settings: Settings, make_reading: Any, publish: Any
) -> None:
    paho = pytest.importorskip("paho.mqtt.client")
    from paho.mqtt.enums import CallbackAPIVersion

    from consumers.mqtt.bridge import MqttBridge

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    s = alert_settings.model_copy(update={"mqtt_topic_prefix": prefix})
    WatchLists(redis_client).add("stolen", [WatchEntry(plate="ABC1234")])
    publish(redis_client, make_reading("j1", text="ABC1234", camera_id="gate/1"))
    Watcher(s, consumer="w").run(from_start=True, burst=True)

    received: list[tuple[str, dict[str, Any]]] = []
    got = threading.Event()
    subscriber = paho.Client(CallbackAPIVersion.VERSION2)

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        received.append((message.topic, json.loads(message.payload)))
        got.set()

    subscribed = threading.Event()
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.connect(s.mqtt_host, s.mqtt_port)
    subscriber.subscribe(f"{prefix}/alerts/#", qos=1)
    subscriber.loop_start()
    try:
        assert subscribed.wait(10), "the broker did not take the subscription"
        bridge = MqttBridge(s, consumer="b")
        bridge.start()
        try:
            bridge.run(from_start=True, burst=True)
        finally:
            bridge.close()
        assert got.wait(10), "no alert reached the broker"
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    ((topic, alert),) = received
    assert topic == f"{prefix}/alerts/gate_1"
    assert alert["entry"]["plate"] == "ABC1234" and alert["watch_list"] == "stolen"
