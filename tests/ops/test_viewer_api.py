"""The viewer pages' thin endpoints: ``GET /api/live`` (rooms on air with viewer counts,
and a room's phase in ``GET /api/rooms/{room}``), ``GET /api/me/entitlements``, and where
the dev checkout sends the buyer back. Paywall ones on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import aiohttp
import pytest

from signalling.whip import ROOMS
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess


async def test_entitlements_of_the_logged_in_user(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    await paid_room(creator, slug="physics")
    await paid_room(creator, slug="free-talk", ticket_price=0)
    viewer = await Api.sign_up(base)
    other = await Api.sign_up(base)

    status, body = await viewer.get("/api/me/entitlements", token=None)
    assert (status, body["error"]["code"]) == (401, "login_required")
    status, body = await viewer.get("/api/me/entitlements", token="not-a-login-token")
    assert status == 401
    assert await viewer.get("/api/me/entitlements") == (200, {"entitlements": {}})

    ticket = await buy(viewer, "maths")
    await buy(viewer, "maths", "replay")
    await buy(viewer, "physics", "bundle")
    await buy(other, "physics")
    status, body = await viewer.get("/api/me/entitlements")
    assert status == 200
    assert body == {"entitlements": {"maths": ["replay", "ticket"], "physics": ["replay", "ticket"]}}
    assert (await other.get("/api/me/entitlements"))[1] == {"entitlements": {"physics": ["ticket"]}}

    # a refund takes the ticket away
    status, _ = await creator.post(f"/api/orders/{ticket['id']}/refund")
    assert status == 200
    assert (await viewer.get("/api/me/entitlements"))[1]["entitlements"]["maths"] == ["replay"]

    # bad input changes nothing
    status, body = await viewer.get("/api/me/entitlements?room=maths")
    assert (status, body["error"]["code"]) == (400, "unexpected_parameter")


async def test_dev_checkout_returns_to_the_room_page_or_a_safe_path(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    viewer = await Api.sign_up(base)
    cookies = {"stagepass_session": viewer.token}

    async def order() -> str:
        import secrets

        status, body = await viewer.post("/api/orders", {"room": "maths", "product": "tip", "amount": 300,
                                                         "idempotency_key": secrets.token_hex(8)})
        assert status == 201, body
        return body["order"]["id"]

    async with aiohttp.ClientSession(cookies=cookies) as http:
        oid = await order()
        # the page carries the return path in its form, escaped
        async with http.get(f"{base}/pay/dev/{oid}", params={"return": '/static/room.html?room=maths&x="<b>'}) as r:
            page = await r.text()
        assert r.status == 200
        assert 'name="return" value="/static/room.html?room=maths&amp;x=&quot;&lt;b&gt;"' in page
        async with http.get(f"{base}/pay/dev/{oid}") as r:
            assert f'value="/static/room.html?room=maths&amp;order={oid}"' in await r.text()

        expectations = {
            "/static/room.html?room=maths&tip=1": "/static/room.html?room=maths&tip=1",
            "//evil.example/x": f"/static/room.html?room=maths&order=",
            "/\\evil.example": f"/static/room.html?room=maths&order=",
            "https://evil.example/": f"/static/room.html?room=maths&order=",
            "javascript:alert(1)": f"/static/room.html?room=maths&order=",
            "/ok\nSet-Cookie: x=1": f"/static/room.html?room=maths&order=",
            None: f"/static/room.html?room=maths&order=",
        }
        for candidate, expected in expectations.items():
            oid = await order()
            form = {"action": "confirm"}
            if candidate is not None:
                form["return"] = candidate
            async with http.post(f"{base}/pay/dev/{oid}", data=form, allow_redirects=False) as r:
                assert r.status == 303, candidate
                location = r.headers["Location"]
            assert location.startswith(expected), (candidate, location)
            if expected.endswith("order="):
                assert location == expected + oid
            assert (await viewer.get(f"/api/orders/{oid}"))[1]["order"]["status"] == "paid"
        # declining goes back too, and a bad action still changes nothing
        oid = await order()
        async with http.post(f"{base}/pay/dev/{oid}", data={"action": "steal", "return": "/x"},
                             allow_redirects=False) as r:
            assert r.status == 400
        assert (await viewer.get(f"/api/orders/{oid}"))[1]["order"]["status"] == "pending"
        async with http.post(f"{base}/pay/dev/{oid}", data={"action": "decline"}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].endswith(f"order={oid}")
        assert (await viewer.get(f"/api/orders/{oid}"))[1]["order"]["status"] == "declined"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_live_rooms_viewer_counts_and_phases(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    key = (await paid_room(creator, slug="maths", ticket_price=0))["stream_key"]
    await paid_room(creator, slug="quiet")
    async with aiohttp.ClientSession() as http:
        async def get(path: str):
            async with http.get(base + path) as r:
                return r.status, await r.json()

        assert await get("/api/live") == (200, {"rooms": []})
        status, body = await get("/api/live?q=x")
        assert (status, body["error"]["code"]) == (400, "unexpected_parameter")
        assert (await get("/api/rooms/quiet"))[1]["phase"] == "idle"

        publisher = Publisher(base)
        viewer = Viewer(base)
        try:
            assert await publisher.publish("maths", key) == 201
            room = app[ROOMS].get("maths")
            await wait_for(lambda: room.live, timeout=10)
            status, body = await get("/api/live")
            assert status == 200 and [(r["room"], r["phase"], r["viewers"]) for r in body["rooms"]] == [("maths", "live", 0)]
            assert re.fullmatch(r"[0-9a-f]{16}", body["rooms"][0]["broadcast"]["id"])

            viewer_api = await Api.sign_up(base)
            status, minted = await viewer_api.post("/api/rooms/maths/tokens", {"scope": "view"})
            assert await viewer.post("/whep/maths", token=minted["token"]) == 201
            await wait_for(lambda: len(room.subscribers) == 1, timeout=10)
            assert [r["viewers"] for r in (await get("/api/live"))[1]["rooms"]] == [1]

            # the publisher drops without ending: "reconnecting", still listed
            await publisher.close()
            await wait_for(lambda: room.publisher is None, timeout=15)
            assert (await get("/api/rooms/maths"))[1]["phase"] == "reconnecting"
            assert [r["phase"] for r in (await get("/api/live"))[1]["rooms"]] == ["reconnecting"]

            # a new publisher ends it properly (WHIP DELETE): "ended", off the list
            publisher = Publisher(base)
            assert await publisher.publish("maths", key) == 201
            await wait_for(lambda: room.live, timeout=10)
            broadcast = room.broadcast.id
            assert await publisher.delete() == 200
            status, body = await get("/api/rooms/maths")
            assert (body["phase"], body["ended_broadcast"]) == ("ended", broadcast)
            assert (await get("/api/live"))[1] == {"rooms": []}
        finally:
            await publisher.close()
            await viewer.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_home_is_the_catalog_and_the_pages_are_served(paywall_app):
    base, _ = paywall_app
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/", allow_redirects=False) as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert 'src="/static/catalog.js"' in await r.text()
        for page in ("login.html", "room.html", "watch.html"):
            async with http.get(f"{base}/static/{page}") as r:
                assert r.status == 200, page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_chat_says_why_it_ends_preview_over_or_seat_taken(paywall_app):
    from tests.support.chat import Chat

    base, _ = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths", preview_seconds=1)
    previewer, holder = await Api.sign_up(base), await Api.sign_up(base)
    await buy(holder, "maths")
    chats = [Chat() for _ in range(3)]
    try:
        status, minted = await previewer.post("/api/rooms/maths/tokens", {"scope": "view"})
        assert status == 201 and minted["preview_until"]
        assert await chats[0].connect(base, "maths", minted["token"])
        token = (await holder.post("/api/rooms/maths/tokens", {"scope": "view"}))[1]["token"]
        assert await chats[1].connect(base, "maths", token)
        assert await chats[2].connect(base, "maths", token)  # the same ticket on a second device
        await wait_for(lambda: chats[1].got("kicked"), timeout=5)
        assert chats[1].got("kicked")[0]["code"] == "seat_taken"
        await wait_for(lambda: chats[0].got("kicked"), timeout=5)
        assert chats[0].got("kicked")[0]["code"] == "preview_over"
        assert not chats[2].got("kicked")
    finally:
        for chat in chats:
            await chat.close()
