"""A real Chromium publishing from studio.html and playing from watch.html.

Headless Debian Chromium with a fake camera, driven by Playwright's async API in the same
event loop as the in-process server. Skipped when Chromium or Playwright is missing.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, console_log
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer
from tests.web.peer_connections import count_peer_connections, open_peer_connections

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACTION_TIMEOUT_MS = 10_000
TEST_BUDGET_S = 30


async def room_status(base_url: str, room: str = "demo") -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/api/rooms/{room}") as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def wait_room(base_url: str, predicate, timeout: float = 5.0, room: str = "demo") -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await room_status(base_url, room)
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"room state not reached in {timeout} s: {status}")
        await asyncio.sleep(0.05)


async def new_page(browser, name: str, log: list[str]):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, permissions=["camera", "microphone"]
    )
    page = await context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    console_log(page, name, log)
    return page


def page_errors(log: list[str]) -> list[str]:
    return [line for line in log if "pageerror" in line]


async def test_studio_publishes_and_watch_page_and_aiortc_viewer_play(server, browser):
    base_url, app = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    timings: dict[str, float] = {}
    viewer = None
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(TEST_BUDGET_S):
            # 1-2. The creator goes live from the studio.
            studio = await new_page(browser, "studio", log)
            await studio.goto(f"{base_url}/static/studio.html")
            await studio.fill("#room", "demo")
            await studio.fill("#key", KEY)
            await studio.click("#golive")
            await studio.wait_for_function(
                "document.getElementById('status').textContent.trim() === 'live'"
            )
            timings["studio live"] = time.monotonic() - t0
            status = await wait_room(base_url, lambda s: s["live"])
            assert status["codecs"].get("video") in ("H264", "VP8"), status
            assert status["codecs"].get("audio") == "OPUS", status
            publisher = app[ROOMS].get("demo").publisher
            assert publisher is not None

            # 3. A browser viewer: picture, and time advancing.
            watch = await new_page(browser, "watch", log)
            t_watch = time.monotonic()
            await watch.goto(f"{base_url}/static/watch.html?room=demo&autoplay=1")
            await watch.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v.videoWidth > 0 && v.currentTime > 0; }"
            )
            timings["watch picture after open"] = time.monotonic() - t_watch
            start = await watch.evaluate("document.getElementById('video').currentTime")
            await watch.wait_for_function(
                f"document.getElementById('video').currentTime > {start} + 0.5"
            )
            size = await watch.evaluate(
                "(() => { const v = document.getElementById('video');"
                " return [v.videoWidth, v.videoHeight]; })()"
            )
            assert size[0] > 0 and size[1] > 0
            await watch.wait_for_function(
                "document.getElementById('status').dataset.state === 'playing'"
            )

            # 4. An aiortc viewer of the same room decodes the browser's frames.
            viewer = Viewer(base_url)
            t_viewer = time.monotonic()
            assert await viewer.play("demo") == 201, getattr(viewer, "error", None)
            await wait_for(lambda: len(viewer.numbers) > 10, timeout=10)
            timings["aiortc viewer 10 frames"] = time.monotonic() - t_viewer
            status = await room_status(base_url)
            assert status["live"] and status["viewers"] == 2, status

            # 6. Screenshots while live.
            await studio.screenshot(path=str(SCREENSHOTS / "studio-live.png"))
            await watch.screenshot(path=str(SCREENSHOTS / "watch-playing.png"))

            # 5. Stop: the publisher leaves the room within a few seconds.
            t_stop = time.monotonic()
            await studio.click("#stop")
            await studio.wait_for_function(
                "document.getElementById('status').dataset.state === 'stopped'"
            )
            await wait_room(base_url, lambda s: not s["live"], timeout=5)
            await wait_for(lambda: app[ROOMS].get("demo").publisher is None, timeout=5)
            timings["stop to room not live"] = time.monotonic() - t_stop
            await studio.screenshot(path=str(SCREENSHOTS / "studio-stopped.png"))

            assert not page_errors(log), "\n".join(log)
    except BaseException:
        print("\n".join(log))
        raise
    finally:
        if viewer is not None:
            await viewer.close()
    timings["total"] = time.monotonic() - t0
    print(" ".join(f"{k}={v:.2f}s" for k, v in timings.items()))


async def test_studio_shows_server_error_for_wrong_stream_key(server, browser):
    base_url, app = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    async with asyncio.timeout(TEST_BUDGET_S):
        studio = await new_page(browser, "studio", log)
        await studio.goto(f"{base_url}/static/studio.html")
        await studio.fill("#room", "demo")
        await studio.fill("#key", "not-the-right-key")
        await studio.click("#golive")
        await studio.wait_for_function(
            "document.getElementById('status').dataset.state === 'error'"
        )
        text = await studio.text_content("#status")
        assert "stream key does not allow publishing to 'demo'" in text, text
        assert "403" in text, text
        # Shown as text, not markup; the form is usable again.
        assert await studio.evaluate("document.getElementById('status').children.length") == 0
        assert await studio.is_enabled("#golive")
        assert await studio.is_disabled("#stop")
        await studio.screenshot(path=str(SCREENSHOTS / "studio-bad-key.png"))

        status = await room_status(base_url)
        assert status["live"] is False and status["viewers"] == 0, status
        room = app[ROOMS].get("demo")
        assert room is None or room.publisher is None
        assert not page_errors(log), "\n".join(log)


async def test_publishing_that_fails_before_the_token_is_awaited_leaves_no_unhandled_rejection(server, browser):
    """whip.js takes the token as a promise, so minting it overlaps making the offer; when publish()
    fails before it awaits the token (a stream without tracks), the token's refusal is still handled:
    no "unhandled rejection" page error, only the publish error."""
    base_url, _ = server
    log: list[str] = []
    async with asyncio.timeout(TEST_BUDGET_S):
        page = await new_page(browser, "whip", log)
        await page.goto(f"{base_url}/static/watch.html")
        error = await page.evaluate("""async () => {
            const { publish } = await import('/static/whip.js');
            const token = Promise.reject(new Error('this room needs a ticket'));
            try { await publish('/whip/demo', token, new MediaStream()); } catch (err) { return err.message; }
            return 'published';
        }""")
        # one more task on the page: an unhandled rejection would have been reported by now
        await page.evaluate("new Promise((resolve) => setTimeout(resolve, 0))")
    assert error == "nothing to publish: the stream has no tracks"
    assert not page_errors(log), "\n".join(log)


async def test_stop_pressed_while_the_watch_page_connects_ends_the_session_it_was_making(server, browser):
    """The watch page's Stop is enabled while it connects; pressed then, the WHEP session that
    was being made is deleted once it exists and the page stays stopped (it used to start
    playing under a "stopped" status, its viewer left in the room)."""
    base_url, app = server
    log: list[str] = []
    publisher = Publisher(base_url)
    try:
        async with asyncio.timeout(TEST_BUDGET_S):
            assert await publisher.publish("demo", KEY) == 201, publisher.error
            room = app[ROOMS].get("demo")
            await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
            page = await new_page(browser, "watch", log)
            posted = asyncio.Event()
            stopped = asyncio.Event()
            answers: list[int] = []

            async def hold_the_offer(route):
                if route.request.method != "POST":
                    return await route.continue_()
                posted.set()
                await stopped.wait()  # the offer reaches the server only after Stop was pressed
                response = await route.fetch()
                answers.append(response.status)
                await route.fulfill(response=response)

            await count_peer_connections(page)
            await page.route("**/whep/demo", hold_the_offer)
            await page.goto(f"{base_url}/static/watch.html?room=demo&autoplay=1")
            await posted.wait()
            await page.click("#stop")
            await page.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
            assert await open_peer_connections(page) == 0  # closed at Stop, not at the answer
            stopped.set()
            await wait_for(lambda: answers, timeout=10)
            assert answers == [201]  # the session was made...
            await wait_for(lambda: not room.subscribers, timeout=10)  # ...and ended by the page
            assert await page.evaluate("document.getElementById('status').dataset.state") == "stopped"
            assert await page.is_enabled("#play") and await page.is_disabled("#stop")
            assert await page.evaluate("window.stagepass.session") is None
            assert not page_errors(log), "\n".join(log)
    finally:
        await publisher.close()
