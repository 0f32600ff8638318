"""Several nodes (``REDIS_URL``): an RTMP encoder accepted on a node claims its room in the
node registry, as a WHIP publisher does. Two nodes share Redis; an encoder publishes to
the second node and, between that node's pre-check (``live_elsewhere``: nothing live
elsewhere yet) and its claim, the first node's encoder goes live in the same room. The
second node's encoder is refused with the error status and is never told
``NetStream.Publish.Start`` (which OBS shows as "live"), in one process and with media
workers (the connection handed over to a worker, which asks the control plane to claim
before it answers); the second node keeps no publisher and no broadcast, and the first
node's class goes on."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from core.access import StreamKeyAccess
from core.settings import Settings
from signalling.whip import EDGES, ROOMS
from stagepass.app import RTMP, create_app
from tests.support.frames import in_order
from tests.support.live_server import KEY
from tests.support.missing_tools import missing_tool
from tests.support.paywall_fixtures import flushed_redis
from tests.support.peers import Viewer
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, free_port, have_ffmpeg
from tests.support.rtmp_tap import RtmpTap
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REDIS_DB = 3  # this file's own database number
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
LATE = 50_000  # the refused encoder's first frame number


def node(data_dir: Path, workers: int):
    settings = Settings.build(data_dir=data_dir, rooms={"demo": KEY}, rtmp_port=free_port(), redis_url=REDIS_URL,
                              workers=workers, interaction_workers=1, recordings=False)
    settings.validate()
    return create_app(settings, access=StreamKeyAccess(settings.stream_keys()))


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_encoder_that_loses_the_room_to_another_node_is_refused_before_publish_start(
        aiohttp_server, tmp_path, workers):
    if not have_ffmpeg():
        missing_tool("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    async with flushed_redis(REDIS_DB):
        first_node, second_node = node(tmp_path / "first", 1), node(tmp_path / "second", workers)
        first_base = str((await aiohttp_server(first_node)).make_url("")).rstrip("/")
        await aiohttp_server(second_node)
        first = FfmpegRtmpPublisher(f"rtmp://127.0.0.1:{first_node[RTMP].port}/live/{KEY}", audio=False)
        edges = second_node[EDGES]
        checked = edges.origin_elsewhere
        on_air: dict[str, str] = {}

        async def the_first_class_goes_live_right_after_the_check(room: str):
            """The second node's pre-check finds no origin; the first node's encoder is
            live (its node the room's origin) before the second node claims."""
            origin = await checked(room)
            assert origin is None
            await first.start()
            live = await wait_for(lambda: (r := first_node[ROOMS].get(room)) is not None and r.live and r, timeout=20)
            await wait_for(lambda: live.publisher is not None, timeout=5)
            on_air.update(publisher=live.publisher.id, broadcast=live.broadcast.id)
            assert await edges.registry.host_of(room) == first_node[EDGES].node_id
            return origin

        edges.origin_elsewhere = the_first_class_goes_live_right_after_the_check
        tap = RtmpTap(second_node[RTMP].port)
        late = FfmpegRtmpPublisher(f"rtmp://127.0.0.1:{await tap.start()}/live/{KEY}", audio=False, start=LATE)
        viewer = Viewer(first_base, audio=False)
        try:
            await late.start()
            assert await late.wait(timeout=40) > 0, late.stderr  # refused (not killed at the timeout: -9)
            assert b"went live on another node first" in late.stderr  # the onStatus error's description
            # the only answer to its publish: never Publish.Start, which encoders take for "live"
            await wait_for(lambda: tap.statuses, timeout=5)
            assert tap.statuses == ["NetStream.Publish.BadName"], tap.statuses
            room = second_node[ROOMS].get("demo")
            # no publisher, and the broadcast its publish opened is discarded (no media came)
            # (with workers: not "reconnecting", which would put it on the air and the node's
            # heartbeat would claim it for this node)
            await wait_for(lambda: room is None or (room.publisher is None and room.phase == "idle"), timeout=10)
            # and the node's listeners heard of the discard: the control plane keeps no broadcast
            await wait_for(lambda: room is None or (room.broadcast is None and room.ended_broadcast is None),
                           timeout=10)
            assert second_node[ROOMS].on_air() == []
            # the first class goes on: its node holds the room, its encoder and broadcast stay,
            # and a viewer there sees its frames (none of the refused encoder's)
            assert await edges.registry.host_of("demo") == first_node[EDGES].node_id
            live = first_node[ROOMS].get("demo")
            assert live.live and (live.publisher.id, live.broadcast.id) == (on_air["publisher"], on_air["broadcast"])
            assert first.proc is not None and first.proc.returncode is None
            assert await viewer.play("demo") == 201
            await wait_for(lambda: len(viewer.numbers) >= 30, timeout=20)
            assert in_order(viewer.numbers) and viewer.numbers[-1] < LATE, viewer.numbers
        finally:
            await viewer.close()
            await late.kill()
            await first.kill()
            await tap.close()


async def test_an_encoder_handed_to_a_worker_holds_its_claim_until_it_leaves_or_its_worker_dies(
        aiohttp_server, tmp_path):
    """The claim a media worker asked for before ``Publish.Start`` is the node's while the
    encoder publishes, and is let go of when the encoder stops or its worker dies."""
    if not have_ffmpeg():
        missing_tool("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    async with flushed_redis(REDIS_DB):
        app = node(tmp_path, 2)
        await aiohttp_server(app)
        registry, rooms = app[EDGES].registry, app[ROOMS]
        tap = RtmpTap(app[RTMP].port)
        url = f"rtmp://127.0.0.1:{await tap.start()}/live/{KEY}"
        encoders: list[FfmpegRtmpPublisher] = []

        async def publish() -> FfmpegRtmpPublisher:
            encoders.append(FfmpegRtmpPublisher(url, audio=False))
            await encoders[-1].start()
            await wait_for(lambda: (r := rooms.get("demo")) is not None and r.live, timeout=20)
            assert await registry.host_of("demo") == registry.node_id
            return encoders[-1]

        async def released() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while await registry.host_of("demo") is not None:
                assert loop.time() < deadline, "the claim was not released"
                await asyncio.sleep(0.05)

        try:
            encoder = await publish()
            assert tap.statuses == ["NetStream.Publish.Start"], tap.statuses
            assert await encoder.stop() == 0, encoder.stderr  # "stop streaming": the broadcast ends
            await released()

            encoder = await publish()
            host = rooms.get("demo").host
            os.kill(rooms.pool.workers[host].pid, signal.SIGKILL)  # the encoder's connection dies with it
            assert await encoder.wait(timeout=15) > 0
            await released()
            assert tap.statuses == ["NetStream.Publish.Start"] * 2, tap.statuses
        finally:
            for each in encoders:
                await each.kill()
            await tap.close()
