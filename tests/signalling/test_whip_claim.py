"""Several nodes (``REDIS_URL``): a WHIP publisher accepted on this node claims its room in
the node registry. Another node that claims the room between this node's pre-check and its
claim wins (409 ``live_elsewhere``); a registry that stops answering in that moment gives
503 ``unavailable``, not a server error. Either way the publisher is ended here: the room
has no publisher and nothing is on the air."""

from __future__ import annotations

import pytest

from core.cluster.redis_cluster import RedisCluster
from core.cluster.registry import NodeRegistry
from signalling.whip import EDGES, ROOMS
from tests.support.live_server import KEY, media_server
from tests.support.paywall_fixtures import flushed_redis
from tests.support.peers import Publisher
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.inprocess

REDIS_DB = 1  # this file's own database number


@pytest.mark.parametrize("between", ["another node claims", "the registry goes down"])
async def test_a_publisher_that_loses_the_claim_is_refused_and_ended(aiohttp_server, tmp_path, between):
    async with flushed_redis(REDIS_DB):
        proxy = await TcpProxy("127.0.0.1", 6379).start()
        other_cluster = RedisCluster.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
        other = NodeRegistry(other_cluster, "other-node")
        _, base, app = await media_server(aiohttp_server, tmp_path,
                                          redis_url=f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}")
        edges = app[EDGES]
        checked = edges.origin_elsewhere

        async def then_it_happens(room: str):
            """The pre-check finds no origin; then the other node claims, or Redis goes away."""
            origin = await checked(room)
            assert origin is None
            if between == "another node claims":
                assert await other.claim_room(room)
            else:
                await proxy.close()
            return origin

        edges.origin_elsewhere = then_it_happens
        publisher = Publisher(base)
        try:
            status = await publisher.publish("demo", KEY)
            assert status == (409 if between == "another node claims" else 503)
            room = app[ROOMS].get("demo")
            await wait_for(lambda: room is None or (room.publisher is None and room.phase == "idle"), timeout=10)
            assert app[ROOMS].on_air() == []
            if between == "another node claims":
                assert await other.host_of("demo") == "other-node"  # its claim stands
        finally:
            await publisher.close()
            await other_cluster.close()
            await proxy.close()
