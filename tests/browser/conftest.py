"""Playwright on Debian's Chromium (no browser is downloaded) for the web pages' tests, and the
screenshots they save for review (``build/screenshots/``, or ``$PLANTAIN_SCREENSHOTS``)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.browser.chromium import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("PLANTAIN_SCREENSHOTS") or ROOT / "build" / "screenshots")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a phone's CSS pixels (iPhone 12-15)
ACTION_TIMEOUT_MS = 60_000  # a run on 2 CPU cores, with a test server beside it


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not for the session: while Playwright's sync API is open it
    keeps an event loop running on the main thread, and the tests after it that call
    ``asyncio.run`` would fail (it cannot run inside a running loop)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],  # root, no GPU, CI
        )
        try:
            yield chromium
        finally:
            chromium.close()


_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def new_page(browser: Browser, width: int = DESKTOP["width"], height: int = DESKTOP["height"]) -> Page:
    """A page in a fresh context (its own localStorage); the scripts' uncaught errors are kept
    for :func:`page_errors` (a test asserts there were none)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _ERRORS[page] = errors
    return page


def page_errors(page: Page) -> list[str]:
    """The uncaught script errors ``page`` has had so far."""
    return _ERRORS.get(page, [])


def screenshot(page: Page, name: str) -> Path:
    """``name``.png of the whole page under SCREENSHOTS, for a person to review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
