"""The paywall through the real app, on SQLite and PostgreSQL: buy, watch, refund."""


import pytest

from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, view_token
from tests.support.peers import Publisher, Viewer
from signalling.whip import ROOMS

pytestmark = pytest.mark.inprocess


class TokenViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)


@pytest.mark.slow
async def test_signup_create_buy_watch_and_refund(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator)
    assert room["stream_key"]
    viewer = await Api.sign_up(base, "viewer")

    # the creator goes live from a publish token minted with their own login
    status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
    assert status == 201
    publisher = Publisher(base)
    assert await publisher.publish("maths", minted["token"]) == 201

    # no ticket: no token, and WHEP refuses
    status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (402, "ticket_required")
    refused = TokenViewer(base)
    assert await refused.play("maths") == 401
    await refused.close()

    order = await buy(viewer, "maths")
    assert (order["amount"], order["currency"]) == (990, "USD")
    token = await view_token(viewer, "maths")
    watcher = TokenViewer(base)
    assert await watcher.play_with("maths", token) == 201, watcher.error
    await wait_for(lambda: len(watcher.numbers) > 10, timeout=10)

    # money: 10% platform fee, the rest the creator's; balanced
    status, earnings = await creator.get("/api/creator/earnings")
    assert earnings["earnings"] == [{"room": "maths", "currency": "USD", "earned": 891, "orders": 1}]

    # refund: the viewer's live session ends within seconds, the token stops working
    rooms = app[ROOMS]
    assert len(rooms.get("maths").subscribers) == 1
    status, refunded = await creator.post(f"/api/orders/{order['id']}/refund")
    assert status == 200 and refunded["order"]["status"] == "refunded"
    await wait_for(lambda: not rooms.get("maths").subscribers, timeout=5)
    again = TokenViewer(base)
    assert await again.play_with("maths", token) == 403
    status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert status == 402
    status, earnings = await creator.get("/api/creator/earnings")
    assert earnings["earnings"][0]["earned"] == 0
    for peer in (watcher, again, publisher):
        await peer.close()
