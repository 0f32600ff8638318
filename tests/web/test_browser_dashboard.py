"""The creator dashboard in Chromium: real sessions (aiortc publisher and viewers against the
real app, sampled every 0.2 s), real sales and a refund; the creator sees the room row,
the numbers and a Chart.js chart of concurrent viewers, on a desktop and a phone screen;
keyboard use; room titles shown as text; viewers and strangers are told why not."""

from __future__ import annotations

import pytest

from stagepass.app import AUDIENCE, create_app
from signalling.whip import ROOMS
from paywall.http import PAYWALL
from tests.support.browser import SCREENSHOTS
from tests.support.browser import open_page as shared_open_page
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS_TITLE = "Drawing <img src=x onerror=\"window.__xss=1\"> hands"


class TokenViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)


async def open_page(browser, base: str, api: Api | None, name: str, log: list[str], width=1280, height=800,
                    *, overtaken: str | None = None):
    """The dashboard for ``api``'s login; ``overtaken``: see ``answer_first_late``."""
    page = await shared_open_page(browser, base, name, log, login=api.token if api else None,
                                  viewport=(width, height))
    if overtaken:
        await answer_first_late(page, overtaken)
    await page.goto(f"{base}/static/dashboard.html")
    return page


async def answer_first_late(page, pattern: str) -> None:
    """The page's first request to ``pattern`` is answered only when it asks a second time,
    just before that one (as a slow server would): an answer the page no longer waits for."""
    first = None
    released = False

    async def route(request_route):
        nonlocal first, released
        if first is None:
            first = request_route
            return
        if not released:
            released = True
            async with page.expect_event("requestfinished", lambda r: r == first.request):
                await first.fulfill(response=await first.fetch())
            await page.evaluate("new Promise((resolve) => setTimeout(resolve, 50))")  # the page read it
        await request_route.fulfill(response=await request_route.fetch())

    await page.route(pattern, route)


async def ticks(app, n: int) -> None:
    sampler = app[AUDIENCE]
    start = sampler.ticks
    await wait_for(lambda: sampler.ticks >= start + n, timeout=20)


CHART_POINTS = """(sel) => {
  const canvas = document.querySelector(sel);
  const chart = canvas && Chart.getChart(canvas);
  return chart ? {w: canvas.clientWidth, h: canvas.clientHeight,
                  points: chart.data.datasets[0].data.length,
                  max: Math.max(...chart.data.datasets[0].data.map(p => p.y))} : null;
}"""


