"""The demo's page in a real headless browser: its buttons fire the endpoints, and the
timeline draws each response before its tasks (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
import struct
from typing import TYPE_CHECKING

import pytest

from .helpers.servers import Gunicorn

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_fires_endpoints_and_draws_responses_before_tasks(tmp_path: Path) -> None:
    """Click "offloaded" and "inline": both requests appear, phases in order, screenshot taken."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if CHROMIUM is None:
        pytest.skip("no Chromium to drive (apt-get install chromium)")
    env = {"BGTASK_DEMO_EVENTS": str(tmp_path / "events.jsonl"), "BGTASK_DEMO_TASK_SECONDS": "0.3"}
    with (
        Gunicorn(
            "wsgi_demo.app:app",
            tmp_path / "gunicorn.log",
            args=["--config", "wsgi_demo/gunicorn.conf.py"],
            env=env,
        ) as server,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(server.url + "/")
            assert page.locator("#empty").is_visible()

            row = page.locator("tr", has=page.locator("code", has_text="POST /send-notification/"))
            row.get_by_role("button", name="offloaded").click()
            page.wait_for_selector(".phase.finished", timeout=10_000)
            assert "offloaded: 200 in" in row.locator(".answer").inner_text()
            page.locator("tr", has=page.locator("code", has_text="GET /fail")).get_by_role(
                "button", name="inline"
            ).click()
            page.wait_for_selector(".phase.failed", timeout=10_000)
            page.wait_for_selector(".phase.skipped", timeout=10_000)

            sections = page.locator("section.request")
            assert sections.count() == 2
            offloaded = page.locator("section.request", has_text="/offload/send-notification/")
            assert "(offload)" in offloaded.inner_text()
            # Drawn in order: the response's phase ends before the task's phase starts.
            response = offloaded.locator(".phase.response").bounding_box()
            task = offloaded.locator(".phase.finished").bounding_box()
            assert response is not None
            assert task is not None
            assert response["x"] + response["width"] <= task["x"] + 1
            assert task["width"] > 10 * response["width"] / 2  # 300 ms against ~1 ms

            screenshot = tmp_path / "timeline.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1200
    assert height >= 600
    assert len(data) > 20_000  # drawn: a blank page of that size compresses to a few KB
