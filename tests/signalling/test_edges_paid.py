"""A paid room through an edge: two in-process nodes on one PostgreSQL database and one
Redis database. The creator publishes on A; a ticket holder plays on B, which pulls the
room from A with a relay token (no ticket, no seat, not a viewer); a forged relay token is
refused; the origin's audience samples count the edge's viewer; a refund on A ends the
viewer's session on B, and B lets go of A; a ban issued in A's chat ends the banned
buyer's player on B, and B refuses the player afterwards."""

from __future__ import annotations

import json

import pytest

from signalling.relay_tokens import RelayTokens
from signalling.whip import ROOMS
from stagepass.app import AUDIENCE, NODES, create_app
from tests.support.chat import Chat
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, flushed_redis, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer
from tests.support.server_process import free_port

REDIS_DB = 2  # this file's own database number

pytestmark = [pytest.mark.slow, pytest.mark.inprocess]


@pytest.fixture
async def two_nodes(aiohttp_server, tmp_path, database_url):
    """[(base_url, app)] of nodes A and B; each knows its URL for the registry."""
    nodes = []
    async with flushed_redis(REDIS_DB):
        for name in ("a", "b"):
            port = free_port()
            settings = paywall_settings(tmp_path / name, database_url, redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}",
                                        port=port, node_heartbeat_seconds=0.3)
            app = create_app(settings)
            server = await aiohttp_server(app, port=port)
            nodes.append((str(server.make_url("")).rstrip("/"), app))
        yield nodes


def room(app, name: str = "maths"):
    return app[ROOMS].get(name)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_paid_room_through_an_edge_and_a_refund_there(two_nodes):
    (base_a, app_a), (base_b, app_b) = two_nodes
    creator = await Api.sign_up(base_a, "creator")
    await paid_room(creator, max_devices=1)
    viewer = await Api.sign_up(base_b, "viewer")
    order = await buy(viewer, "maths")
    peers: list = []
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert status == 201, minted
        publisher = Publisher(base_a)
        peers.append(publisher)
        assert await publisher.publish("maths", minted["token"]) == 201
        await wait_for(lambda: room(app_a).live, timeout=15)

        # another deployment's relay token opens nothing
        forged = Viewer(base_a)
        peers.append(forged)
        assert await forged.post("/whep/maths", token=RelayTokens("x" * 40).issue("maths", "node-x")) == 401
        assert not room(app_a).subscribers

        watcher = Viewer(base_b)
        peers.append(watcher)
        assert await watcher.post("/whep/maths", token=await view_token(viewer, "maths")) == 201
        await wait_for(lambda: len(watcher.numbers) >= 15, timeout=20)
        assert room(app_b).origin == app_a[NODES].node_id  # pulled from A
        stats_a, stats_b = room(app_a).stats(), room(app_b).stats()
        assert stats_a["viewers"] == 0 and stats_a["relays"] == 1  # the edge: no ticket, no seat
        assert stats_b["viewers"] == 1 and stats_b["live"]
        # the origin's audience samples (the dashboard) count the edge's viewer, not the relay
        await wait_for(lambda: app_a[AUDIENCE].count(room(app_a)) == 1, timeout=10)

        # a ban in the creator's chat on A ends the banned buyer's player on B; B refuses it again
        banned = Viewer(base_b)
        peers.append(banned)
        rowdy = await Api.sign_up(base_b, "viewer")
        await buy(rowdy, "maths")
        assert await banned.post("/whep/maths", token=await view_token(rowdy, "maths")) == 201
        await wait_for(lambda: room(app_b).viewer_count() == 2, timeout=10)
        moderator = Chat()
        peers.append(moderator)
        assert await moderator.connect(base_a, "maths", minted["token"]), moderator.refused
        assert (await moderator.call("mod:ban", {"user_id": rowdy.user["id"]}))["ok"]
        await wait_for(lambda: room(app_b).viewer_count() == 1, timeout=10)
        again = Viewer(base_b)
        peers.append(again)
        assert await again.post("/whep/maths", token=await view_token(rowdy, "maths")) == 403
        assert json.loads(again.error)["error"]["code"] == "banned"
        count = len(watcher.numbers)
        await wait_for(lambda: len(watcher.numbers) > count + 5, timeout=10)  # the others play on

        # a refund on A ends the session on B; B, without viewers, lets go of A
        status, body = await creator.post(f"/api/orders/{order['id']}/refund")
        assert status == 200 and body["order"]["status"] == "refunded"
        await wait_for(lambda: not room(app_b).subscribers, timeout=10)
        await wait_for(lambda: room(app_b).origin is None and not room(app_a).subscribers, timeout=10)
        assert room(app_a).live  # the creator goes on
    finally:
        for peer in reversed(peers):
            await peer.close()
