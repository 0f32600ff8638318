"""In Chromium, as people use it: the creator cuts a free clip in the studio, a visitor finds
it on the room page and plays it with its danmaku, a viewer joins the room's discussion
and replies."""

from __future__ import annotations

import pytest

from interaction.assembly import INTERACTION
from interaction.models import Danmaku
from paywall.http import PAYWALL
from stagepass.app import create_app
from tests.support.browser import open_page
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.replays import install

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_studio_cuts_a_teaser_visitors_play_it_and_viewers_discuss(aiohttp_server, tmp_path, database_url,
                                                                        packaged, browser):
    settings = paywall_settings(tmp_path, database_url)
    app = create_app(settings)
    srv = await aiohttp_server(app)
    base = str(srv.make_url("")).rstrip("/")
    creator, viewer = await Api.sign_up(base, "creator"), await Api.sign_up(base)
    await paid_room(creator)
    rec_id = install(packaged, settings.server.data_dir, "maths")
    room = await app[PAYWALL].catalog.get("maths")
    async with app[INTERACTION].server.db() as s:
        s.add(Danmaku(room_id=room.id, user_id=viewer.user["id"], broadcast=rec_id, t_ms=3000, text="nice proof",
                      color="#ffffff", mode="scroll"))
        await s.commit()
    log: list[str] = []
    try:
        studio = await open_page(browser, base, "studio", log, login=creator.token)
        await studio.goto(f"{base}/static/studio.html?room=maths")
        await studio.wait_for_selector("#clip-form:not([hidden])", timeout=20000)
        await studio.fill("#clip-start", "2")
        await studio.fill("#clip-end", "5.5")
        await studio.fill("#clip-title", "Epsilon <i>and</i> delta")
        await studio.check("#clip-teaser")
        await studio.click("#clip-cut")
        await studio.wait_for_function("document.getElementById('clip-status').dataset.state === 'done'")
        item = await studio.wait_for_selector("#clip-list li")
        assert "Epsilon <i>and</i> delta" in await item.inner_text()  # text, not markup
        assert "embed/clip/" in await studio.eval_on_selector("#clip-list .embed-code", "e => e.value")

        visitor = await open_page(browser, base, "visitor", log)
        await visitor.goto(f"{base}/static/room.html?room=maths")
        card = await visitor.wait_for_selector("#teaser-list li a")
        await card.click()
        await visitor.wait_for_url("**/static/clip.html?clip=*")
        await visitor.wait_for_function("window.stagepass && window.stagepass.danmakuCount === 1")
        await visitor.wait_for_function("document.getElementById('video').readyState >= 2", timeout=15000)
        await visitor.evaluate("() => { const v = document.getElementById('video'); v.muted = true; return v.play(); }")
        await visitor.wait_for_function("document.getElementById('video').currentTime > 1.2", timeout=15000)
        # the danmaku sent at 3 s of the class shows at 1 s of the clip
        await visitor.wait_for_function("document.getElementById('stage').innerText.includes('nice proof')",
                                        timeout=10000)
        assert await visitor.get_attribute("#share-link", "href") == f"/share/clip/{visitor.url.split('clip=')[1]}"

        talk = await open_page(browser, base, "viewer", log, login=viewer.token)
        await talk.goto(f"{base}/static/room.html?room=maths")
        await talk.wait_for_selector("#comments .comment-form textarea")
        await talk.fill("#comments .comment-form textarea", "Will there be <b>homework</b>?")
        await talk.click("#comments .comment-form button")
        first = await talk.wait_for_selector("#comments li.comment")
        assert "Will there be <b>homework</b>?" in await first.inner_text()
        await talk.click("#comments li.comment button:has-text('Reply')")
        await talk.fill("#comments li.comment form textarea", "me too")
        await talk.click("#comments li.comment form button")
        await talk.wait_for_selector("#comments .replies li.comment")
        assert "me too" in await talk.inner_text("#comments .replies")
        assert not [line for line in log if "pageerror" in line], "\n".join(log)
    except BaseException:
        print("\n".join(log))
        raise
