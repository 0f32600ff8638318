"""The replay page in Chromium: hls.js plays a paid replay with a renewing token, the
danmaku appear over the video at their second (as text), chapters seek, and a non-buyer
gets the free preview and then the offer."""

from __future__ import annotations

import re

import pytest

from interaction.assembly import INTERACTION
from interaction.models import Danmaku, Question
from stagepass.app import create_app
from paywall.http import PAYWALL
from tests.support.browser import SCREENSHOTS, logged_in_page
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from tests.support.replays import install

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS = "<img src=x onerror=window.pwned=1>"

PLAYING = """(() => { const v = document.getElementById('video');
  return v.videoWidth > 0 && v.currentTime > %s && !v.paused; })()"""


async def test_replay_page_plays_with_danmaku_chapters_and_preview(aiohttp_server, tmp_path, browser, packaged):
    settings = paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(settings)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, preview_seconds=3)
    rec_id = install(packaged, settings.server.data_dir, "maths")
    room = await app[PAYWALL].catalog.get("maths")
    buyer, stranger = await Api.sign_up(base), await Api.sign_up(base)
    async with app[INTERACTION].server.db() as s:
        for t, text in [(1200, "first!"), (1500, XSS), (7000, "late one")]:
            s.add(Danmaku(room_id=room.id, user_id=buyer.user["id"], broadcast=rec_id, t_ms=t, text=text,
                          color="#FFEE00", mode="scroll"))
        s.add(Question(room_id=room.id, user_id=buyer.user["id"], broadcast=rec_id, t_ms=500,
                       text="What about chapter two?", status="answered", answered_t_ms=5000, currency="USD"))
        await s.commit()
    await buy(buyer, "maths", "replay")
    log: list[str] = []

    page = await logged_in_page(browser, base, buyer, "replay", log)
    await page.goto(f"{base}/static/replay.html?recording={rec_id}")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    assert await page.locator("#offer").is_hidden()
    await page.click("#video")  # a user gesture, then play (muted autoplay rules)
    await page.evaluate("document.getElementById('video').muted = true; document.getElementById('video').play()")
    await page.wait_for_function(PLAYING % 0.5, timeout=15_000)
    # the danmaku appear over the video once their second has come, as text
    await page.wait_for_function("document.getElementById('stage').innerText.includes('first!')", timeout=10_000)
    stage_text = await page.locator("#stage").inner_text()
    assert XSS in stage_text or await page.wait_for_function(
        f"document.getElementById('stage').innerText.includes({XSS!r})", timeout=5_000)
    assert await page.evaluate("window.pwned === undefined && !document.querySelector('#stage img')")
    assert "late one" not in stage_text  # not before its time
    await page.screenshot(path=str(SCREENSHOTS / "replay-playing.png"))
    # a chapter for the answered question, which seeks there
    chapter = page.locator("#chapters button.chapter")
    assert await chapter.count() == 1
    assert (await chapter.inner_text()).startswith("00:05 Q: What about chapter two?")
    await chapter.click()
    await page.wait_for_function("document.getElementById('video').currentTime >= 5", timeout=10_000)
    await page.wait_for_function("document.getElementById('stage').innerText.includes('late one')", timeout=10_000)
    # the thumbnail strip: one tile per 2 s of the 9 s replay (the test packager's interval); a tile seeks
    thumbs = page.locator("#strip button.thumb")
    assert await thumbs.count() >= 4
    await thumbs.nth(1).click()
    await page.wait_for_function("Math.abs(document.getElementById('video').currentTime - 2) < 1.5")
    # the page asked for every file with a bearer token: no token in any URL it used
    urls = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert any(f"/replay/{rec_id}/seg-" in u for u in urls) and not any("token=" in u for u in urls), urls

    # a logged-in non-buyer: the free preview, then the offer
    preview = await logged_in_page(browser, base, stranger, "preview", log)
    await preview.goto(f"{base}/static/replay.html?recording={rec_id}")
    await preview.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    assert await preview.locator("#offer").is_visible()
    assert "$5.00" in await preview.locator("#buy").inner_text()
    await preview.evaluate("const v = document.getElementById('video'); v.muted = true; v.play()")
    await preview.wait_for_function("document.getElementById('status').dataset.state === 'preview-over'",
                                    timeout=20_000)
    played = await preview.evaluate("document.getElementById('video').currentTime")
    assert 2.5 <= played <= 5.0, played  # the preview playlist ends with its first segment
    await preview.screenshot(path=str(SCREENSHOTS / "replay-preview-over.png"))
    # buy the replay through the dev checkout, come back to it, and watch past the preview
    await preview.click("#buy")
    await preview.wait_for_url(re.compile(r".*/pay/dev/[0-9a-f]+\?return=.*"))
    await preview.click("#confirm")
    await preview.wait_for_url(f"{base}/static/replay.html?recording={rec_id}")
    await preview.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    assert await preview.locator("#offer").is_hidden()
    await preview.evaluate("const v = document.getElementById('video'); v.muted = true; v.currentTime = 5; v.play()")
    await preview.wait_for_function("document.getElementById('video').currentTime > 6", timeout=15_000)
    assert not [line for line in log if "pageerror" in line], log
