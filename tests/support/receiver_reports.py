"""A faster receiver-report pace for a test viewer's aiortc receivers.

aiortc's ``RTCRtpReceiver._run_rtcp`` sends a receiver report every 0.5-1.5 s (site-packages
``aiortc/rtcrtpreceiver.py``), a fixed pace with no option. Browsers report more often
(Chrome every 100 ms to 1 s, depending on the bitrate), and the server's rendition
switching and loss handling count reports, not seconds: a test paced by reports runs
faster with a viewer that reports like a browser. ``report_every`` gives one receiver that
pace; the reports themselves are built exactly as aiortc builds them, and the server is
unchanged. The rendition switcher reads the latest report every ``RenditionSwitcher.INTERVAL``
(0.5 s): a viewer reporting faster than that is not switched faster, it only has reports skipped.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

__all__ = ["report_every"]


def report_every(receiver: RTCRtpReceiver, interval: float) -> None:
    """Make ``receiver`` send its receiver reports every ``interval`` seconds on average
    (varied over 0.5-1.5 times, as aiortc and RFC 3550 do). Call it before the receiver
    starts (before the answer is applied): it replaces the loop aiortc starts then."""
    if interval <= 0:
        raise ValueError(f"a report interval must be positive, not {interval}")
    # aiortc keeps the loop's state in name-mangled attributes of the receiver
    state = "_RTCRtpReceiver__"

    async def run_rtcp() -> None:
        started, exited = getattr(receiver, state + "rtcp_started"), getattr(receiver, state + "rtcp_exited")
        started.set()
        try:
            while True:
                await asyncio.sleep(interval * (0.5 + random.random()))
                packet = _receiver_report(receiver, state)
                if packet is not None:
                    await receiver._send_rtcp(packet)
        except asyncio.CancelledError:
            pass
        exited.set()  # what stop() waits for

    receiver._run_rtcp = run_rtcp


def _receiver_report(receiver: RTCRtpReceiver, state: str) -> RtcpRrPacket | None:
    """One RTCP RR about every stream the receiver gets, as aiortc's loop builds it."""
    lsrs, lsr_times = getattr(receiver, state + "lsr"), getattr(receiver, state + "lsr_time")
    reports = []
    for ssrc, stream in getattr(receiver, state + "remote_streams").items():
        lsr = dlsr = 0
        if ssrc in lsrs:
            lsr = lsrs[ssrc]
            delay = time.time() - lsr_times[ssrc]
            if 0 < delay < 65536:
                dlsr = int(delay * 65536)
        reports.append(RtcpReceiverInfo(
            ssrc=ssrc, fraction_lost=stream.fraction_lost, packets_lost=stream.packets_lost,
            highest_sequence=stream.max_seq, jitter=stream.jitter, lsr=lsr, dlsr=dlsr))
    rtcp_ssrc = getattr(receiver, state + "rtcp_ssrc")
    if rtcp_ssrc is None or not reports:
        return None
    return RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports)
