"""``Subscriber.estimate_ratio`` judges a rising estimate from one REMB to the next. A
receiver sends a REMB about once a second; a viewer reporting more often (a browser, every
0.5 s) is asked for its ratio at every report. On main a report between two REMBs compared
the REMB with itself, found it not rising, and read a rising (recovering) estimate as a
limit: a squeezed ratio at every other report, which kept the viewer from going back up.
A real ``Subscriber`` negotiated with an aiortc viewer's offer, on a real fanout; the REMBs
reach its port as RTCP the way they arrive from the network."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from mediaserver.live.subscriber import Subscriber
from mediaserver.sfu.aiortc_bridge import SenderPort
from tests.support.fanout_ports import fanout  # noqa: F401 (fixture)
from tests.support.negotiated_subscriber import negotiated_subscriber

pytestmark = pytest.mark.unit

SENT_BPS = 500_000  #: the video bitrate the viewer is sent
STEP = 0.25  #: seconds between two reports (over the 0.2 s a ratio needs)


@pytest.fixture
async def subscriber(fanout):  # noqa: F811 (the fixture imported above)
    async with negotiated_subscriber(fanout) as subscriber:
        yield subscriber


async def report(subscriber: Subscriber, remb: int | None = None) -> float | None:
    """``STEP`` seconds of video at ``SENT_BPS`` go out, a REMB of ``remb`` arrives (None:
    none since the last report), then the ratio the switcher reads at the viewer's report."""
    port: SenderPort = subscriber._downstreams["video"][1].port
    await asyncio.sleep(STEP)
    port._sender._RTCRtpSender__octet_count += int(SENT_BPS * STEP / 8)
    if remb is not None:
        fci = pack_remb_fci(remb, [port.ssrc])
        await port._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=4321, media_ssrc=0, fci=fci))
    return subscriber.estimate_ratio()


def about(ratio: float) -> object:
    """The real span between reports is a little over ``STEP`` (more on a loaded machine):
    the ratio read is a little under the one computed from the figures."""
    return pytest.approx(ratio, rel=0.25)


async def test_a_rising_estimate_is_no_limit_until_the_next_remb(subscriber):
    assert await report(subscriber, 300_000) is None  # the first call only marks what was sent
    assert await report(subscriber) == about(0.6)  # 300 of 500 kbit/s: squeezed
    assert await report(subscriber, 330_000) is None  # rising: it tells no limit
    assert await report(subscriber) is None  # a report before the next REMB: still rising
    assert await report(subscriber) is None
    assert await report(subscriber, 332_000) == about(0.66)  # under 2 % more: it stopped rising
    assert await report(subscriber) == about(0.66)  # and the same REMB stays the estimate
    assert await report(subscriber, 250_000) == about(0.5)  # falling: a limit at once
