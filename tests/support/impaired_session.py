"""A broadcast over impaired links, measured from the viewers' side (tests and
``benchmarks/network.py``).

``Session`` wires a ``tests.support.peers`` publisher and decoding viewers (to Stagepass over
WHIP/WHEP, or directly peer to peer for the baseline), puts ``tests.support.netshim`` links on
the publisher's uplink and each viewer's downlink, and reads what a viewer sees: frames
decoded, freezes (gaps between decoded frames), duplicate packets (what SRTP would reject
as replays), retransmissions (packets on the RTX SSRC), keyframes the publisher was asked
for, and the sender reports on both ends.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np
from aiortc import RTCSessionDescription
from av import VideoFrame
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, RtcpSrPacket

from tests.support.netshim import Impairment, Link, rtx_ssrcs
from tests.support.peers import VIDEO_CLOCK, NumberedVideoTrack, Publisher, Viewer, draw_number

__all__ = ["CASES", "SenderReports", "Session", "ViewerResult", "impairment_for", "sr_errors"]

LOSS, JITTER = 0.05, 0.030
#: case -> (uplink, downlink) impairment parameters (loss, jitter, burst)
CASES: dict[str, tuple[Optional[tuple], Optional[tuple]]] = {
    "none": (None, None),
    "uplink": ((LOSS, JITTER, 0), None),
    "downlink": (None, (LOSS, JITTER, 0)),
    "both": ((LOSS, JITTER, 0), (LOSS, JITTER, 0)),
    "bursts": ((LOSS, JITTER, 4), (LOSS, JITTER, 4)),
}


def impairment_for(spec: Optional[tuple], seed: int) -> Impairment:
    if spec is None:
        return Impairment(seed=seed)
    loss, jitter, burst = spec
    return Impairment(loss=loss, jitter=jitter, burst=burst, seed=seed)


class NoisyVideoTrack(NumberedVideoTrack):
    """Numbered frames with a band of fresh noise, so the encoder spends its bitrate
    (several packets per frame, like a real camera) and the barcode stays readable."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(3)

    async def recv(self) -> VideoFrame:
        target = self.clock.start() + self._count / self.fps
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        i420 = cv2.cvtColor(draw_number(self.number, self.width, self.height), cv2.COLOR_BGR2YUV_I420)
        top, bottom = self.height // 3, self.height * 2 // 3
        i420[top:bottom] = self._rng.integers(64, 192, (bottom - top, self.width), np.uint8)
        frame = VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.number += 1
        self._count += 1
        return frame


def make_publisher(base_url: str, codec: str) -> Publisher:
    pub = Publisher(base_url, codec=codec)
    noisy = NoisyVideoTrack(width=320, height=240)
    pub.pc.getTransceivers()[0].sender.replaceTrack(noisy)
    pub.video = noisy
    return pub


@dataclass
class ViewerResult:
    frames: int  #: of the frames made in the window, those decoded (``Session.measure``)
    longest_freeze: float
    freezes_200ms: int
    freezes_1s: int
    media_packets: int
    duplicates: int
    retransmissions: int
    numbers_in_order: bool

    @property
    def duplicate_ratio(self) -> float:
        return self.duplicates / self.media_packets if self.media_packets else 0.0

    @property
    def retransmission_ratio(self) -> float:
        return self.retransmissions / self.media_packets if self.media_packets else 0.0


@dataclass
class SenderReports:
    """(arrival time, ntp, rtp) per kind: what the publisher sent and a viewer received."""

    sent: dict[str, list[tuple[float, int, int]]] = field(default_factory=lambda: {"audio": [], "video": []})
    received: dict[str, list[tuple[float, int, int]]] = field(default_factory=lambda: {"audio": [], "video": []})


