"""A real ``Subscriber`` negotiated with an aiortc viewer's video offer, on a given fanout,
for tests that drive its ports by hand (RTCP handed to them as it would arrive)."""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

from aiortc import RTCPeerConnection

from core.tasks import TaskOwner
from mediaserver.live.subscriber import Subscriber
from mediaserver.sfu.fanout import Fanout

__all__ = ["negotiated_subscriber"]


@contextlib.asynccontextmanager
async def negotiated_subscriber(fanout: Fanout) -> AsyncIterator[Subscriber]:
    """The subscriber, started from a recv-only video offer (the viewer never connects)."""
    viewer = RTCPeerConnection()
    viewer.addTransceiver("video", direction="recvonly")
    await viewer.setLocalDescription(await viewer.createOffer())

    async def closed(session) -> None:
        pass

    room_tasks = TaskOwner(logging.getLogger("test.negotiated_subscriber"))
    subscriber = Subscriber("room", [], 30.0, closed, room_tasks, buffer_limit=1 << 18)
    await subscriber.start(viewer.localDescription.sdp, ["video"], {"video": fanout})
    try:
        yield subscriber
    finally:
        await subscriber.close()
        await room_tasks.close()
        await viewer.close()
