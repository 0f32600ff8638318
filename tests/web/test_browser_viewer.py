"""The viewer's pages in a real Chromium against a real server on loopback: the catalog
(live now with viewer counts, upcoming with a countdown, search), sign up / log in with
``?next=``, and the room page (refused, buy with a coupon through the dev checkout, not
live yet, plays, danmaku overlay, Q&A, likes, polls, hands, ticket in use on another
device). Media comes from tests/support/peers.py's aiortc publisher; other chat users are
python-socketio clients (tests/support/chat.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

import pytest

from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, console_log, wait_state
from tests.support.browser import open_page as shared_open_page
from tests.support.chat import Chat
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, view_token
from tests.support.peers import Viewer
from tests.web.paid_rooms import publish, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
XSS = "<img src=x onerror=alert(1)>"


async def open_page(browser, base: str, api: Api | None, name: str, log: list[str], viewport=PHONE):
    page = await shared_open_page(browser, base, name, log, login=api.token if api else None,
                                  viewport=(viewport["width"], viewport["height"]), timeout_ms=10_000)
    page.on("dialog", lambda d: log.append(f"[{name} pageerror] unexpected dialog: {d.message}"))
    return page


def errors(log: list[str]) -> list[str]:
    return [line for line in log if "pageerror" in line]


async def state_of(page) -> str:
    return await page.get_attribute("#status", "data-state")



# ---------------------------------------------------------------------------- catalog
async def test_catalog_live_upcoming_search_and_badges(aiohttp_server, tmp_path, browser):
    base, app = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    key = (await paid_room(creator, slug="maths", title="Algebra live", tags=["maths"]))["stream_key"]
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).isoformat()
    await paid_room(creator, slug="quantum", title="Quantum hour", tags=["physics"], starts_at=soon)
    await paid_room(creator, slug="poetry", title=f"Poetry {XSS}", ticket_price=0, description="Verses by candlelight.")
    viewer = await Api.sign_up(base)
    await buy(viewer, "maths")
    log: list[str] = []

    publisher = await publish(base, app, "maths", key)
    watcher = Viewer(base)
    try:
        assert await watcher.post("/whep/maths", token=await view_token(viewer, "maths")) == 201
        await wait_for(lambda: len(app[ROOMS].get("maths").subscribers) == 1, timeout=10)

        page = await open_page(browser, base, viewer, "catalog", log, viewport=DESKTOP)
        await page.goto(f"{base}/")
        live = page.locator("#live-list li[data-room=maths]")
        await live.wait_for()
        assert (await live.locator(".viewers").text_content()) == "1 watching"
        assert "You own this" in await live.text_content()
        assert "Live" in await live.text_content()
        upcoming = page.locator("#upcoming-list li[data-room=quantum]")
        first = await upcoming.locator(".countdown").text_content()
        assert re.fullmatch(r"Starts in 0?1:59:[0-5]\d", first), first
        await page.wait_for_function(
            f"document.querySelector('#upcoming-list .countdown').textContent !== {json.dumps(first)}")
        assert "$9.90" in await upcoming.text_content() or "9.90" in await upcoming.text_content()
        poetry = page.locator("#others-list li[data-room=poetry]")
        assert (await poetry.locator(".title").text_content()) == f"Poetry {XSS}"
        assert "Free" in await poetry.text_content()
        assert await page.locator("#others-list img").count() == 0
        assert await page.locator("#replays").is_hidden()  # no recordings endpoint answers here
        await page.screenshot(path=str(SCREENSHOTS / "catalog.png"), full_page=True)

        # search (on the server) by tag, then by title, then by description; the query is kept in the address
        async with page.expect_response(lambda r: "/api/catalog?q=PHYSICS" in r.url):
            await page.fill("#search", "PHYSICS")
        await page.wait_for_function("document.querySelectorAll('li[data-room]').length === 1")
        assert await page.locator("li[data-room=quantum]").is_visible()
        assert await page.locator("#live").is_hidden()
        assert "q=PHYSICS" in page.url
        await page.fill("#search", "algebra")
        await page.locator("#live-list li[data-room=maths]").wait_for()
        assert await page.locator("li[data-room]").count() == 1
        await page.fill("#search", "candle")
        await page.locator("#others-list li[data-room=poetry]").wait_for()
        assert await page.locator("li[data-room]").count() == 1
        await page.fill("#search", "nothing like this")
        await page.locator("#empty").wait_for()
        await page.fill("#search", "")
        await page.wait_for_function("document.querySelectorAll('li[data-room]').length === 3")

        # a phone, logged out: no ownership badge, one column that fits the screen
        phone = await open_page(browser, base, None, "catalog-phone", log)
        await phone.goto(f"{base}/?q=maths")
        await phone.locator("#live-list li[data-room=maths]").wait_for()
        assert "You own this" not in await phone.locator("#live-list li[data-room=maths]").text_content()
        assert await phone.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await phone.screenshot(path=str(SCREENSHOTS / "catalog-phone.png"), full_page=True)
    finally:
        await watcher.close()
        await publisher.close()
    assert not errors(log), log


# ---------------------------------------------------------------------------- login
async def test_signup_login_and_next_redirects(aiohttp_server, tmp_path, browser):
    base, app = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    log: list[str] = []
    page = await open_page(browser, base, None, "login", log)

    await page.goto(f"{base}/static/login.html?next=%2Fstatic%2Froom.html%3Froom%3Dmaths")
    email = f"new-{secrets.token_hex(3)}@example.org"
    await page.fill("#signup-name", "Ada")
    await page.fill("#signup-email", email)
    await page.fill("#signup-password", "short")
    await page.click("#signup-submit")
    await page.locator("#signup-error").wait_for()
    assert "8 to 256 characters" in await page.text_content("#signup-error")
    await page.screenshot(path=str(SCREENSHOTS / "login-phone.png"), full_page=True)
    await page.fill("#signup-password", "correct horse battery")
    await page.check("input[name=role][value=creator]")
    await page.click("#signup-submit")
    await page.wait_for_url(f"{base}/static/room.html?room=maths")
    me = await page.evaluate("fetch('/api/me').then(r => r.json())")
    assert me["user"]["role"] == "creator" and me["user"]["display_name"] == "Ada"

    # log out, a wrong password shows the server's message, the right one goes to next
    await page.click("#logout")
    await page.wait_for_function("!!document.getElementById('login-link')")
    await page.click("#login-link")  # the header's link carries this page as next
    await page.wait_for_url(re.compile(r".*/static/login\.html\?next=.*room.*"))
    await page.fill("#login-email", email)
    await page.fill("#login-password", "wrong password!")
    await page.press("#login-password", "Enter")
    await page.locator("#login-error").wait_for()
    assert "wrong email or password" in await page.text_content("#login-error")
    await page.fill("#login-password", "correct horse battery")
    await page.press("#login-password", "Enter")
    await page.wait_for_url(f"{base}/static/room.html?room=maths")

    # refused next values go home
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        await page.goto(f"{base}/static/login.html?next={bad}")
        await page.locator("#continue").wait_for()  # already logged in: a continue link
        assert await page.get_attribute("#continue", "href") == "/", bad
    safe = await page.evaluate("""() => import('/static/login.js').then(m => [
        m.safeNext('/static/room.html?room=a#x'), m.safeNext('//x.org'), m.safeNext('/\\t/x.org'),
        m.safeNext('https:x.org'), m.safeNext(null), m.safeNext('/%2F%2Fx.org')])""")
    assert safe == ["/static/room.html?room=a#x", "/", "/", "/", "/", "/%2F%2Fx.org"]
    await page.click("#logout")
    await page.locator("#login-link").wait_for()  # logged out (the page reloads): then navigate
    await page.goto(f"{base}/static/login.html?next=//evil.example/x")
    await page.fill("#login-email", email)
    await page.fill("#login-password", "correct horse battery")
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}/")
    assert not errors(log), log


# ---------------------------------------------------------------------------- room
async def test_room_buy_watch_interact_and_seat_taken(aiohttp_server, tmp_path, browser):
    base, app = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    key = (await paid_room(creator, slug="maths", title="Algebra live", description=f"Bring paper.\n{XSS}",
                           preview_seconds=0))["stream_key"]
    status, _ = await creator.post("/api/rooms/maths/coupons", {"code": "HALF", "kind": "percent", "value": 50})
    assert status == 201
    viewer = await Api.sign_up(base)
    other = await Api.sign_up(base)
    await buy(other, "maths")
    log: list[str] = []
    publisher = None
    mod, peer = Chat(), Chat()
    try:
        page = await open_page(browser, base, viewer, "room", log, viewport=DESKTOP)
        await page.goto(f"{base}/static/room.html?room=maths")
        await wait_state(page, "needs-ticket")
        assert (await page.text_content("#description")) == f"Bring paper.\n{XSS}"
        assert await page.locator("#about img").count() == 0
        assert await page.locator("#stage").is_hidden()
        await page.screenshot(path=str(SCREENSHOTS / "room-needs-ticket.png"), full_page=True)
        assert await page.locator("#test-mode").is_visible()  # the dev provider: test-mode payments
        assert "test mode" in (await page.text_content("#test-mode")).lower()

        # buy with a coupon through the dev checkout, and come back to the room
        await page.fill("#coupon", "nope")
        await page.click("#buy-button")
        await page.locator("#buy-error").wait_for()
        assert "coupon" in (await page.text_content("#buy-error")).lower()
        await page.fill("#coupon", "half")
        await page.click("#buy-button")
        await page.wait_for_url(re.compile(r".*/pay/dev/[0-9a-f]+$"))
        assert "4.95" in await page.text_content("h1")
        assert "TEST MODE" in await page.text_content(".banner")
        await page.click("#confirm")
        await page.wait_for_url(re.compile(r".*/static/room\.html\?room=maths$"))  # order params cleaned
        await wait_state(page, "idle")  # a ticket, but nobody broadcasting yet
        assert "Not live yet" in await page.text_content("#status")
        await page.screenshot(path=str(SCREENSHOTS / "room-not-live.png"), full_page=True)

        # the creator goes live: the page plays it
        publisher = await publish(base, app, "maths", key)
        await page.wait_for_function(
            "(() => { const v = document.getElementById('video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()",
            timeout=20_000)
        t0 = await page.evaluate("document.getElementById('video').currentTime")
        await page.wait_for_function(f"document.getElementById('video').currentTime > {t0 + 0.5}")
        await wait_state(page, "playing")

        # chat users: the creator (moderator) and another ticket holder
        publish_token = (await creator.post("/api/rooms/maths/tokens", {"scope": "publish"}))[1]["token"]
        assert await mod.connect(base, "maths", publish_token)
        assert await peer.connect(base, "maths", await view_token(other, "maths"))
        await page.wait_for_function("document.getElementById('viewers').textContent === '3 watching'")

        # danmaku from another client flies over the video; markup stays text
        assert (await peer.call("danmaku:send", {"text": "hello from python"}))["ok"]
        await page.wait_for_function(
            "document.getElementById('danmaku-layer').textContent.includes('hello from python')")
        assert (await peer.call("danmaku:send", {"text": XSS, "color": "#FF0000"}))["ok"]
        await page.wait_for_function(
            f"[...document.querySelectorAll('#danmaku-layer *')].some(e => e.textContent === {json.dumps(XSS)})")
        assert await page.locator("#danmaku-layer img").count() == 0
        await page.screenshot(path=str(SCREENSHOTS / "room-live-danmaku.png"))

        # our own danmaku reaches the others; a blocked word hides it locally
        await page.fill("#danmaku-text", "from the browser")
        await page.press("#danmaku-text", "Enter")
        await wait_for(lambda: any(d["text"] == "from the browser" for d in peer.danmaku()), timeout=5)
        await page.click("#danmaku-settings summary")
        await page.fill("#block-word", "SPOILER")
        await page.press("#block-word", "Enter")
        await page.select_option("#danmaku-density", "low")
        stored = await page.evaluate("[localStorage['stagepass.danmaku.blocked'], localStorage['stagepass.danmaku.density']]")
        assert stored == ['["spoiler"]', "low"]
        assert (await peer.call("danmaku:send", {"text": "big Spoiler here"}))["ok"]
        assert (await peer.call("danmaku:send", {"text": "after the block test"}))["ok"]
        await page.wait_for_function("document.getElementById('danmaku-log').textContent.includes('after the block test')")
        assert "big Spoiler" not in await page.text_content("#danmaku-log")
        assert "big Spoiler" not in await page.text_content("#danmaku-layer")
        await page.click("#danmaku-toggle")
        assert await page.get_attribute("#danmaku-toggle", "aria-pressed") == "false"
        assert await page.evaluate("localStorage['stagepass.danmaku.enabled']") == "off"
        await page.click("#danmaku-toggle")

        # Q&A: ask (the creator sees it), upvote someone else's question
        await page.fill("#question-text", f"Why? {XSS}")
        await page.click("#ask-button")
        await wait_for(lambda: any(q["text"] == f"Why? {XSS}" for q in mod.got("question")), timeout=5)
        asked = (await peer.call("question:ask", {"text": "What about matrices?"}))["question"]
        item = page.locator(f"#questions li[data-id='{asked['id']}']")
        await item.wait_for()
        await item.locator("button.vote").click()
        await page.wait_for_function(
            f"document.querySelector(\"#questions li[data-id='{asked['id']}'] button.vote\").textContent.includes('1')")
        assert any(q["id"] == asked["id"] and q["votes"] == 1 for q in mod.got("question"))
        assert await page.locator("#questions img").count() == 0

        # like, hand-raise, poll
        await page.click("#like")
        await page.wait_for_function("document.getElementById('likes').textContent === '1 like'")
        await page.click("#hand")
        await wait_for(lambda: any(h["items"] for h in mod.got("hands")), timeout=5)
        await page.wait_for_function("document.getElementById('hand').getAttribute('aria-pressed') === 'true'")
        poll = (await mod.call("poll:open", {"question": "Ready for a quiz?", "options": ["yes", "not yet"]}))["poll"]
        await page.locator(f".poll[data-id='{poll['id']}'] button.option[data-option='1']").click()
        await page.wait_for_function(f"!document.querySelector(\".poll[data-id='{poll['id']}'] button.option\")")
        closed = (await mod.call("poll:close", {"id": poll["id"]}))["poll"]
        assert closed["counts"] == [0, 1]
        await page.wait_for_function(f"document.querySelector(\".poll[data-id='{poll['id']}']\").dataset.open === 'false'")
        # a tip and a paid question are paid in a popup; the live page stays and sends them
        await page.fill("#tip-amount", "3.50")
        await page.fill("#tip-message", f"thanks {XSS}")
        async with page.expect_popup() as popup_info:
            await page.click("#tip-button")
        popup = await popup_info.value
        console_log(popup, "checkout-popup", log)
        await popup.wait_for_load_state()
        assert "3.50" in await popup.text_content("h1")
        async with popup.expect_event("close"):  # the popup says "done" and closes itself
            await popup.click("#confirm")
        await wait_for(lambda: mod.got("tip"), timeout=10)
        assert mod.got("tip")[0]["amount"] == 350 and mod.got("tip")[0]["message"] == f"thanks {XSS}"
        await page.wait_for_function("document.getElementById('tips').textContent.includes('tipped')")
        assert await page.locator("#tips img").count() == 0
        await page.fill("#question-text", "A paid one?")
        await page.check("#question-paid")
        await page.fill("#question-amount", "2")
        async with page.expect_popup() as popup_info:
            await page.click("#ask-button")
        popup = await popup_info.value
        await popup.wait_for_load_state()
        await popup.click("#confirm")
        await wait_for(lambda: any(q["text"] == "A paid one?" and q["paid_amount"] == 200
                                   for q in mod.got("question")), timeout=10)
        await page.locator("#questions li.question .badge.paid").wait_for()
        await page.screenshot(path=str(SCREENSHOTS / "room-live.png"), full_page=True)

        # the same account on a phone takes the seat: the first page says so
        phone = await open_page(browser, base, viewer, "room-phone", log)
        await phone.goto(f"{base}/static/room.html?room=maths")
        await phone.wait_for_function(
            "(() => { const v = document.getElementById('video'); return v.videoWidth > 0; })()", timeout=20_000)
        await wait_state(page, "seat-taken")
        assert "in use on another device" in await page.text_content("#status")
        assert await page.locator("#take-seat").is_visible()
        assert await state_of(phone) == "playing"
        assert await phone.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await page.screenshot(path=str(SCREENSHOTS / "room-seat-taken.png"))
        await phone.screenshot(path=str(SCREENSHOTS / "room-phone.png"), full_page=True)

        # the creator's connection drops, then they come back and end the class
        await publisher.close()
        await wait_state(phone, "reconnecting")
        publisher = await publish(base, app, "maths", key)
        await wait_state(phone, "playing")
        assert await publisher.delete() == 200
        await wait_state(phone, "ended")
        assert (await phone.text_content("#status")).startswith("Ended — ")  # processing, or ready
        ended = app[ROOMS].get("maths").stats()["ended_broadcast"]
        await phone.locator("#replay-link").wait_for(state="visible", timeout=30_000)
        assert await phone.get_attribute("#replay-link", "href") == f"/static/replay.html?recording={ended}"
        assert "the replay is ready" in await phone.text_content("#status")
        await phone.screenshot(path=str(SCREENSHOTS / "room-ended-phone.png"))
    finally:
        await mod.close()
        await peer.close()
        if publisher is not None:
            await publisher.close()
    assert not errors(log), log


# ---------------------------------------------------------------------------- free preview
async def test_free_preview_plays_then_offers_the_ticket(aiohttp_server, tmp_path, browser):
    """A viewer without a ticket watches the room's free preview once: it plays with a
    countdown, ends on time, and the page offers the ticket; a reload cannot restart it."""
    base, app = await start_server(aiohttp_server, tmp_path)
    creator = await Api.sign_up(base, "creator")
    key = (await paid_room(creator, slug="maths", preview_seconds=4))["stream_key"]
    viewer = await Api.sign_up(base)
    log: list[str] = []
    publisher = await publish(base, app, "maths", key)
    try:
        page = await open_page(browser, base, viewer, "preview", log)
        await page.goto(f"{base}/static/room.html?room=maths")
        await wait_state(page, "needs-ticket")
        assert await page.locator("#preview-button").is_visible()
        await page.click("#preview-button")
        await page.wait_for_function(
            "(() => { const v = document.getElementById('video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()",
            timeout=20_000)
        await page.wait_for_function("document.getElementById('preview-left').textContent.includes('left')")
        await page.screenshot(path=str(SCREENSHOTS / "room-preview.png"))
        await wait_state(page, "preview-over", timeout=20_000)
        assert await page.locator("#stage").is_hidden() and await page.locator("#buy-button").is_visible()
        assert await page.locator("#preview-button").is_hidden()
        await wait_for(lambda: not app[ROOMS].get("maths").subscribers, timeout=10)  # the server ended it too
        await page.screenshot(path=str(SCREENSHOTS / "room-preview-over.png"))
        # once per account: after a reload the preview is not offered again
        await page.reload()
        await wait_state(page, "needs-ticket")
        await page.click("#preview-button")
        await page.locator("#buy-error").wait_for()
        assert "preview" in (await page.text_content("#buy-error")).lower()
        assert await page.locator("#stage").is_hidden()
        status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
        assert status == 402 and body["error"]["code"] == "preview_used"
        assert not errors(log), log
    finally:
        await publisher.close()
