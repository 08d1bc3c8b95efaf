"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, opens the page
the collector serves, sees its live numbers change after events are posted, and leaves a
screenshot (in the test's tmp_path; also at $ANALYTICS_DASHBOARD_SCREENSHOT when set, which
is how docs/dashboard.png is made).

Skipped where Chromium is not installed (``scripts/install-chromium``, run by ``make test``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devtools.collector_process import CollectorKeys, CollectorProcess, start_collector, write_keys
from devtools.pytest_plugin import seeded_database_fixture
from tests.synthetic import day_of, product_history

pytestmark = pytest.mark.server

CHROMIUM = Path("/usr/bin/chromium")
# What a root user in a container needs to run Chromium headless, without reaching out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

url = seeded_database_fixture(
    product_history(day_of(datetime.now(UTC) - timedelta(days=20)), days=20).rows, refresh=True
)


@pytest.fixture
def collector(url: str, tmp_path: Path) -> Iterator[tuple[CollectorProcess, CollectorKeys]]:
    keys = write_keys(tmp_path / "keys.toml")
    process = start_collector(
        url,
        tmp_path / "keys.toml",
        tmp_path / "collector.log",
        "--live-interval", "0.5",
        "--flush-interval", "0.05",
    )  # fmt: skip
    yield process, keys
    process.stop()


def post_events(base_url: str, key: str, count: int) -> None:
    types = ["task_created", "task_started", "project_created"]
    items = []
    for i in range(count):
        event_type = types[i % len(types)]
        event = {"event_type": event_type, "user_id": str(uuid.uuid4())}
        if event_type.startswith("task"):
            event["task_id"] = str(uuid.uuid4())
        else:
            event["project_id"] = str(uuid.uuid4())
        if event_type == "task_created":
            event["command"] = "make test"
        items.append({"event": event})
    response = httpx.post(
        f"{base_url}/v1/events/batch",
        json={"events": items},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == count


def test_the_dashboard_shows_live_numbers_that_change(
    collector: tuple[CollectorProcess, CollectorKeys], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-chromium (make test does)")
    process, keys = collector
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{process.base_url}/dashboard#key={keys.read}")
            # Locator expectations, not wait_for_function: the page's CSP forbids eval.
            expect = sync_api.expect
            expect(page.locator("#status")).to_have_text("live", timeout=30_000)
            assert page.text_content("#events-last-minute") == "0"
            assert keys.read not in page.url  # the key left the address bar

            post_events(process.base_url, keys.server, 30)
            expect(page.locator("#events-last-minute")).to_have_text("30", timeout=30_000)
            assert page.text_content("#active-users") == "30"
            assert page.text_content("#top-type") in {"project_created", "task_created",
                                                      "task_started"}  # fmt: skip
            post_events(process.base_url, keys.server, 12)
            expect(page.locator("#events-last-minute")).to_have_text("42", timeout=30_000)
            # The main metrics drew their charts from the seeded history.
            page.wait_for_selector("#chart-dau svg polyline", state="attached", timeout=30_000)
            page.wait_for_selector("#tasks svg rect", state="attached", timeout=30_000)
            assert page.locator("#recent tbody tr").count() == 8
            page.wait_for_timeout(600)  # one more point on the chart
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            wanted = os.environ.get("ANALYTICS_DASHBOARD_SCREENSHOT")
            if wanted:
                shutil.copyfile(screenshot, wanted)
            assert problems == []  # no script error, nothing blocked by the page's CSP
        finally:
            context.close()
