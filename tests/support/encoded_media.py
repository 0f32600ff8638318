"""A publisher that costs almost no CPU: it replays media encoded once, as ``av.Packet``s.

Long measurements (memory, soak) need publishers that run for many minutes, several at
a time, on a shared 2-core machine. Encoding live frames would cost a third of a core
per publisher; here a short clip is encoded once (H.264 + Opus) and aiortc's senders
packetize its packets again and again (``RTCRtpSender`` sends an ``av.Packet`` through the
codec's ``pack()``, without encoding), with timestamps that keep increasing. What the
server receives looks like a live H.264 + Opus publisher at the chosen bitrate.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import time
from typing import Optional

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection

from tests.support.peers import Peer, prefer

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000


@functools.lru_cache(maxsize=4)
def h264_clip(seconds: int = 4, fps: int = 30, kbps: int = 500,
              width: int = 640, height: int = 360) -> tuple[bytes, ...]:
    """``seconds`` of Annex-B H.264 access units (baseline profile, a keyframe every
    2 s), with a band of noise so the encoder spends its bitrate."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = kbps * 1000
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, fps)
    codec.options = {"tune": "zerolatency", "preset": "veryfast", "g": str(2 * fps),
                     "profile": "baseline", "level": "31"}
    rng = np.random.default_rng(23)
    units: list[bytes] = []
    for i in range(seconds * fps):
        img = np.full((height * 3 // 2, width), 96, np.uint8)
        img[height // 4: height // 2] = rng.integers(64, 192, (height // 4, width), np.uint8)
        img[: height // 8, (i * 8) % width: (i * 8) % width + 32] = 255  # motion
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        units += [bytes(p) for p in codec.encode(frame)]
    units += [bytes(p) for p in codec.encode(None)]
    return tuple(units)


@functools.lru_cache(maxsize=2)
def opus_clip(seconds: int = 1) -> tuple[bytes, ...]:
    """``seconds`` of a 440 Hz tone as 20 ms Opus packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = AUDIO_CLOCK, "stereo", "s16"
    codec.bit_rate = 32000
    packets: list[bytes] = []
    for i in range(seconds * 50):
        t = (np.arange(960) + i * 960) / AUDIO_CLOCK
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.stack([pcm, pcm]).reshape(1, -1),
                                           format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = i * 960
        packets += [bytes(p) for p in codec.encode(frame)]
    return tuple(packets)


class PacketLoopTrack(MediaStreamTrack):
    """Replays encoded packets at ``rate`` per second of media, forever: in real time, or
    ``speed`` times faster (the timestamps still say ``rate`` a second; for tests that count
    what the server does per packet, not what it does per second)."""

    def __init__(self, kind: str, packets: tuple[bytes, ...], rate: int, clock: int, speed: float = 1.0) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._rate = rate
        self._pace = rate * speed  # packets sent per second of wall time
        self._clock = clock
        self._time_base = fractions.Fraction(1, clock)
        self._t0: Optional[float] = None
        self._running = asyncio.Event()
        self._running.set()
        self.sent = 0  #: packets handed to the sender

    def pause(self) -> None:
        """Send nothing until ``resume`` (the receiver can drain what is in flight)."""
        self._running.clear()

    def resume(self) -> None:
        if not self._running.is_set():
            self._t0 = None  # restart the pacing: no burst to catch up
            self._running.set()

    async def recv(self) -> av.Packet:
        await self._running.wait()
        if self._t0 is None:
            self._t0 = time.monotonic() - self.sent / self._pace
        delay = self._t0 + self.sent / self._pace - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self.sent % len(self._packets)])
        packet.pts = self.sent * self._clock // self._rate
        packet.time_base = self._time_base
        self.sent += 1
        return packet


def add_clip_tracks(pc: RTCPeerConnection, kbps: int = 500, audio: bool = True,
                    speed: float = 1.0) -> list[PacketLoopTrack]:
    """Send the H.264 clip (and the Opus tone) from ``pc``, ``speed`` times real time;
    returns the tracks."""
    tracks = [PacketLoopTrack("video", h264_clip(kbps=kbps), 30, VIDEO_CLOCK, speed)]
    prefer(pc.addTransceiver(tracks[0], direction="sendonly"), "video/H264")
    if audio:
        tracks.append(PacketLoopTrack("audio", opus_clip(), 50, AUDIO_CLOCK, speed))
        pc.addTransceiver(tracks[1], direction="sendonly")
    return tracks


class ClipPublisher(Peer):
    """A WHIP publisher sending the pre-encoded clip (see the module docstring)."""

    def __init__(self, base_url: str, kbps: int = 500, audio: bool = True, speed: float = 1.0) -> None:
        super().__init__(base_url)
        self.tracks = add_clip_tracks(self.pc, kbps=kbps, audio=audio, speed=speed)

    def pause(self) -> None:
        for track in self.tracks:
            track.pause()

    def resume(self) -> None:
        for track in self.tracks:
            track.resume()

    async def publish(self, room: str, key: str) -> int:
        return await self.post(f"/whip/{room}", token=key)
