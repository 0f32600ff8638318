"""Danmaku through real Socket.IO clients against the real app."""

import asyncio


from tests.support.chat import Chat, free_room_with_chats
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, connected, paid_room
import pytest

pytestmark = pytest.mark.inprocess


async def test_danmaku_reaches_everyone_with_server_stamps(paywall_app):
    base, app = paywall_app
    room, _, _, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        ack = await a.call("danmaku:send", {"text": "hello <b>world</b>", "color": "#ff0000", "mode": "top"})
        assert ack["ok"], ack
        item = ack["danmaku"]
        assert item["text"] == "hello <b>world</b>" and item["color"] == "#FF0000" and item["mode"] == "top"
        assert item["user"]["id"] == alice.user["id"] and isinstance(item["t_ms"], int) and item["id"]
        await wait_for(lambda: b.danmaku(), timeout=3)
        assert b.danmaku()[0] == item
        # a late joiner gets the recent ones
        c = await room.connect(await Api.sign_up(base))
        await wait_for(lambda: c.got("danmaku:recent"), timeout=3)
        assert c.got("danmaku:recent")[0]["items"][-1]["id"] == item["id"]
        await c.close()
    finally:
        await room.close()


async def test_bad_danmaku_get_precise_errors_and_nothing_is_sent(paywall_app):
    base, app = paywall_app
    room, _, _, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        for payload, code in [
            ({"text": ""}, "invalid_text"),
            ({"text": "x" * 101}, "text_too_long"),
            ({"text": "hi", "color": "red"}, "invalid_color"),
            ({"text": "hi", "mode": "sideways"}, "invalid_mode"),
            ({"text": 5}, "invalid_text"),
            ("just a string", "invalid_payload"),
        ]:
            ack = await a.call("danmaku:send", payload)
            assert ack == {"ok": False, "error": {"code": code, "message": ack["error"]["message"]}}, (payload, ack)
        # burst of 5 passes, the 6th is rate limited
        acks = [await a.call("danmaku:send", {"text": f"m{i}"}) for i in range(6)]
        assert [x["ok"] for x in acks] == [True] * 5 + [False]
        assert acks[-1]["error"]["code"] == "rate_limited"
        await asyncio.sleep(0.3)
        assert len(b.danmaku()) == 5
    finally:
        await room.close()


async def test_connection_refusals(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    chat = Chat()
    assert not await chat.connect(base, "maths", "not-a-token")
    assert chat.refused["data"]["code"] == "invalid_token"
    chat = Chat()
    assert not await chat.connect(base, "nowhere", "x.y.z")
    assert chat.refused["data"]["code"] == "room_not_found"
    # a ticket holder's token works; after a refund the chat connection ends
    order = await buy(viewer, "maths")
    chat = await connected(base, viewer, "maths")
    status, _ = await creator.post(f"/api/orders/{order['id']}/refund")
    assert status == 200
    await wait_for(lambda: not chat.sio.connected, timeout=5)
    assert [k["code"] for k in chat.got("kicked")] == ["refunded"]


async def test_export_json_and_bilibili_xml(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, ticket_price=0)
    alice = await Api.sign_up(base)
    a = await connected(base, alice, "maths")
    try:
        await a.call("danmaku:send", {"text": "first & <best>", "color": "#00FF00", "mode": "bottom"})
        status, body = await alice.get("/api/rooms/maths/danmaku?format=json")
        assert status == 200 and body["items"][0]["text"] == "first & <best>"
        status, xml = await alice.get("/api/rooms/maths/danmaku?format=xml")
        assert status == 200 and "<d p=" in xml and "first &amp; &lt;best&gt;" in xml
        p = xml.split('<d p="')[1].split('"')[0].split(",")
        assert p[1] == "4" and p[2] == "25" and p[3] == str(0x00FF00) and p[6] == str(alice.user["id"])
        status, body = await alice.get("/api/rooms/maths/danmaku?from_ms=abc")
        assert status == 400
    finally:
        await a.close()
