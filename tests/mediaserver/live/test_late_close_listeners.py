"""A close listener registered after a room's session closed (a seat taken while the peer
hung up) runs as a task of the room, so the room's close cancels and awaits it, whatever
the session: a WebRTC viewer, an RTMP encoder, a relay from another media worker."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable

import pytest
from aiortc import RTCPeerConnection

from core.settings import Settings
from mediaserver.ingest.rtmp_publisher import RtmpPublisher
from mediaserver.live.room import Room
from mediaserver.workers.pipe import PipeSocket, PipeSource, socket_path

pytestmark = pytest.mark.unit


async def viewer(room: Room, tmp_path, cleanups: list) -> Any:
    peer = RTCPeerConnection()
    peer.addTransceiver("video", direction="recvonly")
    await peer.setLocalDescription(await peer.createOffer())
    try:
        subscriber, _ = await room.subscribe(peer.localDescription.sdp, ["video"])
    finally:
        await peer.close()
    return subscriber


async def encoder(room: Room, tmp_path, cleanups: list) -> Any:
    return await room.publish_ingest(functools.partial(
        RtmpPublisher, disconnect=lambda: None, peer="127.0.0.1:1935"))


async def relay(room: Room, tmp_path, cleanups: list) -> Any:
    sock = PipeSocket(socket_path(tmp_path, 1), room.log)
    cleanups.append(sock.close)
    return await room.relay_from("worker 0", functools.partial(
        PipeSource, sock=sock, channel=7, origin_path=socket_path(tmp_path, 0)))


@pytest.mark.parametrize("make", [viewer, encoder, relay], ids=["viewer", "rtmp", "relay"])
async def test_a_late_close_listener_is_a_task_of_the_room(
        make: Callable[[Room, Any, list], Awaitable[Any]], tmp_path):
    room, cleanups = Room("r", Settings.build(data_dir=tmp_path, recordings=False)), []
    session = await make(room, tmp_path, cleanups)
    await session.close()
    started, ended = asyncio.Event(), asyncio.Event()

    async def release_seat() -> None:  # still busy when the room closes
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    session.on_close(release_seat)
    await asyncio.wait_for(started.wait(), 2)
    await room.close()
    assert ended.is_set() and len(room.tasks) == 0  # cancelled and awaited with the room
    for cleanup in cleanups:
        cleanup()
