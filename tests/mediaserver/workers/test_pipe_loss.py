"""Loss on the worker pipe only: an aiortc viewer of a relayed room keeps playing near live.

Two real live-path servers in this process stand for two media workers: the origin (the
creator publishes there over WHIP) pipes the room through real unix datagram sockets
(``PipeOut`` -> ``PipeSource``, as ``MediaWorker.op_pipe_out``/``op_pipe_in`` wire them) to
the relay, where an aiortc viewer plays it over WHEP. The pipe drops datagrams in bursts
(the publisher's and the viewer's own links are clean): the relay must notice the gaps on
its upstream itself and have them resent, and give up for a keyframe when they do not come,
so its viewer's frames keep coming, without a long freeze, and end near live."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from typing import Optional

import pytest

from mediaserver.workers import pipe
from mediaserver.workers.pipe import PipeOut, PipeSocket, PipeSource, socket_path
from signalling.whip import ROOMS
from tests.support.frames import frames_grow, in_order, until
from tests.support.live_server import KEY, media_server
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]

CHANNEL = 11
LOSSY_SECONDS = 4.0


class LossyPipe:
    """Drops video RTP datagrams one pipe socket sends, retransmissions included: while
    ``on``, in bursts (a Gilbert-Elliott chain, ``loss`` of them on average, ``burst`` in a
    row on average); with ``lose_one(resends)``, the next packet and then its first
    ``resends`` retransmissions (a loss whose repair is lost too, with nothing lost after it)."""

    def __init__(self, sock: PipeSocket, loss: float, burst: float, seed: int) -> None:
        self.sent = self.dropped = 0
        self._rng = random.Random(seed)
        self._bad = False
        self._leave = 1.0 / burst
        self._enter = self._leave * loss / (1.0 - loss)
        self._send = sock.send
        self._highest = -1
        self._one: Optional[int] = None  # -1: the next packet; then its sequence number
        self._resends = 0
        self.on = False
        sock.send = self.send  # type: ignore[method-assign]

    def lose_one(self, resends: int) -> None:
        self._one, self._resends = -1, resends

    def send(self, path: str, data: bytes) -> bool:
        if data[0] not in (pipe.RTP, pipe.RESENT) or data[1] != 0:  # video media only
            return self._send(path, data)
        seq = int.from_bytes(data[8:10], "big")
        resent = seq <= self._highest
        self._highest = max(self._highest, seq)
        self.sent += 1
        if self.on:
            rng = self._rng
            self._bad = rng.random() >= self._leave if self._bad else rng.random() < self._enter
            lost = self._bad
        elif self._one == -1 and not resent:
            self._one, lost = seq, True
        elif self._one == seq and resent and self._resends > 0:
            self._resends -= 1
            lost = True
        else:
            lost = False
        self.dropped += lost
        return True if lost else self._send(path, data)


async def test_a_viewer_behind_a_lossy_pipe_keeps_playing_near_live(server, aiohttp_server, tmp_path):
    base, origin_app = server
    _, relay_base, relay_app = await media_server(aiohttp_server, tmp_path / "relay")
    publisher, viewer = Publisher(base), Viewer(relay_base)
    sock_a = sock_b = out = None
    try:
        assert await publisher.publish("demo", KEY) == 201
        origin = origin_app[ROOMS].get("demo")
        sock_a = PipeSocket(socket_path(tmp_path, 0), origin.log)
        sock_b = PipeSocket(socket_path(tmp_path, 1), origin.log)
        lossy = LossyPipe(sock_a, loss=0.12, burst=3.0, seed=7)
        out = PipeOut(sock_a, CHANNEL, sock_b.path, origin.fanouts, origin.log)
        out.start()
        relay_room = relay_app[ROOMS].open("demo")
        await relay_room.relay_from("worker 0", functools.partial(
            PipeSource, sock=sock_b, channel=CHANNEL, origin_path=sock_a.path))
        assert await viewer.play("demo") == 201
        await frames_grow(viewer, count=30)

        relayed = relay_room.fanouts["video"]

        async def phase(seconds: float) -> tuple[int, float, int]:
            """Frames played, the longest freeze and how far behind the publisher the viewer
            is (frames) after ``seconds``."""
            begin, played = time.monotonic(), len(viewer.numbers)
            await asyncio.sleep(seconds)
            times = [begin] + [t for t in viewer.frame_times if t >= begin] + [time.monotonic()]
            return (len(viewer.numbers) - played, max(b - a for a, b in zip(times, times[1:])),
                    publisher.video.number - viewer.numbers[-1])

        async def near_live() -> bool:  # within half a second of what the publisher sends
            return publisher.video.number - viewer.numbers[-1] <= 15

        # bursts of loss, retransmissions lost too
        lossy.on = True
        bursts = await phase(LOSSY_SECONDS)
        lossy.on = False
        dropped = lossy.dropped
        # one packet lost, then its first retransmission, and nothing after it
        lossy.lose_one(resends=1)
        repaired = await phase(1.5)
        # one packet lost with every retransmission: the relay gives up and asks for a keyframe
        keyframes_before = relayed.stats.lost_keyframes
        lossy.lose_one(resends=1000)
        given_up = await phase(2.5)
        print(f"pipe loss: {dropped}/{lossy.sent} video datagrams dropped in bursts; "
              f"(frames played, longest freeze s, frames behind) bursts {bursts}, repair lost once {repaired}, "
              f"lost for good {given_up}; {out.resent} resent, {relayed.stats.lost_keyframes} keyframes asked "
              f"for packets lost for good, {viewer.losses.keyframe_requests} by the viewer")
        assert dropped >= 10
        for frames, freeze, behind in (bursts, repaired):
            assert freeze < 1.5 and behind <= 15, (bursts, repaired)
        frames, freeze, behind = given_up
        assert relayed.stats.lost_keyframes > keyframes_before
        assert freeze < 2.5 and frames >= 30, given_up
        await until(near_live, timeout=3.0, what="the viewer back near live")
        assert in_order(viewer.numbers), viewer.numbers
    finally:
        for peer in (publisher, viewer):
            await peer.close()
        if out is not None:
            await out.close()
        for sock in (sock_a, sock_b):
            if sock is not None:
                sock.close()
