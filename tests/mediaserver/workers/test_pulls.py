"""An edge pull in a media worker, driven as ``Edges`` drives it (``WorkerRoom.pull``), on a
live-path server with two real worker processes, from a real one-process origin answering
WHEP: the worker's offer crosses to the control plane and back, the pull runs in one worker
(the room's host) and a second pull while it is live makes no new exchange; viewers on
both workers play; the host's own viewer leaving keeps the pull for the piped one, and the
last viewer leaving ends it in its worker and tells its listeners. A failing exchange
raises its own error, unchanged, through the worker; an answer that cannot be applied is
``NegotiationFailed``; neither leaves anything behind."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from mediaserver.live.errors import NegotiationFailed
from mediaserver.workers.remote import WorkerRooms
from signalling.whip import ROOMS
from tests.support.frames import frames_grow, in_order
from tests.support.live_server import KEY, media_server, media_settings
from tests.support.peers import Publisher, Viewer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]


class OriginRefused(Exception):
    pass


@pytest.fixture
async def worker_rooms(tmp_path):
    rooms = WorkerRooms(media_settings(tmp_path / "edge", workers=2), 2)
    await rooms.start()
    yield rooms
    await rooms.close()


async def test_a_failed_pull_raises_its_own_error_and_leaves_nothing(worker_rooms):
    room = worker_rooms.open("demo")
    refused = OriginRefused("origin node-x answered 403")
    offers: list[str] = []

    async def refusing(offer: str) -> str:
        offers.append(offer)
        raise refused

    with pytest.raises(OriginRefused) as raised:
        await room.pull("node-x", refusing)
    assert raised.value is refused
    assert offers and offers[0].startswith("v=0") and "a=recvonly" in offers[0]  # the worker's offer

    async def nonsense(offer: str) -> str:
        return "v=0\r\nnot an answer\r\n"

    with pytest.raises(NegotiationFailed):
        await room.pull("node-x", nonsense)
    assert room.edge is None and room.host is None and room.origin is None and not room.live
    assert len(worker_rooms.pulls.exchanges) == 0  # every exchange forgotten


async def test_a_pull_serves_every_worker_until_the_last_viewer_leaves(server, aiohttp_server, tmp_path):
    base, _ = server  # the origin: one process, the creator publishing
    _, edge_base, edge_app = await media_server(aiohttp_server, tmp_path / "edge", workers=2)
    rooms = edge_app[ROOMS]
    publisher = Publisher(base)
    viewers = [Viewer(edge_base), Viewer(edge_base)]
    exchanges: list[str] = []
    try:
        assert await publisher.publish("demo", KEY) == 201
        async with aiohttp.ClientSession() as http:

            async def exchange(offer: str) -> str:
                exchanges.append(offer)
                async with http.post(base + "/whep/demo", data=offer,
                                     headers={"Content-Type": "application/sdp"}) as r:
                    assert r.status == 201, await r.text()
                    return await r.text()

            room = rooms.open("demo")
            handle = await room.pull("origin-node", exchange)
            assert room.edge is handle and room.host == handle.worker and room.origin == "origin-node"
            await wait_for(lambda: room.live, timeout=15)  # the worker's snapshot: its edge source is live
            assert room.phase == "live"
            assert await room.pull("origin-node", exchange) is handle and len(exchanges) == 1  # no second pull

            for viewer in viewers:  # the pull counts as its worker's load: one viewer on each worker
                assert await viewer.play("demo") == 201
            on_host, piped = sorted(viewers, key=lambda v: room.subscribers[v.location.rsplit("/", 1)[1]].worker
                                    != room.host)
            assert room.viewers_on(room.host) == 1 and room.viewer_count() == 2
            seen = await asyncio.gather(*(frames_grow(v) for v in viewers))
            assert all(in_order(s) for s in seen), seen

            ended: list[str] = []

            async def left() -> None:
                ended.append(handle.source)

            handle.on_close(left)
            # the host worker's own viewer leaves: the pull stays for the piped one
            assert await on_host.delete() == 200
            still = await frames_grow(piped, count=40)
            assert in_order(still) and room.edge is handle and not ended and len(exchanges) == 1

            # the node's last viewer leaves: the pull ends in its worker, its listeners are told
            assert await piped.delete() == 200
            await wait_for(lambda: ended == [handle.source], timeout=10)
            assert room.edge is None and room.host is None and room.origin is None
            await wait_for(lambda: not room.live, timeout=5)
    finally:
        for peer in [publisher, *viewers]:
            await peer.close()
