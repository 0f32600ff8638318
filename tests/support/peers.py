"""Real aiortc peers for tests and benchmarks: a numbered synthetic publisher and viewers.

The publisher's frames carry their frame number twice: drawn as text (for people looking
at screenshots) and as a 16-bit barcode of 20x20 blocks along the top (for machines;
it survives lossy compression).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Any, Optional

import aiohttp
import cv2
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from tests.support.played_frames import PlayedFrame, ReceiverLosses
from tests.support.receiver_reports import report_every

BITS = 16
BLOCK = 20
WIDTH, HEIGHT = BITS * BLOCK, 240
VIDEO_CLOCK = 90000


def draw_number(n: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    img = np.full((height, width, 3), 64, np.uint8)
    block = width // BITS
    for bit in range(BITS):
        value = 255 if (n >> (BITS - 1 - bit)) & 1 else 0
        img[0:block, bit * block:(bit + 1) * block] = value
    cv2.putText(img, str(n), (10, height - 30), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return img


def read_number(img: np.ndarray) -> int:
    block = img.shape[1] // BITS
    n = 0
    for bit in range(BITS):
        patch = img[block // 4: block * 3 // 4, bit * block + block // 4: bit * block + block * 3 // 4]
        n = (n << 1) | int(patch.mean() > 128)
    return n


class SharedClock:
    """The start time of a publisher's tracks: whichever track starts first sets it, the
    other catches up, so frame n and audio sample s are due at t0 + n/fps and t0 + s/48000
    (an A/V sync reference for tests)."""

    def __init__(self) -> None:
        self.t0: Optional[float] = None

    def start(self) -> float:
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.t0


class NumberedVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, start: int = 0, fps: int = 30, width: int = WIDTH, height: int = HEIGHT,
                 clock: Optional[SharedClock] = None):
        super().__init__()
        self.number = start
        self.fps = fps
        self.width, self.height = width, height
        self.clock = clock or SharedClock()
        self._count = 0

    async def recv(self) -> VideoFrame:
        target = self.clock.start() + self._count / self.fps
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = VideoFrame.from_ndarray(draw_number(self.number, self.width, self.height), format="bgr24")
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.number += 1
        self._count += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz sine in 20 ms frames at 48 kHz; with ``pulse_every`` (seconds), a 100 ms
    beep at the start of each period and silence between (for A/V sync checks)."""

    kind = "audio"

    def __init__(self, freq: float = 440.0, pulse_every: Optional[float] = None,
                 clock: Optional[SharedClock] = None):
        super().__init__()
        self.freq = freq
        self.pulse_every = pulse_every
        self.clock = clock or SharedClock()
        self._samples = 0

    async def recv(self) -> AudioFrame:
        target = self.clock.start() + self._samples / 48000
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n = np.arange(960) + self._samples
        t = n / 48000
        pcm = np.sin(2 * math.pi * self.freq * t) * 8000
        if self.pulse_every:
            pcm[(n % int(self.pulse_every * 48000)) >= 4800] = 0
        pcm = pcm.astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, 48000)
        self._samples += 960
        return frame


def prefer(transceiver, mime: str) -> None:
    caps = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences(
        [c for c in caps if c.mimeType.lower() == mime.lower()]
        + [c for c in caps if c.mimeType.lower().endswith("/rtx")]
    )


class Peer:
    """A WHIP/WHEP client: an aiortc peer plus its session URL."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location: Optional[str] = None
        self.status: Optional[int] = None
        self.answer: Optional[str] = None
        self.token: Optional[str] = None

    #: header extensions (URI substrings) left out of the offer, so never negotiated
    unoffered_extensions: tuple[str, ...] = ()

    def offer_sdp(self) -> str:
        """The local offer as sent: without the ``unoffered_extensions``' extmap lines."""
        lines = self.pc.localDescription.sdp.split("\r\n")
        return "\r\n".join(line for line in lines if not (
            line.startswith("a=extmap:") and any(uri in line for uri in self.unoffered_extensions)))

    async def post(self, path: str, token: Optional[str] = None) -> int:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
            self.token = token
        async with aiohttp.ClientSession() as http:
            async with http.post(self.base_url + path, data=self.offer_sdp(), headers=headers) as r:
                self.status = r.status
                body = await r.text()
                if r.status == 201:
                    self.location = r.headers["Location"]
                    self.answer = body
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
                else:
                    self.error = body
        return self.status

    async def delete(self) -> int:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with aiohttp.ClientSession() as http:
            async with http.delete(self.base_url + self.location, headers=headers) as r:
                return r.status

    async def close(self) -> None:
        await self.pc.close()


