"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright's own browsers are never downloaded: `executable_path` points at the system Chromium
(`apt-get install chromium`; `.ci/run` installs it). Readings are published on the real test
Redis as a worker would publish them, for jobs really enqueued (so the thumbnails are real crops
read back from RQ's job hashes). The screenshot lands in `test-artifacts/dashboard.png`.
"""

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from consumers.dashboard.server import DashboardThread
from plate_ocr.demo import sample_dir
from plate_ocr.settings import Settings
from producer import PlateProducer
from schemas import CharacterReading, ErrorCode, PlateReading, ReadingError

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MakeReading = Callable[..., PlateReading]
Publish = Callable[[redis.Redis, PlateReading], bytes]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DEADLINE_MS = 10_000  # a reading must be on the page this soon after it is published

playwright_sync = pytest.importorskip("playwright.sync_api")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )


def _characters(text: str, confidences: list[float]) -> tuple[CharacterReading, ...]:
    return tuple(
        CharacterReading(char=c, confidence=p, box=(10.0 * i, 5.0, 10.0 * i + 9, 40.0), row=0)
        for i, (c, p) in enumerate(zip(text, confidences, strict=True))
    )


@contextmanager
def _open_page(settings: Settings, **options: Any) -> Iterator["Page"]:
    with (
        DashboardThread(settings, port=0, **options) as board,
        playwright_sync.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.goto(board.url)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def page(settings: Settings, redis_client: redis.Redis) -> Iterator["Page"]:
    with _open_page(settings) as tab:
        yield tab


def test_readings_appear_live_and_the_filters_work(
    page: "Page",
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    from playwright.sync_api import expect

    samples = sorted(sample_dir().glob("sample_*.jpg"))
    producer = PlateProducer(settings, connection=redis_client)
    rows = page.locator("#readings .reading")
    expect(page.locator("#no-readings")).to_have_text("Waiting for readings…")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    plates = [
        ("gate-1", "6LNE878", [0.97, 0.93, 0.88, 0.95, 0.91, 0.62, 0.90]),
        ("gate-2", "ABC1234", [0.99, 0.98, 0.97, 0.41, 0.95, 0.96, 0.94]),
        ("gate-1", "7XYZ512", [0.91, 0.89, 0.93, 0.95, 0.72, 0.88, 0.90]),
        ("gate-2", "ABD9921", [0.96, 0.94, 0.95, 0.97, 0.93, 0.92, 0.95]),
    ]
    published: list[PlateReading] = []
    for n, (camera, text, confidences) in enumerate(plates):
        job_id = producer.submit(samples[n], camera_id=camera)
        reading = make_reading(
            job_id,
            camera_id=camera,
            text=text,
            confidence=min(confidences),
            characters=_characters(text, confidences),
        )
        publish(redis_client, reading)
        published.append(reading)
        # Each one shows up on its own, well inside the deadline: the page is live.
        expect(rows).to_have_count(n + 1, timeout=DEADLINE_MS)
        expect(rows.first).to_have_attribute("data-text", text)
    broken = producer.submit(b"not an image", camera_id="gate-2")
    publish(
        redis_client,
        make_reading(
            broken,
            status="error",
            camera_id="gate-2",
            error=ReadingError(code=ErrorCode.UNDECODABLE_IMAGE, message="not a JPEG or PNG"),
        ),
    )
    redis_client.xadd(
        settings.events_stream,
        {
            "text": "ABC1234",
            "confidence": "0.95",
            "camera_id": "gate-2",
            "track_id": "t-42",
            "reads": "9",
            "event_id": "ev-0001",
            "best_reading_id": published[1].reading_id,
        },
    )
    expect(rows).to_have_count(5, timeout=DEADLINE_MS)
    expect(rows.first).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#events .event")).to_have_count(1, timeout=DEADLINE_MS)
    expect(page.locator("#events .event")).to_contain_text("t-42")
    # The crops are the real ones, read back from the jobs; the broken one has none.
    page.wait_for_function(
        "[...document.querySelectorAll('#readings .reading:not(.error) img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=DEADLINE_MS,
    )
    expect(rows.first.locator(".no-crop")).to_have_text(
        "no crop: not a JPEG, PNG, GIF, BMP or WebP image", timeout=DEADLINE_MS
    )
    event_crop = page.locator("#events .event img")
    expect(event_crop).to_have_attribute("src", f"/api/crop/{published[1].job_id}")
    # Counters and the queue come from /api/stats (polled): 5 jobs were enqueued, none run.
    expect(page.locator("#queued")).to_have_text("5", timeout=DEADLINE_MS)
    expect(page.locator("#camera-counts tbody tr")).to_have_count(2, timeout=DEADLINE_MS)
    expect(page.locator("#error-counts")).to_contain_text("undecodable_image")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Filter by camera, then by status, then search by plate text.
    page.select_option("#camera", "gate-1")
    expect(rows).to_have_count(2)
    for camera in rows.evaluate_all("rows => rows.map(r => r.dataset.camera)"):
        assert camera == "gate-1"
    page.select_option("#camera", "gate-2")
    expect(rows).to_have_count(3)
    page.select_option("#status", "error")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("undecodable_image")
    page.select_option("#status", "")
    page.select_option("#camera", "*")
    page.fill("#search", "abd")
    expect(rows).to_have_count(1, timeout=DEADLINE_MS)
    expect(rows.first).to_have_attribute("data-text", "ABD9921")
    expect(page.locator("#feed-note")).to_contain_text("1 reading with “ABD” among the newest 5")
    page.screenshot(path=str(ARTIFACTS / "dashboard-search.png"))
    # A reading that matches the search still arrives live; one that does not stays out.
    for text in ("ABD0001", "ZZZ0001"):
        publish(
            redis_client, make_reading(producer.submit(samples[5]), camera_id="gate-1", text=text)
        )
    expect(rows).to_have_count(2, timeout=DEADLINE_MS)
    page.fill("#search", "")
    expect(rows).to_have_count(7, timeout=DEADLINE_MS)


def test_the_page_resumes_without_gap_or_repeat_when_its_stream_ends(
    settings: Settings,
    redis_client: redis.Redis,
    make_reading: MakeReading,
    publish: Publish,
) -> None:
    from playwright.sync_api import expect

    # The server ends each stream after half a second without news, as a proxy or a
    # restarting dashboard would; the browser reconnects by itself and must miss nothing.
    with _open_page(settings, stream_idle_timeout_s=0.5) as page:
        rows = page.locator("#readings .reading")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        entries = [publish(redis_client, make_reading("before"))]
        expect(rows).to_have_count(1, timeout=DEADLINE_MS)
        # The stream went quiet and ended; the browser waits RECONNECT_MS before it comes back.
        expect(page.locator("#connection")).to_have_attribute("data-state", "down")
        with page.expect_request(lambda r: "/api/stream" in r.url, timeout=DEADLINE_MS) as again:
            entries += [publish(redis_client, make_reading(f"after{n}")) for n in range(2)]
        # It came back from the last reading it had, with what was published meanwhile.
        assert again.value.all_headers().get("last-event-id") == f"{entries[0].decode()}/0-0"
        expect(rows).to_have_count(3, timeout=DEADLINE_MS)
        shown = rows.evaluate_all("rows => rows.map(r => r.dataset.entryId)")
        assert shown == [e.decode() for e in reversed(entries)]
