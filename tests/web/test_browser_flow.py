"""The whole product in a real browser, the way its three kinds of users meet it:

1. a creator signs up, creates a paid room in the studio and goes live from the fake camera;
2. a viewer, in a second browser context, signs up, is refused the stream, buys a ticket
   through the dev checkout, and the ``<video>`` plays;
3. the viewer sends a danmaku and a question; the creator sees both and answers;
4. the creator stops; the replay becomes ready; the viewer's replay page plays it and the
   danmaku appears at its second.

Screenshots of every page go to artifacts/screenshots/flow-*.png.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from stagepass.app import create_app
from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, open_page, wait_state as _wait_state
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, paywall_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "correct horse battery"
VIDEO_PLAYS = """(() => { const v = document.getElementById('video');
  return v.videoWidth > 0 && v.currentTime > %s; })()"""


async def sign_up(page, base: str, next_path: str, name: str, email: str, role: str) -> None:
    await page.goto(f"{base}/static/login.html?next={next_path}")
    await page.fill("#signup-name", name)
    await page.fill("#signup-email", email)
    await page.fill("#signup-password", PASSWORD)
    await page.check(f"input[name=role][value={role}]")
    await page.click("#signup-submit")
    await page.wait_for_url(re.compile(re.escape(base + next_path.split("?")[0]) + r".*"))


async def wait_state(page, state: str, timeout: float = 20_000) -> None:
    await _wait_state(page, state, timeout)


async def api_of(page, base: str) -> Api:
    """An API client with the page's login (its session cookie)."""
    cookies = await page.context.cookies(base)
    return Api(base, next(c["value"] for c in cookies if c["name"] == "stagepass_session"))



