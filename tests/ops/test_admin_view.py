"""The admin view's API: this node's load and live rooms (publisher bitrate, viewers,
loss), ending a broadcast and disconnecting a viewer; admins only."""

from __future__ import annotations

import asyncio

import pytest

from stagepass.app import create_app
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class TicketViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_admin_sees_live_rooms_and_ends_them(aiohttp_server, tmp_path, database_url):
    app = create_app(paywall_settings(tmp_path, database_url))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator)
    buyers = [await Api.sign_up(base) for _ in range(2)]
    for buyer in buyers:
        await buy(buyer, "maths")
    admin = await Api.sign_up(base)
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")

    publisher = Publisher(base)
    viewers = [TicketViewer(base) for _ in buyers]
    try:
        assert await publisher.publish("maths", room["stream_key"]) == 201
        for viewer, buyer in zip(viewers, buyers):
            assert await viewer.play_with("maths", await view_token(buyer, "maths")) == 201
        for viewer in viewers:
            await asyncio.wait_for(asyncio.shield(viewer.first_frame), 30)

        # admins only
        assert (await Api(base).get("/api/admin/live"))[0] == 401
        status, body = await creator.get("/api/admin/live")
        assert status == 403 and body["error"]["code"] == "admin_only"
        status, body = await creator.post("/api/admin/rooms/maths/end")
        assert status == 403
        assert app[ROOMS].get("maths").live  # the refusal changed nothing

        await admin.get("/api/admin/live")  # the first reading of the rates
        await asyncio.sleep(1.5)
        status, body = await admin.get("/api/admin/live")
        assert status == 200, body
        assert body["node"]["rooms_live"] == 1 and body["node"]["viewers"] == 2
        assert body["node"]["cpu_pct"] is not None and body["node"]["event_loop_lag_ms"] is not None
        [maths] = body["rooms"]
        assert maths["room"] == "maths" and maths["phase"] == "live" and maths["viewers"] == 2
        assert maths["publisher"]["ingest_kbps"] > 10, maths  # the test publisher sends video and audio
        assert maths["publisher"]["codecs"]["video"] in ("H264", "VP8")

        # disconnect one viewer by the id the viewers API shows
        status, listing = await creator.get("/api/rooms/maths/viewers")
        assert status == 200 and len(listing["viewers"]) == 2
        victim = listing["viewers"][0]["id"]
        assert (await creator.post(f"/api/admin/rooms/maths/viewers/{victim}/disconnect"))[0] == 403
        status, body = await admin.post("/api/admin/rooms/maths/viewers/nobody00/disconnect")
        assert status == 404 and body["error"]["code"] == "viewer_not_found"
        status, body = await admin.post(f"/api/admin/rooms/maths/viewers/{victim}/disconnect")
        assert status == 200 and body["viewers"] == 1, body
        assert victim not in [s.id[:8] for s in app[ROOMS].get("maths").subscribers.values()]

        # end the broadcast
        status, body = await admin.post("/api/admin/rooms/maths/end")
        assert status == 200 and body["phase"] == "ended", body
        assert app[ROOMS].get("maths").publisher is None
        status, body = await admin.post("/api/admin/rooms/maths/end")
        assert status == 404 and body["error"]["code"] == "not_live"
        status, body = await admin.get("/api/admin/live")
        assert [r["room"] for r in body["rooms"] if r["phase"] == "live"] == []
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_admin_page_disconnects_a_viewer_and_ends_the_broadcast(aiohttp_server, tmp_path, database_url,
                                                                     browser):
    from tests.support.browser import SCREENSHOTS, open_page, wait_state

    app = create_app(paywall_settings(tmp_path, database_url))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator)
    buyer = await Api.sign_up(base)
    await buy(buyer, "maths")
    admin = await Api.sign_up(base)
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    publisher = Publisher(base)
    viewer = TicketViewer(base)
    log: list[str] = []
    try:
        assert await publisher.publish("maths", room["stream_key"]) == 201
        assert await viewer.play_with("maths", await view_token(buyer, "maths")) == 201
        await asyncio.wait_for(asyncio.shield(viewer.first_frame), 30)

        # a creator is told the page is for admins
        page = await open_page(browser, base, "creator", log, login=creator.token)
        await page.goto(f"{base}/static/admin.html")
        await wait_state(page, "error")
        assert "Only admins" in await page.text_content("#status")
        await page.context.close()

        page = await open_page(browser, base, "admin", log, login=admin.token)
        await page.goto(f"{base}/static/admin.html")
        await wait_state(page, "ok")
        row = page.locator('#rooms-table tr[data-room="maths"]')
        await row.locator(".viewers", has_text="1").wait_for()
        assert (await row.locator(".phase").text_content()) == "live"
        # keyframe requests asked / sent; one process: no media workers to list
        assert " / " in await row.locator(".keyframes").text_content()
        assert await page.locator("#workers-empty").is_visible()
        # the nodes table: this node (the only one, in process), from the node registry
        node_row = page.locator('#nodes-table tr[data-this="true"]')
        await node_row.locator(".rooms", has_text="maths").wait_for()
        assert await page.locator("#nodes-table tbody tr").count() == 1
        viewer_row = page.locator('#room-viewers tr[data-viewer]')
        await viewer_row.wait_for()
        assert await page.locator('a[href="/static/admin.html"]').count() == 1  # the header links it
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "admin-live.png"), full_page=True)

        await viewer_row.locator("button.disconnect").click()
        await row.locator(".viewers", has_text="0").wait_for()
        assert len(app[ROOMS].get("maths").subscribers) == 0

        await row.locator("button.end-broadcast").click()
        await row.wait_for(state="detached")  # nobody left: the room is no longer live
        assert "end the broadcast of maths: done" in await page.text_content("#status")
        assert await page.locator("#rooms-empty").is_visible()
        assert app[ROOMS].get("maths").publisher is None
        assert not [line for line in log if "pageerror" in line], log
    finally:
        await viewer.close()
        await publisher.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_studio_shows_which_viewer_has_a_poor_connection(aiohttp_server, tmp_path, database_url, browser):
    """The creator's studio lists the viewers' connections live: a player losing 10% of its
    packets is flagged poor, a clean one is not."""
    from tests.support.browser import SCREENSHOTS, open_page
    from tests.support.ops_tools import LossyViewer

    app = create_app(paywall_settings(tmp_path, database_url))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator)
    buyers = [await Api.sign_up(base) for _ in range(2)]
    for buyer in buyers:
        await buy(buyer, "maths")
    publisher = Publisher(base)
    lossy = LossyViewer(base, loss=0.10)
    clean = TicketViewer(base)
    log: list[str] = []
    try:
        assert await publisher.publish("maths", room["stream_key"]) == 201
        assert await lossy.play_with("maths", await view_token(buyers[0], "maths")) == 201
        assert await clean.play_with("maths", await view_token(buyers[1], "maths")) == 201
        page = await open_page(browser, base, "studio", log, login=creator.token, timeout_ms=30_000)
        await page.goto(f"{base}/static/studio.html?room=maths")
        # both at once: the lossy player flagged poor, the clean one good
        await page.wait_for_function(
            """([poorUser, goodUser]) => {
                 const items = [...document.querySelectorAll('#viewer-quality li')];
                 const poor = items.filter((li) => li.dataset.poor === 'true').map((li) => li.textContent);
                 const good = items.filter((li) => li.dataset.poor === 'false').map((li) => li.textContent);
                 return items.length === 2 && poor.length === 1 && poor[0].includes(`(user ${poorUser})`)
                   && good.length === 1 && good[0].includes(`(user ${goodUser})`);
               }""", arg=[buyers[0].user["id"], buyers[1].user["id"]])
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.locator("#live-panel").screenshot(path=str(SCREENSHOTS / "studio-viewer-quality.png"))
        assert not [line for line in log if "pageerror" in line], log
    finally:
        await lossy.close()
        await clean.close()
        await publisher.close()