async def test_creator_sees_sales_sessions_and_the_audience_chart(aiohttp_server, tmp_path, browser):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", audience_sample_seconds=0.2))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")  # USD 9.90
    await paid_room(creator, slug="art", title=XSS_TITLE, currency="EUR", ticket_price=1000)
    fans = [await Api.sign_up(base) for _ in range(3)]
    tokens = []
    for fan in fans[:2]:
        await buy(fan, "maths")
        tokens.append(await view_token(fan, "maths"))
    refunded = await buy(fans[2], "maths")
    status, _ = await creator.post(f"/api/orders/{refunded['id']}/refund")
    assert status == 200

    # session 1: two real viewers, then one leaves, then the creator ends it
    peers: list = []
    log: list[str] = []
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("maths", minted["token"]) == 201
        room = app[ROOMS].get("maths")
        first = room.broadcast.id
        viewers = []
        for token in tokens:
            viewer = TokenViewer(base)
            peers.append(viewer)
            assert await viewer.play_with("maths", token) == 201, viewer.error
            viewers.append(viewer)
        await wait_for(lambda: all(len(v.numbers) > 5 for v in viewers), timeout=20)
        await ticks(app, 8)
        assert await viewers[1].delete() == 200
        await wait_for(lambda: len(room.subscribers) == 1, timeout=10)
        await ticks(app, 5)
        assert await publisher.delete() == 200
        await publisher.close()

        # session 2: live while the creator looks, one viewer
        again = Publisher(base)
        peers.append(again)
        assert await again.publish("maths", minted["token"]) == 201
        second = room.broadcast.id
        assert second != first
        await ticks(app, 4)

        # the first chart's answer comes after the refresh below asked again: it is not drawn on the
        # replaced canvas (which left the refreshed chart empty)
        page = await open_page(browser, base, creator, "dashboard", log,
                               overtaken="**/api/creator/broadcasts/*/audience")
        await page.wait_for_selector("#rooms-table tbody tr[data-room='maths']")
        row = page.locator("#rooms-table tbody tr[data-room='maths']")
        assert await row.locator(".tickets").inner_text() == "2"  # the refunded ticket is not counted
        revenue = await row.locator("td").nth(1).inner_text()
        assert "19.80" in revenue and "refunds" in revenue and "9.90" in revenue
        assert "17.82" in await row.locator(".earnings").inner_text()  # 2 x 8.91 after the 10% fee
        assert "17.82" in await page.locator("#balance").inner_text()
        assert await page.locator("#payouts-empty").is_visible()
        # a payout recorded by an admin shows up, and the balance drops by it
        admin = await Api.sign_up(base)
        await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
        status, body = await admin.post("/api/admin/payouts", {"creator_id": creator.user["id"], "amount": 1000,
                                                               "currency": "USD", "reference": "Wire <b>42</b>"})
        assert status == 201, body
        await page.click("#refresh")
        await page.locator("#payouts li").first.wait_for()
        assert "$10.00" in await page.locator("#payouts li").inner_text()
        assert "Wire <b>42</b>" in await page.locator("#payouts li").inner_text()  # text, not markup
        assert "7.82" in await page.locator("#balance").inner_text()
        assert await page.locator("#payouts-empty").is_hidden()

        # the newest session (live) is charted at once; the first by keyboard
        card = page.locator("#room-maths")
        assert await card.locator(f"tr[data-session='{second}'] .badge.live").count() == 1
        await page.wait_for_function(f"({CHART_POINTS})('#room-maths canvas')?.points > 0")
        ended = card.locator(f"tr[data-session='{first}']")
        assert await ended.locator(".peak").inner_text() == "2"
        avg = float(await ended.locator(".avg").inner_text())
        assert 1 <= avg <= 2
        await ended.locator("button").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_function(f"({CHART_POINTS})('#room-maths canvas')?.max === 2")
        chart = await page.evaluate(CHART_POINTS, "#room-maths canvas")
        assert chart["w"] > 100 and chart["h"] > 100 and chart["points"] >= 10
        assert await ended.locator("button").get_attribute("aria-pressed") == "true"
        assert "peak 2" in await card.locator("figcaption").inner_text()
        assert "null" not in await card.inner_text()
        links = [await a.get_attribute("href") for a in await card.locator(".room-links a").all()]
        assert links == ["/static/studio.html?room=maths", "/static/room.html?room=maths", "/static/analytics.html?room=maths"]
        await page.screenshot(path=str(SCREENSHOTS / "dashboard-desktop.png"), full_page=True)

        # user text is text: the title shows literally and runs nothing
        assert XSS_TITLE in await page.locator("#room-art h2").inner_text()
        assert await page.locator("#room-details img, #rooms-table img").count() == 0
        assert await page.evaluate("window.__xss") is None
        assert "No sessions yet" in await page.locator("#room-art").inner_text()

        # a phone: nothing wider than the screen, the chart still drawn
        phone = await open_page(browser, base, creator, "phone", log, width=390, height=844)
        await phone.wait_for_function(f"({CHART_POINTS})('#room-maths canvas')?.points > 0")
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
        chart = await phone.evaluate(CHART_POINTS, "#room-maths canvas")
        assert 200 < chart["w"] <= 390 and chart["h"] > 100
        for cell in ("#rooms-table tr[data-room='maths'] .earnings", f"#room-maths tr[data-session='{first}'] button"):
            box = await phone.locator(cell).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (cell, box)
        await phone.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)

        # a viewer and a stranger are told, not shown
        viewer_page = await open_page(browser, base, fans[0], "viewer", log)
        await viewer_page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
        assert "for creators" in await viewer_page.locator("#status").inner_text()
        assert await viewer_page.locator("#rooms-section").is_hidden()
        stranger = await open_page(browser, base, None, "stranger", log)
        await stranger.wait_for_selector("#status a[href^='/static/login.html']")
        assert not [line for line in log if "pageerror" in line], log
    finally:
        for peer in peers:
            await peer.close()