async def test_creator_goes_live_viewer_buys_talks_and_watches_the_replay(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    log: list[str] = []
    try:
        # 1. the creator signs up, creates a paid room in the studio, goes live
        studio = await open_page(browser, base, "studio", log, viewport=(1280, 900))
        await sign_up(studio, base, "/static/studio.html", "Prof. Ada", "ada@example.org", "creator")
        await studio.locator("#rf-slug").wait_for()
        await studio.fill("#rf-slug", "algebra")
        await studio.fill("#rf-title", "Algebra, live")
        await studio.fill("#rf-description", "Bring paper.")
        await studio.fill("#rf-currency", "usd")
        await studio.fill("#rf-ticket_price", "9.90")
        await studio.check("#rf-replay_included")
        await studio.click("#room-save")
        await studio.locator('#room-list li[data-room="algebra"]').wait_for()
        await studio.wait_for_function(
            "document.getElementById('chat-status').textContent.includes('connected as moderator')")
        await studio.click("#golive")
        await studio.wait_for_function("document.getElementById('status').textContent === 'live'")
        media = app[ROOMS].get("algebra")
        await wait_for(lambda: media.publisher is not None and media.publisher.last_media() is not None, timeout=15)
        await studio.screenshot(path=str(SCREENSHOTS / "flow-1-studio-live.png"))
        creator = await api_of(studio, base)

        # 2. a viewer finds it in the catalog, signs up, is refused, buys, and watches
        room = await open_page(browser, base, "room", log, viewport=(390, 844))
        await room.goto(base + "/")
        card = room.locator("a[href*='room.html?room=algebra']").first
        await card.wait_for()
        await room.screenshot(path=str(SCREENSHOTS / "flow-2-catalog.png"), full_page=True)
        await sign_up(room, base, "/static/room.html?room=algebra", "Bo", "bo@example.org", "viewer")
        await wait_state(room, "needs-ticket")
        assert await room.locator("#stage").is_hidden() and not media.subscribers  # refused the stream
        status, body = await (await api_of(room, base)).post("/api/rooms/algebra/tokens", {"scope": "view"})
        assert status == 402 and body["error"]["code"] == "ticket_required"
        await room.screenshot(path=str(SCREENSHOTS / "flow-2-room-needs-ticket.png"), full_page=True)
        await room.click("#buy-button")
        await room.wait_for_url(re.compile(r".*/pay/dev/[0-9a-f]+.*"))
        await room.screenshot(path=str(SCREENSHOTS / "flow-2-checkout.png"))
        await room.click("#confirm")
        await room.wait_for_url(re.compile(r".*/static/room\.html\?room=algebra.*"))
        await room.wait_for_function(VIDEO_PLAYS % 0.5, timeout=30_000)
        t0 = await room.evaluate("document.getElementById('video').currentTime")
        await room.wait_for_function(f"document.getElementById('video').currentTime > {t0 + 0.5}")
        await wait_state(room, "playing")
        assert len(media.subscribers) == 1
        # a weak network: the server moves this viewer to audio only and back, the page says so
        await room.locator('#rendition[data-rendition="full"]').wait_for(timeout=15_000)
        [watching] = media.subscribers.values()
        for _ in range(150):  # Chromium sends REMB to a server without transport-cc
            if (await watching.quality())["video"]["estimate_kbps"] is not None:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no bandwidth estimate (REMB) from Chromium")
        await media.set_rendition(watching, "audio")
        await room.locator('#rendition[data-rendition="audio"]', has_text="Audio only").wait_for(timeout=15_000)
        await media.set_rendition(watching, "full")
        await room.locator('#rendition[data-rendition="full"]', has_text="Full quality").wait_for(timeout=15_000)

        # 3. a danmaku and a question from the viewer; the creator sees both and answers
        await room.fill("#danmaku-text", "great example!")
        await room.press("#danmaku-text", "Enter")
        await room.fill("#question-text", "Why does x² stay positive?")
        await room.click("#ask-button")
        line = studio.locator("#danmaku-list li", has_text="great example!")
        await line.wait_for()
        question = studio.locator("#questions > li", has_text="Why does x² stay positive?")
        await question.wait_for()
        await room.screenshot(path=str(SCREENSHOTS / "flow-3-room-live.png"), full_page=True)
        await studio.screenshot(path=str(SCREENSHOTS / "flow-3-studio-question.png"))
        await question.locator('button[data-action="answer"]').click()
        await room.locator("#questions .badge.answered").wait_for()
        _, export = await creator.get("/api/rooms/algebra/danmaku")
        [sent] = [d for d in export["items"] if d["text"] == "great example!"]

        # 4. the creator stops; the replay gets ready; the viewer watches it
        await room.wait_for_timeout(1500)  # a little more class after the danmaku
        await studio.click("#stop")
        await studio.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
        await wait_state(room, "ended")
        await room.locator("#replay-link").wait_for(state="visible", timeout=60_000)
        await room.screenshot(path=str(SCREENSHOTS / "flow-4-room-ended.png"), full_page=True)
        await room.click("#replay-link")
        await room.wait_for_url(re.compile(r".*/static/replay\.html\?recording=[0-9a-f]{16}$"))
        await wait_state(room, "ready")
        # note the replay's time at which the danmaku shows up over the video
        await room.evaluate("""(text) => {
            const video = document.getElementById('video');
            new MutationObserver((_, observer) => {
              if (document.getElementById('stage').textContent.includes(text)) {
                window.danmakuShownAt = video.currentTime;
                observer.disconnect();
              }
            }).observe(document.getElementById('stage'), {childList: true, subtree: true, characterData: true});
        }""", "great example!")
        start = max(0.0, sent["t_ms"] / 1000 - 2.5)
        await room.evaluate(f"""(() => {{ const v = document.getElementById('video');
            v.muted = true; v.currentTime = {start}; v.play(); }})()""")
        await room.wait_for_function("window.danmakuShownAt !== undefined", timeout=20_000)
        shown_at = await room.evaluate("window.danmakuShownAt")
        assert abs(shown_at - sent["t_ms"] / 1000) <= 1.0, (shown_at, sent["t_ms"])
        assert await room.evaluate("document.getElementById('video').videoWidth") > 0
        chapters = room.locator("#chapters button.chapter", has_text="Why does x² stay positive?")
        assert await chapters.count() == 1
        await room.screenshot(path=str(SCREENSHOTS / "flow-4-replay.png"), full_page=True)
        recording = room.url.rsplit("=", 1)[1]
        # the catalog lists the replay, with its poster, for everyone
        await room.goto(base + "/")
        card = room.locator(f"#replays li.card[data-recording='{recording}']")
        await card.wait_for()
        assert await card.locator(f"a[href='/static/replay.html?recording={recording}']").count() >= 1
        await room.screenshot(path=str(SCREENSHOTS / "flow-4-catalog-replays.png"), full_page=True)

        # the creator's dashboard counts the ticket and the session
        await studio.goto(f"{base}/static/dashboard.html")
        await studio.locator("text=Algebra, live").first.wait_for()
        await studio.screenshot(path=str(SCREENSHOTS / "flow-5-dashboard.png"), full_page=True)
        _, dash = await creator.get("/api/creator/dashboard")
        [row] = dash["rooms"]
        assert row["tickets_sold"] == 1 and row["sessions"] and row["sessions"][0]["peak_viewers"] >= 1
        assert not [line for line in log if "pageerror" in line], "\n".join(log)
    except BaseException:
        print("\n".join(log))
        raise
