"""Pages with the paywall: a creator publishes from the studio with their login (no
stream key); a viewer's player is refused until they buy, then plays."""

from __future__ import annotations

import pytest

from signalling.whip import ROOMS
from tests.support.browser import SCREENSHOTS, logged_in_page
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from stagepass.app import create_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_creator_login_publishes_and_buyer_plays(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    viewer = await Api.sign_up(base)
    log: list[str] = []

    studio = await logged_in_page(browser, base, creator, "studio", log)
    await studio.goto(f"{base}/static/studio.html?room=maths")
    await studio.click("#golive")  # no stream key typed: the creator's login mints a publish token
    await studio.wait_for_function("document.getElementById('status').textContent === 'live'")
    room = app[ROOMS].get("maths")
    await wait_for(lambda: room.publisher is not None and room.publisher.last_media() is not None, timeout=10)

    watch = await logged_in_page(browser, base, viewer, "watch", log)
    await watch.goto(f"{base}/static/watch.html?room=maths&autoplay=1")
    await watch.wait_for_function("document.getElementById('status').textContent.includes('ticket')")
    assert not room.subscribers
    await watch.screenshot(path=str(SCREENSHOTS / "watch-needs-ticket.png"))

    await buy(viewer, "maths")
    await watch.reload()
    await watch.wait_for_function(
        "(() => { const v = document.getElementById('video'); return v.videoWidth > 0 && v.currentTime > 0.5; })()",
        timeout=15_000,
    )
    assert len(room.subscribers) == 1
    # a paid room: the buyer's watermark over the player (tests/web/test_browser_i18n.py tests it further)
    await watch.wait_for_function(
        "[...document.getElementById('stage').children].some((e) => e.tagName === 'DIV' && e.getBoundingClientRect().width > 0)")
    await watch.screenshot(path=str(SCREENSHOTS / "watch-bought.png"))
    assert not [line for line in log if "pageerror" in line], log
