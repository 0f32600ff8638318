"""``SenderPort``: first sends and retransmissions leave by one way (``_emit``): on the UDP
mux both are SRTP-protected into its ``sendmmsg`` batch, off it both go to the ICE pair's
``sendto``; only first sends move the sender report's counters. A real aiortc sender with
SRTP keys set by hand, a ``BatchedSender`` whose send strategy records what it was given."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import State as DtlsState
from pylibsrtp import Policy, Session

from mediaserver.sfu.aiortc_bridge import IdleTrack, SenderPort
from mediaserver.sfu.batched_send import BatchedSender
from mediaserver.sfu.rtp_payloads import RTP_HEADER

pytestmark = pytest.mark.unit

KEY = bytes(range(30))
VIEWER = ("127.0.0.1", 40000)


def srtp(direction: int) -> Session:
    return Session(Policy(key=KEY, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))


def rtp(seq: int, size: int = 300, pt: int = 96, ssrc: int = 1234) -> bytes:
    return bytes([0x80, pt]) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big") + bytes([seq % 256]) * size


def media(seq: int) -> tuple[tuple[int, int, int, int, int], bytes]:
    """``rtp(seq)`` as the fanout hands it to ``send``: its fixed header's fields, the rest."""
    packet = rtp(seq)
    return RTP_HEADER.unpack_from(packet), packet[12:]


def rtx(seq: int) -> bytes:
    """An RTX packet (RFC 4588) carrying media packet ``seq``: what a NACK is answered with."""
    return rtp(900 + seq, pt=97, ssrc=5678)


#: what a ``BatchedSender`` reads of its socket before it must wait for one to drain
SOCKET = type("Socket", (), {"family": socket.AF_INET})()


class Recorded:
    """A batch send strategy that keeps every datagram it is given (all taken)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []
        self.calls = 0

    def __call__(self, sender: BatchedSender, start: int, count: int) -> int:
        self.calls += 1
        self.sent += [(sender.datagram(i), sender.addrs[i]) for i in range(start, start + count)]
        return count


class _NoOwnSendto:
    """``protocol.transport`` of a mux connection: its sendto is the mux's, not its own."""


class _Mux:
    def __init__(self, sender: BatchedSender) -> None:
        self.sender = sender


class _Pair:
    def __init__(self, protocol: object) -> None:
        self.protocol = protocol
        self.remote_addr = VIEWER


class _Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []
        self.buffered = 0

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append((data, addr))

    def get_write_buffer_size(self) -> int:
        return self.buffered


async def connected_port(pair: _Pair) -> tuple[SenderPort, RTCPeerConnection]:
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(IdleTrack("video"), direction="sendonly").sender
    port = SenderPort(sender, lambda lost: None, lambda: None)
    dtls = sender.transport
    dtls._state = DtlsState.CONNECTED
    dtls._tx_srtp = session = srtp(Policy.SSRC_ANY_OUTBOUND)
    protect = session.protect

    def counted_protect(packet: bytes) -> bytes:  # the protect that makes a Python bytes
        port.python_protects += 1
        return protect(packet)

    session.protect = counted_protect
    port.python_protects = 0
    dtls.transport._connection._nominated[1] = pair
    return port, pc


async def test_on_the_mux_a_retransmission_joins_the_batch_with_the_first_sends():
    strategy = Recorded()
    batch = BatchedSender(SOCKET, strategy)
    protocol = type("MuxProtocol", (), {})()
    protocol.mux, protocol.transport = _Mux(batch), _NoOwnSendto()
    port, pc = await connected_port(_Pair(protocol))
    try:
        assert port.send(*media(1), 300, ntp_time=111, rtp_timestamp=222)
        assert port.send(*media(2), 300, ntp_time=333, rtp_timestamp=444)
        assert port.retransmit(rtx(1))  # a NACK answered in the same loop turn
        assert strategy.sent == [] and batch.count == 3  # all three wait in the batch
        await asyncio.sleep(0)
        assert strategy.calls == 1  # one sendmmsg for the three
        rx = srtp(Policy.SSRC_ANY_INBOUND)
        assert [rx.unprotect(d) for d, _ in strategy.sent] == [rtp(1), rtp(2), rtx(1)]
        assert all(addr == VIEWER for _, addr in strategy.sent)
        assert (port.sent_packets, port.retransmitted_packets, port.octets_sent) == (2, 1, 600)
        assert port.python_protects == 0  # both protected by libsrtp in place in the batch

        # the batch backed up past the viewer's limit: both kinds are refused, nothing counted
        batch.blocked, batch.backlog_bytes = True, port.buffer_limit + 1
        assert not port.send(*media(3), 300, 555, 666) and not port.retransmit(rtx(2))
        assert batch.count == 0 and (port.sent_packets, port.retransmitted_packets) == (2, 1)
        batch.blocked, batch.backlog_bytes = False, 0
    finally:
        await pc.close()


async def test_off_the_mux_both_go_to_the_ice_pairs_sendto():
    transport = _Transport()
    protocol = StunProtocol(receiver=None)
    protocol.transport = transport
    port, pc = await connected_port(_Pair(protocol))
    try:
        assert port.send(*media(7), 300, 1, 2) and port.retransmit(rtx(7))
        rx = srtp(Policy.SSRC_ANY_INBOUND)
        assert [rx.unprotect(d) for d, _ in transport.sent] == [rtp(7), rtx(7)]
        assert all(addr == VIEWER for _, addr in transport.sent)
        assert (port.sent_packets, port.retransmitted_packets) == (1, 1) and port.python_protects == 2
        transport.buffered = port.buffer_limit + 1  # the viewer's socket backed up
        assert not port.send(*media(8), 300, 1, 2) and not port.retransmit(rtx(8))
        assert len(transport.sent) == 2
    finally:
        await pc.close()
