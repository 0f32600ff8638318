"""Round trips from receiver reports that answer an older sender report than the latest: a
real ``SenderPort`` on a real aiortc sender, its sender reports sent through the sender's
``_send_rtcp`` the way aiortc's RTCP loop sends them (``__lsr`` and ``__lsr_time`` set
first), the viewer's receiver reports handed to the port as they arrive."""

from __future__ import annotations

import time

import pytest
from aiortc import RTCPeerConnection

from mediaserver.sfu.aiortc_bridge import IdleTrack, SenderPort
from mediaserver.sfu.sender_reports import KEPT
from tests.support.rtcp_reports import receiver_report, sender_report

pytestmark = pytest.mark.unit


@pytest.fixture
async def port():
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(IdleTrack("video"), direction="sendonly").sender
    yield SenderPort(sender, lambda lost: None, lambda: None)
    await pc.close()


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


async def test_only_a_sender_report_that_left_through_the_port_is_timed(port):
    """aiortc sets its ``__lsr`` slots just before it sends; the port notes the report as it
    goes through ``_send_rtcp``, once, and never reads the slots again when a receiver
    report comes: one made but never sent (the RTCP loop cancelled in between) times nothing."""
    sender = port._sender
    sender._RTCRtpSender__lsr, sender._RTCRtpSender__lsr_time = 0x3000, time.time() - 0.3
    await receiver_report(port, 0x3000, held=0.1)
    assert port.last_rtt is None and port.round_trip.samples == 0
    await sender_report(port, 0x3000, ago=0.3)  # now it leaves
    await receiver_report(port, 0x3000, held=0.1)
    assert port.last_rtt == pytest.approx(0.2, abs=0.02) and port.round_trip.samples == 1
