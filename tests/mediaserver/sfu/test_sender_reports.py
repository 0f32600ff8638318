"""Round trips from receiver reports that answer an older sender report than the latest: a
real ``SenderPort`` on a real aiortc sender, its sender reports sent through the sender's
``_send_rtcp`` the way aiortc's RTCP loop sends them (``__lsr`` and ``__lsr_time`` set
first), the viewer's receiver reports handed to the port as they arrive."""

from __future__ import annotations

import time

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket

from mediaserver.sfu.aiortc_bridge import IdleTrack, SenderPort
from mediaserver.sfu.sender_reports import KEPT

pytestmark = pytest.mark.unit


@pytest.fixture
async def port():
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(IdleTrack("video"), direction="sendonly").sender
    yield SenderPort(sender, lambda lost: None, lambda: None)
    await pc.close()


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


async def test_a_report_answering_the_previous_sender_report_measures_the_round_trip(port):
    await sender_report(port, 0x1000, ago=0.9)
    await sender_report(port, 0x2000, ago=0.2)  # the latest: the viewer was busy when it came
    await receiver_report(port, 0x1000, held=0.7)
    assert port.last_rtt == pytest.approx(0.2, abs=0.02)
    assert port.rtt == pytest.approx(0.2, abs=0.02) and port.round_trip.samples == 1
    await receiver_report(port, 0x2000, held=0.1)  # and the latest one still counts
    assert port.last_rtt == pytest.approx(0.1, abs=0.02) and port.round_trip.samples == 2
    assert port.reports == 2


async def test_a_report_naming_no_kept_sender_report_measures_nothing(port):
    await sender_report(port, 0x1000, ago=3.0)
    for i in range(KEPT):
        await sender_report(port, 0x2000 + i, ago=2.0 - i * 0.4)
    await receiver_report(port, 0x1000, held=2.9)  # older than the last KEPT: forgotten
    await receiver_report(port, 0x7777, held=0.1)  # never sent
    await receiver_report(port, 0, held=0)  # the viewer had no sender report yet
    assert port.last_rtt is None and port.rtt is None and port.round_trip.samples == 0
    assert port.reports == 3  # the reports themselves still count (loss, jitter)
    await receiver_report(port, 0x2000, held=1.9)  # the oldest one kept
    assert port.last_rtt == pytest.approx(0.1, abs=0.02)


async def test_a_delay_longer_than_the_time_since_the_sender_report_measures_nothing(port):
    await sender_report(port, 0x1000, ago=0.5)
    await receiver_report(port, 0x1000, held=0.2)
    assert port.round_trip.samples == 1
    srtt = port.rtt
    await receiver_report(port, 0x1000, held=0.9)  # a round trip of -0.4 s
    assert port.round_trip.samples == 1 and port.rtt == srtt
    assert port.last_rtt is None  # that report measured nothing


async def test_a_sender_report_sent_again_unchanged_is_timed_from_its_latest_sending(port):
    """No media between two sender reports: the same NTP time, so the same LSR (aiortc's
    own single slot keeps the latest sending too)."""
    await sender_report(port, 0x1000, ago=1.0)
    await sender_report(port, 0x1000, ago=0.3)
    await receiver_report(port, 0x1000, held=0.1)
    assert port.last_rtt == pytest.approx(0.2, abs=0.02)
