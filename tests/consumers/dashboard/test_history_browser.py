"""The dashboard's plate search over a 100,000-reading history (plate-ocr store's PostgreSQL),
in Debian's Chromium as test_browser.py drives it: what the stream trimmed long ago is found.

How fast is `bench/history.py`'s figure (a test only checks what is found)."""

import random
import re
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from bench.history import fill
from consumers.dashboard.server import DashboardThread
from consumers.history.migrations import migrate
from plate_ocr.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
DEADLINE_MS = 10_000
READINGS = 100_000

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_page_finds_a_plate_in_a_100000_reading_history(
    redis_client: object, settings: Settings, dsn: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with psycopg.connect(dsn) as db:
        migrate(db)
        plates = fill(db, READINGS, random.Random(5))
    with psycopg.connect(dsn) as db:
        row = db.execute("SELECT count(*) FROM readings WHERE plate = %s", (plates[0],)).fetchone()
    assert row is not None and row[0] >= 1
    seen = int(row[0])
    token = uuid.uuid4().hex[:8]
    history_settings = Settings.from_env(
        {**settings.as_env(), "PLATE_OCR_HISTORY_DSN": dsn, "PLATE_OCR_EVENTS_STREAM": token}
    )
    with DashboardThread(history_settings, port=0) as board, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(board.url)
            expect(page.locator("#no-readings")).to_be_visible(timeout=DEADLINE_MS)  # empty stream
            page.fill("#search", plates[0].lower())
            rows = page.locator("#readings .reading")
            expect(rows).to_have_count(seen, timeout=DEADLINE_MS)
            for i in range(seen):
                expect(rows.nth(i)).to_have_attribute("data-text", plates[0])
            expect(page.locator("#feed-note")).to_contain_text("in the history")
            # Months back: each row says on which day, not just at what time.
            expect(rows.last.locator(".when")).to_contain_text(re.compile(r"\d{4}"))
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-history.png"), full_page=True)
        finally:
            browser.close()
