"""Viewers that count what arrives: ``RtpCounter``, ``count_packets`` and the WHEP
``LightViewer`` (never depayloads or decodes), for benchmarks with many viewers, and
``connect_all``, which connects a batch of them a few at a time."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

__all__ = ["LightViewer", "RtpCounter", "connect_all", "count_packets", "wait_connected"]

V = TypeVar("V")


class RtpCounter:
    """What one receiver got: RTP packets, payload bytes, frames (marker bits)."""

    __slots__ = ("packets", "bytes", "frames")

    def __init__(self) -> None:
        self.packets = self.bytes = self.frames = 0

    def as_list(self) -> list[int]:
        return [self.packets, self.bytes, self.frames]


def count_packets(receiver: Any, counter: RtpCounter, decode: bool = False) -> None:
    """Replace ``receiver._handle_rtp_packet`` by a counter; with ``decode`` it still
    calls aiortc's handler afterwards, else nothing is depayloaded or decoded."""
    original = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        counter.packets += 1
        counter.bytes += len(packet.payload)
        counter.frames += packet.marker
        if decode:
            await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle



async def wait_connected(pc: RTCPeerConnection, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"connection {pc.connectionState}")
        await asyncio.sleep(0.05)


class LightViewer:
    """A WHEP viewer that never decodes: it only counts what arrives."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video, self.audio = RtpCounter(), RtpCounter()
        video = self.pc.addTransceiver("video", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        order = {"video/H264": 0, "video/VP8": 1}  # offer H.264 first, like the publisher
        video.setCodecPreferences(sorted(caps, key=lambda c: order.get(c.mimeType, 2)))
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        count_packets(video.receiver, self.video)
        count_packets(audio.receiver, self.audio)
        self.codec = ""

    async def play(self, http: aiohttp.ClientSession, base_url: str, room: str) -> str:
        """WHEP-play ``room`` and wait until connected; returns the session's Location."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(
            f"{base_url}/whep/{room}",
            data=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        ) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {r.status}: {body[:200]}")
            location = r.headers.get("Location", "")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
        self.codec = video._codecs[0].mimeType if video._codecs else "?"
        await wait_connected(self.pc)
        return location


async def connect_all(viewers: Sequence[V], play: Callable[[V], Awaitable[Any]], gate: asyncio.Semaphore) -> list[str]:
    """Connect each of ``viewers`` (``play(viewer)``), as many at a time as ``gate`` lets
    through; why each one that failed did (its peer connection, ``viewer.pc``, closed)."""

    async def connect(viewer: V) -> str | None:
        async with gate:
            try:
                await play(viewer)
                return None
            except Exception as exc:
                await viewer.pc.close()  # type: ignore[attr-defined]
                return f"{type(exc).__name__}: {exc}"

    return [e for e in await asyncio.gather(*(connect(v) for v in viewers)) if e]
