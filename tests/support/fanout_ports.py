"""Recording ports instead of sockets, for the packet engine's tests: a ``Fanout`` on a
task owner, RTP packets and VP8 payloads, and a port that keeps what it is sent."""

import logging

import pytest
from aiortc.rtp import RtpPacket

from core.logs import context_logger
from core.tasks import TaskOwner
from mediaserver.sfu.aiortc_bridge import ABS_SEND_TIME_URI, MID_URI, NegotiatedStream
from mediaserver.sfu.fanout import Fanout
from mediaserver.sfu.rtp_payloads import RTP_HEADER

VP8_KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])  # S=1 PID=0, P=0: keyframe start
VP8_DELTA = bytes([0x10, 0x01, 0x00, 0x00])  # S=1 PID=0, P=1
VP8_CONT = bytes([0x00, 0xAA, 0xBB])  # continuation


class FakePort:
    def __init__(self, ssrc=1111, rtx_ssrc=2222):
        self.ssrc, self.rtx_ssrc = ssrc, rtx_ssrc
        self.sent: list[RtpPacket] = []
        self.raw: list[bytes] = []
        self.is_ready = True
        self.blocked = False
        self.rtt = None
        self.rtt_var = 0.0
        self.jitter = 0
        self.sr: list[tuple[int, int]] = []  # the (ntp, rtp) pair given with each send

    def ready(self):
        return self.is_ready

    def send(self, header, tail, payload_size, ntp, ts):
        if self.blocked:
            return False
        data = RTP_HEADER.pack(*header) + tail
        self.raw.append(data)
        self.sent.append(RtpPacket.parse(data))
        self.sr.append((ntp, ts))
        return True

    def retransmit(self, data):
        if self.blocked:
            return False
        self.raw.append(data)
        self.sent.append(RtpPacket.parse(data))
        return True

    def close(self):
        pass


def stream(pt=100, rtx=101, extensions=True):
    return NegotiatedStream(
        mid="0",
        payload_types={"VP8": pt},
        rtx_payload_types={pt: rtx} if rtx else {},
        clock_rates={"VP8": 90000},
        header_extensions={MID_URI: 1, ABS_SEND_TIME_URI: 3} if extensions else {},
    )


def packet(seq, ts, payload, marker=0, pt=96):
    p = RtpPacket(payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=42)
    p.payload, p.marker = payload, marker
    return p


@pytest.fixture
async def fanout():
    """A video fanout with one source (import it into a test module to use it)."""
    tasks = TaskOwner(logging.getLogger("test"))
    f = Fanout("video", tasks, context_logger("test", "room"))
    f.attach_source(None)
    yield f
    await tasks.close()


def feed(f, start_seq, frames, ts0=1000):
    """frames: list of 'K' (keyframe, 2 packets) or 'D' (delta, 2 packets)."""
    seq, ts = start_seq, ts0
    for kind in frames:
        first = VP8_KEY if kind == "K" else VP8_DELTA
        f.on_packet(packet(seq, ts, first), "VP8", 0.0)
        f.on_packet(packet(seq + 1, ts, VP8_CONT, marker=1), "VP8", 0.0)
        seq, ts = seq + 2, ts + 3000
    return seq, ts
