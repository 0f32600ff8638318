"""Loss between an origin node and an edge only: an aiortc viewer on the edge keeps playing near
live. Two real live-path servers in this process: the creator publishes on the origin, the edge
pulls the room from it over WHEP (``Room.pull``, as ``Edges`` does), a viewer plays on the edge.
The edge's downlink from the origin loses packets in bursts (the publisher's and the viewer's
links are clean): the edge NACKs them up, the origin answers what the edge's viewers can still
use, and what is lost for good (a packet whose every retransmission is lost too) restarts
them on a keyframe, so the viewer's frames keep coming, without a long freeze, and end near
live."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from signalling.whip import ROOMS
from tests.support.frames import frames_grow, in_order, until
from tests.support.live_server import KEY, media_server
from tests.support.netshim import Impairment, Link, rtx_ssrcs
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]

LOSSY_SECONDS = 5.0


async def test_a_viewer_behind_a_lossy_edge_pull_keeps_playing_near_live(server, aiohttp_server, tmp_path):
    base, origin_app = server
    _, edge_base, edge_app = await media_server(aiohttp_server, tmp_path / "edge")
    publisher, viewer = Publisher(base), Viewer(edge_base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        locations: list[str] = []
        answers: list[str] = []
        async with aiohttp.ClientSession() as http:

            async def exchange(offer: str) -> str:
                async with http.post(base + "/whep/demo", data=offer,
                                     headers={"Content-Type": "application/sdp"}) as r:
                    assert r.status == 201, await r.text()
                    locations.append(r.headers["Location"])
                    answers.append(await r.text())
                    return answers[-1]

            room = edge_app[ROOMS].open("demo")
            source = await room.pull("origin-node", exchange)
            # what the origin does for a pull that shows a relay token (signalling.whip)
            origin_app[ROOMS].get("demo").subscribers[locations[0].rsplit("/", 1)[1]].relay = True
            assert await viewer.play("demo") == 201
            await frames_grow(viewer, count=30)

            link = Link(source.pc, "in", Impairment(loss=0.15, burst=4.0, seed=3))
            begin, played = time.monotonic(), len(viewer.numbers)
            await asyncio.sleep(LOSSY_SECONDS)
            link.impairment.loss = 0.0
            await asyncio.sleep(0.5)
            times = [begin] + [t for t in viewer.frame_times if t >= begin] + [time.monotonic()]
            freeze = max(b - a for a, b in zip(times, times[1:]))
            frames, behind = len(viewer.numbers) - played, publisher.video.number - viewer.numbers[-1]
            fanout = room.fanouts["video"]
            print(f"edge loss: {link.impairment.dropped}/{link.impairment.seen} datagrams dropped; {frames} frames "
                  f"in {LOSSY_SECONDS + 0.5:.1f} s, longest freeze {freeze:.2f} s, {behind} frames behind; "
                  f"{fanout.stats.as_dict().get('lost_keyframes')} keyframes asked for packets lost for good, "
                  f"{viewer.losses.keyframe_requests} by the viewer")

            async def near_live() -> bool:  # within half a second of what the publisher sends
                return publisher.video.number - viewer.numbers[-1] <= 15

            assert link.impairment.dropped >= 10
            assert freeze < 1.5 and frames >= (LOSSY_SECONDS + 0.5) * 30 * 0.6, (freeze, frames)
            await until(near_live, timeout=3.0, what="the viewer back near live")

            # one video packet lost with every retransmission for a second, nothing else:
            # the edge gives up on it and its viewer restarts on a keyframe, at live
            [(video_ssrc, rtx_ssrc)] = rtx_ssrcs(answers[0]).items()
            lost: list[int] = []

            def one_for_good(data: bytes) -> bool:
                ssrc = int.from_bytes(data[8:12], "big")
                if not lost and ssrc == video_ssrc and not 192 <= data[1] <= 223:
                    lost.append(time.monotonic())
                    return True
                return bool(lost) and ssrc == rtx_ssrc and time.monotonic() - lost[0] < 1.5

            asked = fanout.stats.lost_keyframes
            link.drop_if = one_for_good
            begin, played = time.monotonic(), len(viewer.numbers)
            await asyncio.sleep(3.0)
            times = [begin] + [t for t in viewer.frame_times if t >= begin] + [time.monotonic()]
            freeze = max(b - a for a, b in zip(times, times[1:]))
            frames, behind = len(viewer.numbers) - played, publisher.video.number - viewer.numbers[-1]
            print(f"edge: one packet lost for good: {frames} frames in 3 s, longest freeze {freeze:.2f} s, "
                  f"{behind} frames behind, {fanout.stats.lost_keyframes - asked} keyframes asked for it")
            assert lost and fanout.stats.lost_keyframes > asked
            assert freeze < 2.5 and frames >= 30, (freeze, frames)
            await until(near_live, timeout=3.0, what="the viewer back near live")
            assert in_order(viewer.numbers), viewer.numbers
            link.remove()
    finally:
        for peer in (publisher, viewer):
            await peer.close()
