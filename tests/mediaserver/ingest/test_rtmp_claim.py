"""Several nodes (``REDIS_URL``): an RTMP encoder accepted on this node claims its room in
the node registry, as a WHIP publisher does. Another node that claims the room between
this node's pre-check (``live_elsewhere``) and its claim wins: the encoder is refused
(ffmpeg exits printing the ``onStatus`` error) and the room has no publisher here, in one process and with
media workers (the connection handed over to a worker, whose publisher is closed)."""

from __future__ import annotations

import pytest

from core.access import StreamKeyAccess
from core.cluster.redis_cluster import RedisCluster
from core.cluster.registry import NodeRegistry
from core.settings import Settings
from signalling.whip import EDGES, ROOMS
from stagepass.app import RTMP, create_app
from tests.support.live_server import KEY
from tests.support.missing_tools import missing_tool
from tests.support.paywall_fixtures import flushed_redis
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, free_port, have_ffmpeg
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REDIS_DB = 3  # this file's own database number
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_encoder_is_refused_when_another_node_claims_the_room_first(aiohttp_server, tmp_path, workers):
    if not have_ffmpeg():
        missing_tool("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    async with flushed_redis(REDIS_DB):
        settings = Settings.build(data_dir=tmp_path, rooms={"demo": KEY}, rtmp_port=free_port(), redis_url=REDIS_URL,
                                  workers=workers, interaction_workers=1, recordings=False)
        settings.validate()
        app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
        await aiohttp_server(app)
        other_cluster = RedisCluster.from_url(REDIS_URL)
        other = NodeRegistry(other_cluster, "other-node")
        edges = app[EDGES]
        checked = edges.origin_elsewhere

        async def other_node_claims_after_the_check(room: str):
            """The pre-check finds no origin; the other node's encoder is accepted right after."""
            origin = await checked(room)
            assert origin is None
            assert await other.claim_room(room)
            return origin

        edges.origin_elsewhere = other_node_claims_after_the_check
        encoder = FfmpegRtmpPublisher(f"rtmp://127.0.0.1:{app[RTMP].port}/live/{KEY}", audio=False)
        try:
            await encoder.start()
            assert await encoder.wait(timeout=20) > 0, encoder.stderr  # refused (not killed at the timeout: -9)
            assert b"went live on another node first" in encoder.stderr  # the onStatus error's description
            room = app[ROOMS].get("demo")
            # no publisher, and the broadcast its publish opened is discarded (no media came)
            # (with workers: not "reconnecting", which would put it on the air and the node's
            # heartbeat would claim it for this node)
            await wait_for(lambda: room is None or (room.publisher is None and room.phase == "idle"), timeout=10)
            # and the node's listeners heard of the discard: the control plane keeps no broadcast
            await wait_for(lambda: room is None or (room.broadcast is None and room.ended_broadcast is None),
                           timeout=10)
            assert app[ROOMS].on_air() == []
            assert await edges.registry.host_of("demo") == "other-node"  # its claim stands
        finally:
            await encoder.kill()
            await other_cluster.close()
