"""A viewer's RTCP as a ``SenderPort`` sees it, for the round-trip tests: the sender report
aiortc's RTCP loop sends (``__lsr`` and ``__lsr_time`` set first, then ``_send_rtcp``, the
port's wrapper, which notes when it left) and the viewer's receiver report answering one."""

from __future__ import annotations

import time

from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket

from mediaserver.sfu.aiortc_bridge import SenderPort

__all__ = ["receiver_report", "sender_report"]


async def sender_report(port: SenderPort, lsr: int, ago: float) -> None:
    """What aiortc's ``_run_rtcp`` does for one sender report, ``ago`` seconds back."""
    sender = port._sender
    sender._RTCRtpSender__lsr = lsr
    sender._RTCRtpSender__lsr_time = time.time() - ago
    info = RtcpSenderInfo(ntp_timestamp=lsr << 16, rtp_timestamp=0, packet_count=0, octet_count=0)
    await sender._send_rtcp([RtcpSrPacket(ssrc=port.ssrc, sender_info=info)])  # not connected: dropped


async def receiver_report(port: SenderPort, lsr: int, held: float) -> None:
    """The viewer's report answering the sender report ``lsr``, which it held ``held`` s."""
    info = RtcpReceiverInfo(ssrc=port.ssrc, fraction_lost=0, packets_lost=0, highest_sequence=1,
                            jitter=0, lsr=lsr, dlsr=round(held * 65536))
    await port._handle_rtcp_packet(RtcpRrPacket(ssrc=4321, reports=[info]))
