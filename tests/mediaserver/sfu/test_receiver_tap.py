"""``ReceiverTap``'s first packet: reported once, by a check that then leaves the path."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from mediaserver.sfu.aiortc_bridge import ReceiverTap

pytestmark = pytest.mark.inprocess


def rtp(seq: int, payload_type: int = 96) -> RtpPacket:
    return RtpPacket(payload_type=payload_type, sequence_number=seq, timestamp=seq * 3000, ssrc=7, payload=b"x" * 100)


async def test_the_first_packet_that_counts_is_reported_once_then_the_check_is_swapped_out():
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    receiver._RTCRtpReceiver__codecs = {96: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)}
    forwarded: list[int] = []
    firsts: list[float] = []
    tap = ReceiverTap(receiver, lambda packet, codec, arrival: forwarded.append(packet.sequence_number), firsts.append)
    try:
        assert receiver._handle_rtp_packet == tap._handle_first_rtp_packet
        await receiver._handle_rtp_packet(rtp(1, payload_type=111), 0)  # not negotiated: does not count
        receiver._enabled = False
        await receiver._handle_rtp_packet(rtp(2), 0)  # a disabled receiver's: neither
        receiver._enabled = True
        assert firsts == [] and forwarded == [] and tap.last_arrival is None
        await receiver._handle_rtp_packet(rtp(3), 0)
        assert forwarded == [3] and firsts == [tap.last_arrival]
        # from the second packet on, aiortc calls the plain path: no first-packet check left
        assert receiver._handle_rtp_packet == tap._handle_rtp_packet
        for seq in (4, 5):
            await receiver._handle_rtp_packet(rtp(seq), 0)
        assert forwarded == [3, 4, 5] and len(firsts) == 1
        # without a handler, the plain path from the start
        other = pc.addTransceiver("video", direction="recvonly").receiver
        plain = ReceiverTap(other, lambda *a: None)
        assert other._handle_rtp_packet == plain._handle_rtp_packet
    finally:
        await pc.close()
