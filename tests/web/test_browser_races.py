"""Pages in Chromium when something they wait for comes late or not at all: the room page's
player stopped while its WHEP negotiation is under way, and the site header when its inbox
module does not load. Playwright routes hold or fail the requests, so each race is met the
same way on every run."""

from __future__ import annotations

import asyncio

import pytest

from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, open_page, wait_state
from tests.support.paywall_fixtures import Api, paid_room
from tests.support.waiting import wait_for
from tests.web.paid_rooms import publish, start_server
from tests.web.peer_connections import OPEN, count_peer_connections, open_peer_connections

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEST_BUDGET_S = 60


def page_errors(log: list[str]) -> list[str]:
    return [line for line in log if "pageerror" in line]


@pytest.mark.parametrize("answer", ["session made", "refused"])
async def test_room_player_stopped_while_connecting_leaves_nothing_running(aiohttp_server, tmp_path, browser, answer):
    """The class ends while the viewer's WHEP answer is held back: the page stops its player
    then. Once the answer comes, the session it made is deleted (or its refusal is no news),
    no peer connection is left open, the page says the class ended, and plays the next
    broadcast. It used to keep the late session playing, its viewer left in the room; or,
    refused, to show an error and stop following the room."""
    base, app = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    key = (await paid_room(creator, slug="maths", ticket_price=0))["stream_key"]
    viewer = await Api.sign_up(base)
    log: list[str] = []
    publisher = await publish(base, app, "maths", key)
    room = app[ROOMS].get("maths")
    page = await open_page(browser, base, "room", log, login=viewer.token)
    try:
        async with asyncio.timeout(TEST_BUDGET_S):
            offered = asyncio.Event()
            release = asyncio.Event()
            polls_open = asyncio.Event()
            polls_open.set()
            statuses: list[int] = []

            async def hold_the_answer(route):
                if route.request.method != "POST" or release.is_set():
                    return await route.continue_()
                if answer == "refused":
                    offered.set()
                    await release.wait()
                    statuses.append(503)
                    return await route.fulfill(status=503, content_type="application/json",
                                               body='{"error": {"code": "unavailable", "message": "try again"}}')
                response = await route.fetch()  # the server makes the session now...
                statuses.append(response.status)
                offered.set()
                await release.wait()  # ...and the page hears of it only after it stopped
                await route.fulfill(response=response)

            async def hold_the_polls(route):
                await polls_open.wait()
                await route.continue_()

            await count_peer_connections(page)
            await page.route("**/whep/maths", hold_the_answer)
            await page.route("**/api/rooms/maths", hold_the_polls)
            await page.goto(f"{base}/static/room.html?room=maths")
            await offered.wait()
            await wait_state(page, "connecting")
            assert await publisher.delete() == 200  # the creator ends the class: the page stops its player
            await wait_state(page, "ended")
            polls_open.clear()  # no later poll of the room stops the player again: the first stop must do
            assert await open_peer_connections(page) == 0  # closed at the stop, not at the answer
            release.set()
            await wait_for(lambda: statuses, timeout=10)
            assert statuses == [201 if answer == "session made" else 503]
            await wait_for(lambda: not room.subscribers, timeout=10)
            await page.wait_for_function(f"{OPEN} === 0", timeout=10_000)
            assert await page.evaluate("window.stagepass.session") is None
            assert await page.evaluate("document.getElementById('video').srcObject") is None
            assert await page.get_attribute("#status", "data-state") == "ended"
            polls_open.set()
            await page.wait_for_timeout(2500)  # a poll of the room later, the page still says so
            assert await page.get_attribute("#status", "data-state") == "ended"
            assert not room.subscribers

            await publisher.close()
            publisher = await publish(base, app, "maths", key)  # the next broadcast plays
            await wait_state(page, "playing", timeout=20_000)
            assert len(room.subscribers) == 1
            assert await open_peer_connections(page) == 1
    finally:
        await page.context.close()
        await publisher.close()
    assert not page_errors(log), "\n".join(log)


@pytest.mark.parametrize("failure, locale, message", [
    ("network error", "en", "could not be loaded; open it to try again"),
    ("HTTP 500", "zh-CN", "加载失败，点击重试"),
])
async def test_header_inbox_that_does_not_load_says_so_and_loads_when_opened_again(
        aiohttp_server, tmp_path, browser, failure, locale, message):
    """inbox.js fails to load: the page works on, a short message (in the page's language)
    stands where the inbox would be, and opening the inbox loads it. It used to be an
    unhandled rejection that left the page without its header (the creator page's script
    stopped there)."""
    base, _ = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="algebra", title="Algebra 1")
    viewer = await Api.sign_up(base)
    log: list[str] = []
    page = await open_page(browser, base, "creator", log, login=viewer.token, locale=locale)
    failed: list[str] = []

    async def fail(route):
        failed.append(route.request.url)
        if failure == "network error":
            await route.abort("failed")
        else:
            await route.fulfill(status=500, content_type="text/plain", body="boom")

    try:
        async with asyncio.timeout(TEST_BUDGET_S):
            await page.route("**/static/inbox.js*", fail)
            await page.goto(f"{base}/static/creator.html?id={creator.user['id']}")
            await page.wait_for_selector("#status[data-state=ready]", state="attached")  # the page works on
            await page.locator("#inbox-error").wait_for()
            assert failed
            assert await page.text_content("#inbox-error") == message
            assert await page.is_visible("#logout")  # the rest of the header is there
            await page.screenshot(path=str(SCREENSHOTS / f"header-inbox-unavailable-{locale}.png"))
            assert not page_errors(log), "\n".join(log)

            await page.unroute("**/static/inbox.js*")
            await page.click("#inbox-button")  # opening the inbox loads it, and opens it
            await page.locator("#inbox-panel").wait_for()
            await page.locator("#inbox-list li").first.wait_for()
            assert await page.locator("#inbox-error").count() == 0
            assert await page.get_attribute("#inbox-button", "aria-expanded") == "true"
            await page.click("#inbox-button")
            await page.locator("#inbox-panel").wait_for(state="hidden")
    finally:
        await page.context.close()
    assert not page_errors(log), "\n".join(log)
