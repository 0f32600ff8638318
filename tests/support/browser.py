"""A headless Debian Chromium driven by Playwright's async API, for browser tests.

The ``browser`` fixture is registered for every test module by tests/conftest.py.
It skips, with the reason, when Playwright for Python or ``/usr/bin/chromium`` is
missing, and fails instead under ``CI=true`` (tests/support/missing_tools.py); it never
downloads a browser (no ``playwright install``). Flags as in
``../shared/notes/browser-webrtc.md``: fake camera and microphone, permission prompts
accepted, no background traffic.

``wait_for_function`` polls every ``POLL_MS`` unless a call says otherwise (the fixture sets
that default): Playwright's own default polls on animation frames, which headless Chromium
holds back on a loaded machine, so a condition that changes on a timer, a socket or media
(not on a frame) was seen seconds late or not before the timeout.

The async API runs in the test's own event loop, the one the in-process aiohttp server
uses, so the browser and the server interleave without threads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.missing_tools import missing_tool

__all__ = ["CHROMIUM", "FLAGS", "POLL_MS", "SCREENSHOTS", "browser", "console_log", "open_page", "wait_state"]

CHROMIUM = os.environ.get("STAGEPASS_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
POLL_MS = 100  # wait_for_function's default polling interval in these tests

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _skip_reason() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)"
    return None


def _poll_on_a_timer(monkeypatch) -> None:
    """``Page.wait_for_function`` and ``Frame.wait_for_function`` poll every ``POLL_MS``
    instead of on animation frames, unless a call passes ``polling``."""
    from playwright.async_api import Frame, Page

    for cls in (Page, Frame):
        original = cls.wait_for_function

        async def wait_for_function(self, expression, *, arg=None, polling=None, timeout=None, _original=original):
            return await _original(self, expression, arg=arg, polling=POLL_MS if polling is None else polling,
                                   timeout=timeout)

        monkeypatch.setattr(cls, "wait_for_function", wait_for_function)


@pytest.fixture
async def browser(monkeypatch):
    """A launched Chromium (``playwright.async_api.Browser``); each test makes its contexts."""
    reason = _skip_reason()
    if reason:
        missing_tool(reason)
    from playwright.async_api import async_playwright

    _poll_on_a_timer(monkeypatch)

    async with async_playwright() as p:
        # launch() gives every browser a fresh temporary profile; no --user-data-dir here.
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            await b.close()


def console_log(page, name: str, lines: list[str]) -> None:
    """Collect a page's console messages and uncaught errors into ``lines`` (for failures)."""
    page.on("console", lambda m: lines.append(f"[{name} console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"[{name} pageerror] {e}"))


async def open_page(browser, base: str, name: str, log: list[str], *, login: str | None = None,
                    viewport: tuple[int, int] = (1280, 900), timeout_ms: int = 15_000, locale: str | None = None):
    """A page in a fresh browser context (camera and microphone allowed), logged in with
    the login token ``login`` (as the session cookie) if given; its console goes to ``log``.
    ``locale`` (``"zh-CN"``) sets the browser's language: ``Accept-Language`` and ``navigator.language``."""
    options = {"locale": locale} if locale else {}
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                        permissions=["camera", "microphone"], **options)
    if login is not None:
        host = base.split("//", 1)[1].split(":")[0]
        await context.add_cookies([{"name": "stagepass_session", "value": login, "domain": host,
                                    "path": "/", "httpOnly": True, "sameSite": "Lax"}])
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    console_log(page, name, log)
    return page


async def wait_state(page, state: str, timeout: float = 15_000) -> None:
    """Wait until the page's ``#status`` line has ``data-state="<state>"``."""
    await page.wait_for_function(f"document.getElementById('status').dataset.state === {json.dumps(state)}",
                                 timeout=timeout)


async def logged_in_page(browser, base: str, api, name: str, log: list[str]):
    """A phone-sized page at ``name`` with ``api``'s (tests/support/paywall_fixtures.py) login."""
    return await open_page(browser, base, name, log, login=api.token, viewport=(390, 844), timeout_ms=10_000)
