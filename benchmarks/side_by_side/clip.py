"""The stream of every step: one VP8 clip encoded once by the parent (``vp8_clip``),
saved for the feeder processes (``save_clip``/``load_clip``), and its packet rate."""

from __future__ import annotations

import fractions
import functools
from pathlib import Path

import av
import numpy as np

VIDEO_CLOCK = 90000
FPS = 30


def save_clip(frames: tuple[bytes, ...], path: Path) -> None:
    path.write_bytes(b"".join(len(f).to_bytes(4, "big") + f for f in frames))


@functools.lru_cache(maxsize=2)
def load_clip(path: str) -> tuple[bytes, ...]:
    """The clip the parent encoded once (``save_clip``): feeders do not encode it again."""
    data, frames, pos = Path(path).read_bytes(), [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        frames.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return tuple(frames)


@functools.lru_cache(maxsize=2)
def vp8_clip(seconds: int = 6, kbps: int = 1500, width: int = 640, height: int = 480) -> tuple[bytes, ...]:
    """``seconds`` of VP8 frames at ``kbps`` (a keyframe every 2 s), a band of noise so
    the encoder spends its bitrate, and motion."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = kbps * 1000
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = 2 * FPS
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "minrate": f"{kbps}k", "maxrate": f"{kbps}k", "b": f"{kbps}k"}
    rng = np.random.default_rng(5)
    frames: list[bytes] = []
    for i in range(seconds * FPS):
        img = np.full((height * 3 // 2, width), 96, np.uint8)
        img[height // 4: height * 3 // 4] = rng.integers(64, 192, (height // 2, width), np.uint8)
        img[: height // 8, (i * 8) % width: (i * 8) % width + 32] = 255
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        frames += [bytes(p) for p in codec.encode(frame)]
    frames += [bytes(p) for p in codec.encode(None)]
    return tuple(frames)


def stream_rate(clip: tuple[bytes, ...]) -> float:
    """RTP packets per second of the clip as aiortc's VP8 packetizer cuts it."""
    from aiortc.codecs.vpx import Vp8Encoder

    return sum(len(Vp8Encoder._packetize(f, 0)) for f in clip) * FPS / len(clip)