class Publisher(Peer):
    def __init__(self, base_url: str, codec: str = "video/H264", start: int = 0, audio: bool = True,
                 pulse_every: Optional[float] = None, **video):
        super().__init__(base_url)
        # a shared start only for A/V sync checks: the later track bursts to catch up
        self.clock = SharedClock() if pulse_every else None
        self.video = NumberedVideoTrack(start=start, clock=self.clock, **video)
        prefer(self.pc.addTransceiver(self.video, direction="sendonly"), codec)
        if audio:
            self.audio = ToneAudioTrack(pulse_every=pulse_every, clock=self.clock)
            self.pc.addTransceiver(self.audio, direction="sendonly")

    async def publish(self, room: str, key: str) -> int:
        return await self.post(f"/whip/{room}", token=key)


class LateVideoTrack(NumberedVideoTrack):
    """Numbered frames that start once ``go`` is set (a publisher that connects, then sends
    nothing for a while, or never); ``first_sent``: the wall clock (``time.time()``) of the
    first frame, its media time 0."""

    def __init__(self, start: int = 0) -> None:
        super().__init__(start=start)
        self.go = asyncio.Event()
        self.first_sent: Optional[float] = None

    async def recv(self) -> VideoFrame:
        await self.go.wait()
        frame = await super().recv()
        if self.first_sent is None:
            self.first_sent = time.time()
        return frame

    def number_at(self, wall: float) -> float:
        """The number of the frame being sent at wall time ``wall``."""
        assert self.first_sent is not None
        return self.number - self._count + (wall - self.first_sent) * self.fps


class LatePublisher(Peer):
    """A WHIP publisher of a ``LateVideoTrack`` (``video``; H.264, no audio)."""

    def __init__(self, base_url: str, start: int = 0) -> None:
        super().__init__(base_url)
        self.video = LateVideoTrack(start)
        prefer(self.pc.addTransceiver(self.video, direction="sendonly"), "video/H264")

    async def publish(self, room: str, key: str) -> int:
        return await self.post(f"/whip/{room}", token=key)


class Viewer(Peer):
    """Plays a room and decodes: numbers read from every video frame (``PlayedFrame``s, which
    also say whether the receiver saw a loss before them), audio frame count."""

    def __init__(self, base_url: str, codecs: Optional[list[str]] = None, audio: bool = True,
                 remb: bool = True, report_interval: Optional[float] = None):
        """``remb`` False: a player that sends no bandwidth estimate (it does not offer the
        abs-send-time extension aiortc estimates from, nor transport-cc). ``report_interval``:
        seconds between its receiver reports on average, as a browser paces them (aiortc's
        own pace, about 1 s, when None)."""
        super().__init__(base_url)
        if not remb:
            self.unoffered_extensions = ("abs-send-time", "transport-wide-cc")
        self.numbers: list[PlayedFrame] = []
        self.frame_times: list[float] = []
        self.audio_frames = 0
        self.audio_peak = 0.0
        self.first_frame: Optional[asyncio.Future] = None
        self._tasks: list[asyncio.Task] = []
        t = self.pc.addTransceiver("video", direction="recvonly")
        if codecs:
            caps = RTCRtpSender.getCapabilities("video").codecs
            t.setCodecPreferences([c for c in caps if c.mimeType in codecs or c.mimeType.endswith("rtx")])
        self.losses = ReceiverLosses(t.receiver)
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        if report_interval is not None:
            for transceiver in self.pc.getTransceivers():
                report_every(transceiver.receiver, report_interval)
        self.pc.on("track", self._on_track)
        self.first_frame = asyncio.get_event_loop().create_future()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self._played(read_number(frame.to_ndarray(format="bgr24")), frame.pts)
                    self.frame_times.append(time.monotonic())
                    if not self.first_frame.done():
                        self.first_frame.set_result(time.monotonic())
                else:
                    self.audio_frames += 1
                    self.audio_peak = max(self.audio_peak, float(np.abs(frame.to_ndarray()).max()))
        except MediaStreamError:
            pass

    def _played(self, number: int, pts: int) -> None:
        previous = self.numbers[-1] if self.numbers else None
        self.numbers.append(self.losses.played(number, pts, previous))

    async def play(self, room: str) -> int:
        return await self.post(f"/whep/{room}")

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await super().close()


class SizedViewer(Viewer):
    """A ``Viewer`` that also records each video frame's size (the low rendition's tests and benchmark)."""

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.frames: list[tuple[int, int, int]] = []  # (number, width, height)

    async def _consume(self, track) -> None:
        if track.kind != "video":
            return await super()._consume(track)
        try:
            while True:
                frame = await track.recv()
                img = frame.to_ndarray(format="bgr24")
                self.frames.append((read_number(img), frame.width, frame.height))
                self._played(self.frames[-1][0], frame.pts)
                if not self.first_frame.done():
                    self.first_frame.set_result(True)
        except MediaStreamError:
            pass
