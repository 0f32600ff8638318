"""The switcher judges a viewer's round trip by what each receiver report measured: one late
report (the viewer's event loop busy for a moment) does not move it down, even when the next
report measures nothing (on main the late value stayed in force: two bad reports); a round
trip that stays long (a queue on its link) does, after ``DOWN_AFTER`` reports. The viewers
API shows the server's smoothed round trip.
A real ``Subscriber`` negotiated with an aiortc viewer's offer, on a real fanout; its sender
reports go out through the sender's ``_send_rtcp`` the way aiortc's RTCP loop sends them
and the viewer's receiver reports are handed to its port as they arrive."""

from __future__ import annotations

import logging

import pytest

from mediaserver.live.adaptation import Adaptation
from mediaserver.live.rendition_switcher import RenditionSwitcher
from mediaserver.live.subscriber import Subscriber
from mediaserver.sfu.aiortc_bridge import SenderPort
from tests.support.fanout_ports import fanout  # noqa: F401 (fixture)
from tests.support.negotiated_subscriber import negotiated_subscriber
from tests.support.rtcp_reports import receiver_report, sender_report

pytestmark = pytest.mark.unit

NORMAL = 0.05  #: seconds: the viewer's usual round trip
LONG = 0.9  #: seconds: a round trip over ``Adaptation.MAX_RTT``
HELD = 0.1  #: seconds the viewer holds a sender report before it answers


class Watched:
    """One viewer's subscriber, the switcher over it, and its reports (one SR, one RR each)."""

    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self.port: SenderPort = subscriber._downstreams["video"][1].port
        self.switcher = RenditionSwitcher(lambda: [subscriber], self._never,
                                          logging.LoggerAdapter(logging.getLogger("test"), {}))
        self.lsr = 0x10000

    @staticmethod
    async def _never(viewer, rendition):  # pragma: no cover - step() is driven directly
        raise AssertionError("step() is driven directly")

    async def report(self, rtt: float | None) -> list[str]:
        """A sender report goes out and the viewer answers it with a round trip of ``rtt``
        (None: it answers one the port never sent: no sample); the switches wanted now."""
        self.lsr += 0x100
        await sender_report(self.port, self.lsr, ago=HELD + (NORMAL if rtt is None else rtt))
        await receiver_report(self.port, self.lsr if rtt is not None else 0x7777, held=HELD)
        return [choice for _, choice in self.switcher.step()]


@pytest.fixture
async def watched(fanout):  # noqa: F811 (the fixture imported above)
    async with negotiated_subscriber(fanout) as subscriber:
        yield Watched(subscriber)


async def test_one_late_report_does_not_move_a_viewer_down(watched):
    for _ in range(10):
        assert await watched.report(NORMAL) == []
    assert await watched.report(LONG) == []  # one report late (a busy viewer)
    assert await watched.report(None) == []  # and the next answers a report never kept
    assert await watched.report(LONG) == []  # and another late one
    for _ in range(3):
        assert await watched.report(NORMAL) == []
    assert watched.port.last_rtt == pytest.approx(NORMAL, abs=0.02)
    assert watched.port.rtt < Adaptation.MAX_RTT


async def test_a_round_trip_that_stays_long_moves_a_viewer_down(watched):
    for _ in range(10):
        assert await watched.report(NORMAL) == []
    for reports in range(1, 21):
        if await watched.report(LONG) == ["low"]:
            break
    else:
        pytest.fail(f"still on the full rendition after 20 reports of {LONG} s (rtt {watched.port.rtt:.3f} s)")
    assert reports == Adaptation.DOWN_AFTER  # as soon as the rule allows: a queue must not wait
    assert watched.port.last_rtt > Adaptation.MAX_RTT


async def test_the_viewers_api_shows_the_servers_smoothed_round_trip(watched):
    """``rtt_ms`` (admin and viewers API) is the round trip NACK resends are timed by. aiortc's
    own counts only reports answering its latest sender report: a viewer that always answers
    the one before (a sender report every 0.5-1.5 s, a report a second) gave it none."""
    port = watched.port
    assert (await watched.subscriber.quality())["video"]["rtt_ms"] is None  # no report yet
    for n in range(4):
        answered, latest = 0x20000 + 2 * n, 0x20001 + 2 * n
        await sender_report(port, answered, ago=HELD + NORMAL)
        await sender_report(port, latest, ago=0.01)  # came while the viewer was busy
        await receiver_report(port, answered, held=HELD)
    rtt_ms = (await watched.subscriber.quality())["video"]["rtt_ms"]
    assert port.round_trip.samples == 4 and rtt_ms == round(port.rtt * 1000, 1)
    assert rtt_ms == pytest.approx(NORMAL * 1000, abs=20)
