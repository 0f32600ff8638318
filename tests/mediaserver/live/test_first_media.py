"""A WHIP publisher that connects but sends no media: its broadcast waits for it
``connect_timeout`` (confirmed the moment its first frame comes), then the publisher is
closed and the broadcast discarded, as for one that never connects."""

from __future__ import annotations

import asyncio

import pytest

from signalling.whip import ROOMS
from tests.support.live_server import KEY, media_server
from tests.support.peers import LatePublisher
from tests.support.waiting import wait_for

pytestmark = pytest.mark.inprocess

TIMEOUT = 2.0


async def test_a_silent_publisher_is_discarded_and_a_late_one_confirmed(aiohttp_server, tmp_path):
    _, base, app = await media_server(aiohttp_server, tmp_path, connect_timeout=TIMEOUT)
    rooms = app[ROOMS]
    ended, confirmed = [], []

    async def on_end(room, broadcast) -> None:
        ended.append(broadcast)

    async def on_confirm(room, broadcast) -> None:
        confirmed.append(broadcast)

    rooms.broadcast_ended.append(on_end)
    rooms.broadcast_confirmed.append(on_confirm)
    silent, late = LatePublisher(base), LatePublisher(base)
    try:
        # connected, never a frame: discarded once connect_timeout has passed
        assert await silent.publish("demo", KEY) == 201
        room = rooms.get("demo")
        opened = room.broadcast
        await wait_for(lambda: silent.pc.connectionState == "connected", timeout=TIMEOUT)
        assert opened is not None and room.phase == "idle" and not room.live
        (discarded,) = await wait_for(lambda: ended, timeout=TIMEOUT + 10)
        assert discarded is opened and discarded.discarded and not discarded.confirmed
        assert room.broadcast is None and room.publisher is None and room.phase == "idle" and confirmed == []
        recordings = tmp_path / "recordings" / "demo"
        assert not recordings.exists() or not any(recordings.iterdir())  # the empty recording is gone

        # connected, its first frame a second later: confirmed then, and it stays past the timeout
        assert await late.publish("demo", KEY) == 201
        opened = room.broadcast
        await wait_for(lambda: late.pc.connectionState == "connected", timeout=TIMEOUT)
        await asyncio.sleep(TIMEOUT / 2)
        assert confirmed == [] and room.phase == "idle"
        late.video.go.set()
        (first,) = await wait_for(lambda: confirmed, timeout=10)
        assert first is opened and room.phase == "live"
        await asyncio.sleep(TIMEOUT)  # past the moment a silent publisher would be closed
        assert room.publisher is not None and not room.publisher.closed and room.live
        assert ended == [discarded] and confirmed == [opened]
    finally:
        await silent.close()
        await late.close()
