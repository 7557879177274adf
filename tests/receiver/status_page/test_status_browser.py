"""The status page in a real browser: Debian's headless Chromium, driven by Playwright.

A screenshot of the page is saved as a test artifact (ARCHIVER_TEST_ARTIFACTS, default
build/test-artifacts/); `.ci/run` installs chromium so CI always runs this.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.status_page.data import STATE_COLOURS
from tests.receiver.status_page.conftest import ADMIN_TOKEN, Populated

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


def _artifacts() -> Path:
    path = Path(os.environ.get("ARCHIVER_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rgb(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


def test_the_calendar_shows_each_state_and_leads_to_the_window(
    browser: Any, populated: Populated
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{populated.service.url}/status?days=400")
    expected = {
        "committed": populated.committed,
        "requested": populated.requested,
        "planned": populated.planned,
        "failed": populated.failed,
        "quarantined": populated.quarantined,
    }
    for state, window in expected.items():
        cell = page.locator(f'#calendar .cell[data-window="{window.name}"]')
        assert cell.get_attribute("data-state") == state
        assert cell.locator(".state").inner_text() == state
        background = cell.evaluate("element => getComputedStyle(element).backgroundColor")
        assert background == _rgb(STATE_COLOURS[state][0])
    assert page.locator("#calendar .day").first.inner_text() == "2026-11-20"
    assert page.locator("#problem-count").inner_text() == "2"
    page.screenshot(path=str(_artifacts() / "status-page.png"), full_page=True)

    page.locator(f'#calendar .cell[data-window="{populated.committed.name}"]').click()
    page.wait_for_url(f"**/status/windows/{populated.committed.name}")
    assert page.locator("#rows").inner_text() == "12"
    assert page.locator("#callbacks .callback").get_attribute("data-outcome") == "processed"
    page.screenshot(path=str(_artifacts() / "status-window.png"), full_page=True)
    page.close()


def test_the_rerequest_button_asks_for_the_token_and_acts(
    browser: Any, populated: Populated
) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{populated.service.url}/status/windows/{populated.failed.name}")
    form = page.locator('form[action$="/rerequest"]')
    form.locator('input[name="token"]').fill("wrong-token")
    page.locator("#rerequest").click()
    page.wait_for_selector("#notice")
    assert page.locator("#notice").inner_text() == "wrong or missing admin token"
    page.locator('form[action$="/rerequest"] input[name="token"]').fill(ADMIN_TOKEN)
    page.locator("#rerequest").click()
    page.wait_for_selector("text=re-requested")
    assert "planned" in page.locator("h1").inner_text()
    page.close()