class Session:
    def __init__(self, base_url: Optional[str], codec: str, viewers: int = 1,
                 uplink: Optional[tuple] = None, downlink: Optional[tuple] = None,
                 seed: int = 1) -> None:
        """``base_url`` None: peer to peer (one publisher connection per viewer)."""
        self.base_url = base_url
        self.codec = codec
        self.n_viewers = viewers
        self.uplink, self.downlink = uplink, downlink
        self.seed = seed
        self.publishers: list[Any] = []
        self.viewers: list[Viewer] = []
        self.links: list[Link] = []
        self.viewer_links: list[Link] = []
        self.pli_received = 0
        self.reports = SenderReports()
        self._window: tuple[float, float] = (0.0, 0.0)
        self._frames_sent_at_start = self._frames_sent_at_end = 0

    # ------------------------------------------------------------ set-up
    async def start(self, room: str = "demo", key: str = "") -> None:
        if self.base_url is not None:
            pub = make_publisher(self.base_url, self.codec)
            status = await pub.publish(room, key)
            assert status == 201, getattr(pub, "error", status)
            self._watch_publisher(pub)
            self.links.append(Link(pub.pc, "out", impairment_for(self.uplink, self.seed)))
            for i in range(self.n_viewers):
                v = Viewer(self.base_url)
                status = await v.play(room)
                assert status == 201, getattr(v, "error", status)
                self._watch_viewer(v, i)
        else:
            for i in range(self.n_viewers):
                pub, v = await _direct_pair(self.codec)
                self._watch_publisher(pub)
                self.links.append(Link(pub.pc, "out", impairment_for(self.uplink, self.seed + 100 + i)))
                self._watch_viewer(v, i)

    def _watch_publisher(self, pub: Any) -> None:
        self.publishers.append(pub)
        for t in pub.pc.getTransceivers():
            sender = t.sender
            kind = t.kind
            handle, send_rtcp = sender._handle_rtcp_packet, sender._send_rtcp

            async def on_rtcp(packet, handle=handle):
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                    self.pli_received += 1
                await handle(packet)

            async def sent_rtcp(packets, send_rtcp=send_rtcp, kind=kind):
                for p in packets:
                    if isinstance(p, RtcpSrPacket):
                        info = p.sender_info
                        self.reports.sent[kind].append((time.monotonic(), info.ntp_timestamp, info.rtp_timestamp))
                await send_rtcp(packets)

            if kind == "video":
                sender._handle_rtcp_packet = on_rtcp
            sender._send_rtcp = sent_rtcp

    def _watch_viewer(self, v: Viewer, i: int) -> None:
        self.viewers.append(v)
        self.viewer_links.append(Link(v.pc, "in", impairment_for(self.downlink, self.seed + 1 + i)))
        if i:
            return
        for t in v.pc.getTransceivers():
            receiver, kind = t.receiver, t.kind
            handle = receiver._handle_rtcp_packet

            async def on_rtcp(packet, handle=handle, kind=kind):
                if isinstance(packet, RtcpSrPacket):
                    info = packet.sender_info
                    self.reports.received[kind].append((time.monotonic(), info.ntp_timestamp, info.rtp_timestamp))
                await handle(packet)

            receiver._handle_rtcp_packet = on_rtcp

    async def wait_playing(self, frames: int = 15, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(len(v.numbers) >= frames for v in self.viewers):
            if time.monotonic() > deadline:
                raise AssertionError(f"viewers decoded {[len(v.numbers) for v in self.viewers]} frames")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ measuring
    async def measure(self, seconds: float, catch_up: float = 10.0) -> list[ViewerResult]:
        """Reset the counters, let ``seconds`` pass, and read each viewer. Frames shown are
        counted on media time: of the frames its publisher made in the window, those the
        viewer decoded, once it decoded a frame made after the window (waiting up to
        ``catch_up`` s): a viewer lagging behind on a loaded machine is not counted short
        for frames still on their way. Freezes are the gaps between frames decoded in the
        window, on the wall clock."""
        for link in self.links + self.viewer_links:
            link.packets.clear()
            link.duplicates.clear()
        self.pli_received = 0
        start_frames = [len(v.numbers) for v in self.viewers]
        sources = [self._source(i) for i in range(len(self.viewers))]
        made_from = [p.video.number for p in sources]
        self._frames_sent_at_start = self.publishers[0].video.number
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        t1 = time.monotonic()
        self._window = (t0, t1)
        self._frames_sent_at_end = self.publishers[0].video.number
        made_to = [p.video.number for p in sources]
        results = [self._result(v, link, n0, t0, t1)
                   for v, link, n0 in zip(self.viewers, self.viewer_links, start_frames)]
        deadline = time.monotonic() + catch_up
        while time.monotonic() < deadline and not all(
                v.numbers and v.numbers[-1] >= end for v, end in zip(self.viewers, made_to)):
            await asyncio.sleep(0.05)
        for r, v, n0, first, end in zip(results, self.viewers, start_frames, made_from, made_to):
            r.frames = len({n for n in v.numbers[n0:] if first <= n < end})
        return results

    def _source(self, i: int) -> Any:
        """The publisher whose frames viewer ``i`` gets (its own one, peer to peer)."""
        return self.publishers[i] if self.base_url is None else self.publishers[0]

    @property
    def frames_sent(self) -> int:
        """Frames the (first) publisher produced during the last ``measure`` window."""
        return self._frames_sent_at_end - self._frames_sent_at_start

    def _result(self, v: Viewer, link: Link, n0: int, t0: float, t1: float) -> ViewerResult:
        times = [t for t in v.frame_times[n0:] if t <= t1]
        numbers = v.numbers[n0:n0 + len(times)]
        edges = [t0] + times + [t1]
        gaps = [b - a for a, b in zip(edges, edges[1:])]
        groups = rtx_ssrcs(v.pc.remoteDescription.sdp)
        rtx = set(groups.values())
        media = {s for s in link.packets if s not in rtx}
        return ViewerResult(
            frames=len(times),
            longest_freeze=max(gaps),
            freezes_200ms=sum(g > 0.2 for g in gaps),
            freezes_1s=sum(g > 1.0 for g in gaps),
            media_packets=link.total(media),
            duplicates=link.duplicate_count(),
            retransmissions=link.total(rtx),
            numbers_in_order=all(b > a for a, b in zip(numbers, numbers[1:])),
        )

    async def close(self) -> None:
        for link in self.links + self.viewer_links:
            link.remove()
        for v in self.viewers:
            await v.close()
        for p in self.publishers:
            await p.close()


async def _direct_pair(codec: str) -> tuple[Any, Viewer]:
    """A publisher and a viewer connected directly (aiortc to aiortc, no server)."""
    pub = make_publisher("", codec)
    viewer = Viewer("")
    await pub.pc.setLocalDescription(await pub.pc.createOffer())
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=pub.pc.localDescription.sdp, type="offer"))
    await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
    await pub.pc.setRemoteDescription(RTCSessionDescription(sdp=viewer.pc.localDescription.sdp, type="answer"))
    return pub, viewer



def sr_errors(reports: SenderReports, kind: str, ts_delta: int, rate: int) -> list[float]:
    """For each sender report a viewer received: how far (seconds) its NTP time is from
    the publisher's NTP time for the same RTP instant (``ts_delta``: the viewer's RTP
    timestamp offset from the publisher's). The publisher's own pairs wobble from one
    report to the next (they are taken at send time, after encoding), and the server can
    only use a report it received: the error is the smallest against the publisher's
    last three reports sent before the viewer's arrived."""
    sent = reports.sent[kind]
    out = []
    for at, ntp, rtp in reports.received[kind]:
        if ntp == 0:  # aiortc reports before it sent anything
            continue
        before = [s for s in sent if s[0] <= at][-3:]
        if not before:
            continue
        src_rtp = (rtp - ts_delta) & 0xFFFFFFFF
        errors = []
        for _, p_ntp, p_rtp in before:
            d_rtp = ((src_rtp - p_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            errors.append(ntp / 2**32 - (p_ntp / 2**32 + d_rtp / rate))
        out.append(min(errors, key=abs))
    return out
