"""The publisher process: a noisy numbered H.264 track at a pinned bitrate, plus Opus, over WHIP."""

from __future__ import annotations

import asyncio
import collections
import fractions
import time
from typing import Any

import cv2
import numpy as np
from av import VideoFrame

from common.children import command_loop
from common.viewers import wait_connected
from fanout import KEY, ROOM
from tests.support.peers import VIDEO_CLOCK, NumberedVideoTrack, Peer, ToneAudioTrack, draw_number, prefer

__all__ = ["NoisyNumberedTrack", "publisher_encoder", "publisher_worker"]


class NoisyNumberedTrack(NumberedVideoTrack):
    """``NumberedVideoTrack`` with a band of fresh luma noise in every frame, so that an
    encoder has something to spend its bitrate on; the barcode rows and the number stay
    clean. Frames are made in I420 directly (no per-frame BGR conversion in the encoder)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(7)
        self._band = (self.height // 4, self.height * 3 // 4)
        #: (frame number, CLOCK_MONOTONIC when it was made) for the last minute of frames
        self.captures: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=60 * self.fps)

    async def recv(self) -> VideoFrame:
        delay = self.clock.start() + self._count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.captures.append((self.number, time.monotonic()))
        i420 = cv2.cvtColor(draw_number(self.number, self.width, self.height),
                            cv2.COLOR_BGR2YUV_I420)
        top, bottom = self._band
        i420[top:bottom] = self._rng.integers(64, 192, (bottom - top, self.width), np.uint8)
        frame = VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.number += 1
        self._count += 1
        return frame


def publisher_encoder(kbps: int) -> type:
    """aiortc's H.264 encoder with a pinned bitrate (aiortc's follows REMB between 0.5 and
    3 Mbit/s) and x264 preset ``veryfast`` (OBS's default) instead of ``medium``, so the
    synthetic publisher leaves the 2-core box to the server and the viewers."""
    import av
    from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder

    class PublisherH264Encoder(H264Encoder):
        @property
        def target_bitrate(self) -> int:
            return kbps * 1000

        @target_bitrate.setter
        def target_bitrate(self, bitrate: int) -> None:
            pass  # ignore REMB

        def _encode_frame(self, frame: VideoFrame, force_keyframe: bool) -> Any:
            if self.codec is None:
                self.codec = av.CodecContext.create("libx264", "w")
                self.codec.width, self.codec.height = frame.width, frame.height
                self.codec.bit_rate = kbps * 1000
                self.codec.pix_fmt = "yuv420p"
                self.codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
                self.codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
                self.codec.options = {"level": "31", "tune": "zerolatency", "preset": "veryfast"}
                self.codec.profile = "Baseline"
            frame.pict_type = (av.video.frame.PictureType.I if force_keyframe
                               else av.video.frame.PictureType.NONE)
            data = b"".join(bytes(p) for p in self.codec.encode(frame))
            if data:
                yield from self._split_bitstream(data)

    return PublisherH264Encoder


async def publisher_worker(base_url: str, width: int, height: int, fps: int, kbps: int) -> None:
    """Publish the noisy numbered track (H.264) and a tone (Opus) over WHIP."""
    import aiortc.rtcrtpsender as rtcrtpsender

    stock_get_encoder, encoder = rtcrtpsender.get_encoder, publisher_encoder(kbps)
    rtcrtpsender.get_encoder = lambda codec: (  # type: ignore[assignment]
        encoder() if codec.mimeType.lower() == "video/h264" else stock_get_encoder(codec))
    peer = Peer(base_url)
    track = NoisyNumberedTrack(width=width, height=height, fps=fps)
    prefer(peer.pc.addTransceiver(track, direction="sendonly"), "video/H264")
    peer.pc.addTransceiver(ToneAudioTrack(), direction="sendonly")

    async def handle(msg: dict) -> dict:
        if msg["cmd"] == "publish":
            status = await peer.post(f"/whip/{ROOM}", token=KEY)
            if status != 201:
                return {"error": f"WHIP {status}: {getattr(peer, 'error', '')[:200]}"}
            await wait_connected(peer.pc)
            return {"status": status}
        out: dict[str, Any] = {"t": time.monotonic(), "frames": track._count,
                               "captures": list(track.captures) if msg.get("captures") else []}
        for t in peer.pc.getTransceivers():
            for s in (await t.sender.getStats()).values():
                if s.type == "outbound-rtp":
                    out[t.kind] = [s.packetsSent, s.bytesSent]
        return out

    try:
        await command_loop(handle)
    finally:
        await peer.close()
