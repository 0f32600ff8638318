"""Resend timing from a smoothed round trip (RFC 6298's SRTT/RTTVAR, ``RoundTrip``): one
late receiver report does not keep resends waiting (a freeze), one early one does not send
them before the first could have arrived (a duplicate); a lasting change is followed. Fed
through a real ``SenderPort`` (aiortc sender, receiver reports answering its sender report)
and through the fanout's NACK answers."""

from __future__ import annotations

import time

import pytest
from aiortc import RTCPeerConnection

from mediaserver.sfu import nack_answers
from mediaserver.sfu.aiortc_bridge import IdleTrack, SenderPort
from mediaserver.sfu.downstream import Downstream
from mediaserver.sfu.round_trip import RoundTrip
from tests.support.fanout_ports import FakePort, fanout, feed, stream  # noqa: F401 (fixture)
from tests.support.rtcp_reports import receiver_report, sender_report

pytestmark = pytest.mark.unit


def steady(rtt: float, n: int = 12) -> RoundTrip:
    r = RoundTrip()
    for _ in range(n):
        r.add(rtt)
    return r


def test_the_first_sample_sets_srtt_and_half_of_it_as_variation():
    r = RoundTrip()
    assert r.srtt is None and r.timeout() is None
    r.add(0.08)
    assert r.srtt == 0.08 and r.rttvar == 0.04 and r.timeout() == pytest.approx(0.16)  # at most 2 srtt
    with pytest.raises(ValueError, match="negative"):
        r.add(-0.01)
    assert r.samples == 1 and r.srtt == 0.08  # a bad sample changes nothing


def test_one_late_report_moves_the_round_trip_an_eighth_and_fades():
    r = steady(0.05)
    r.add(0.6)  # one report delayed on its way (a busy viewer, a queue for a moment)
    assert r.srtt == pytest.approx(0.05 + 0.55 / 8, abs=1e-3)
    assert r.timeout() < 0.25  # not the 0.6 s that one sample said
    after = []
    for _ in range(4):
        r.add(0.05)
        after.append(r.timeout())
    assert after == sorted(after, reverse=True)
    assert after[-1] < 0.2  # four reports on, resends wait a fraction of that one report
    r2 = steady(0.05)
    r2.add(0.02)  # one early report: the timeout stays over the usual round trip
    assert r2.timeout() > 0.05


def test_a_lasting_change_is_followed():
    r = steady(0.05)
    for _ in range(16):
        r.add(0.2)
    assert r.srtt == pytest.approx(0.2, abs=0.025) and 0.2 < r.timeout() < 0.32
    jittery = RoundTrip()  # round trips that really vary: the timeout covers the long ones
    for i in range(40):
        jittery.add(0.02 + 0.03 * (i % 3) / 2)  # 20, 35, 50 ms
    assert 0.05 < jittery.timeout() < 0.08


async def rr(port: SenderPort, rtt: float) -> None:
    """A sender report goes out, and the viewer's receiver report answers it ``rtt`` seconds
    after it left (held 1/65536 s)."""
    await sender_report(port, 0x1234, ago=rtt)
    await receiver_report(port, 0x1234, held=1 / 65536)


async def test_a_sender_port_smooths_the_round_trips_of_its_receiver_reports():
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(IdleTrack("video"), direction="sendonly").sender
    port = SenderPort(sender, lambda lost: None, lambda: None)
    try:
        for _ in range(10):
            await rr(port, 0.05)
        assert port.rtt == pytest.approx(0.05, abs=0.005)
        await rr(port, 0.6)
        assert port.last_rtt == pytest.approx(0.6, abs=0.005)  # what the report said...
        assert port.rtt < 0.13  # ...moves the round trip resends wait for an eighth of the way
        for _ in range(3):
            await rr(port, 0.05)
        assert port.rtt < 0.11
        assert port.reports == 14
    finally:
        await pc.close()


def resent(port: FakePort) -> list[int]:
    return [int.from_bytes(p.payload[:2], "big") for p in port.sent if p.payload_type == 101]


async def test_a_resend_waits_the_round_trip_timeout_not_a_single_sample(fanout, monkeypatch):
    """The same sequence is resent again once ``srtt + 4 * rttvar`` has passed: not before
    (the first resend may still be on its way), and not much later (the viewer waits).
    The answers' clock is moved by hand, so a loaded machine cannot blur the edges."""
    later = 0.0

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + later

    monkeypatch.setattr(nack_answers, "time", Clock)
    port = FakePort()
    port.rtt, port.rtt_var = 0.2, 0.025  # a timeout of 0.3 s
    d = Downstream(port, stream(), "v1")
    fanout.add(d)
    feed(fanout, 500, ["K", "D", "D", "D"])
    lost = port.sent[3].sequence_number
    fanout.on_nack(d, [lost])
    assert resent(port) == [lost]
    later = 0.25  # past the smoothed round trip, not past its timeout
    fanout.on_nack(d, [lost])
    assert resent(port) == [lost] and fanout.stats.nacks_repeated == 1
    later = 0.32
    fanout.on_nack(d, [lost])
    assert resent(port) == [lost, lost]
