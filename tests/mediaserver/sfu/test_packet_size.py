"""Publisher packets up to the 1,500-byte Ethernet limit reach a real viewer over SRTP.

GStreamer's payloaders default to a 1,400-byte MTU; aiortc's SRTP sessions refused any
RTP packet over 1,356 bytes ("packet is too long"), and the error escaped the fanout and
ended the publisher's session. Here the packets go into a real room's fanout as a
publisher's would, and a real aiortc viewer's transport reads them back, RTX included.
"""

from __future__ import annotations

import asyncio

from aiortc.rtp import RtpPacket

from mediaserver.sfu.aiortc_bridge import ReceiverTap, enlarge_srtp_buffers
from signalling.whip import ROOMS
from tests.support.waiting import wait_for
from tests.support.peers import Viewer
import pytest

pytestmark = pytest.mark.inprocess

VP8_KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])  # S=1 PID=0, P=0: a keyframe starts
VP8_CONT = bytes([0x00])


def publisher_packet(seq: int, ts: int, head: bytes, size: int, marker: int = 0) -> RtpPacket:
    """A publisher's RTP packet of ``size`` bytes in all (12-byte header, no extensions)."""
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, ssrc=4242, marker=marker)
    p.payload = head + bytes(range(256)) * 12
    p.payload = p.payload[: size - 12]
    assert len(p.serialize()) == size
    return p


async def test_packets_up_to_1500_bytes_reach_the_viewer_and_an_oversized_one_costs_only_itself(server):
    base, app = server
    room = app[ROOMS].open("demo")
    fanout = room.fanouts["video"]
    fanout.attach_source(None)  # a publisher that never asks for keyframes
    viewer = Viewer(base, audio=False)
    got: list[RtpPacket] = []
    # the test's viewer reads packets before aiortc depayloads them (and takes packets as
    # large as the server may now send: it is the server's sending side under test)
    ReceiverTap(viewer.pc.getTransceivers()[0].receiver, lambda p, codec, t: got.append(p))
    try:
        assert await viewer.play("demo") == 201, viewer.error
        subscriber = next(iter(room.subscribers.values()))
        _, downstream = subscriber._downstreams["video"]
        await wait_for(lambda: downstream.port.ready() and viewer.pc.connectionState == "connected")
        enlarge_srtp_buffers(viewer.pc)

        sizes = [1400, 1500, 1500, 3000, 1500, 1200]  # 3,000: beyond what anyone forwards
        for i, size in enumerate(sizes):
            head = VP8_KEY if i == 0 else VP8_CONT
            fanout.on_packet(publisher_packet(100 + i, 9000, head, size, marker=int(i == 5)), "VP8", 0.0)
        await wait_for(lambda: len(got) >= 5, timeout=5)
        assert [len(p.payload) + 12 for p in got] == [1400, 1500, 1500, 1500, 1200]
        assert [p.payload[:5] for p in got[:1]] == [VP8_KEY]
        assert downstream.send_errors >= 1 and fanout.stats.send_errors >= 1  # (and its NACKed resends)
        assert not downstream.waiting  # the lost packet did not send it back to the keyframe gate

        # the viewer NACKs the second 1,500-byte packet: it comes again, as RTX (+2 bytes)
        lost = got[2].sequence_number
        fanout.on_nack(downstream, [lost])
        await wait_for(lambda: len(got) >= 6, timeout=5)
        assert got[5].sequence_number == lost and got[5].payload == got[2].payload
        assert downstream.retransmitted == 1

        # the session goes on
        fanout.on_packet(publisher_packet(106, 12000, VP8_CONT, 1500, marker=1), "VP8", 0.0)
        await wait_for(lambda: len(got) >= 7, timeout=5)
        await asyncio.sleep(0.2)
        assert not subscriber.closed and subscriber.state == "connected"
    finally:
        await viewer.close()
