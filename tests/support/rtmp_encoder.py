"""Debian's ``ffmpeg`` as an RTMP encoder for tests and benchmarks: numbered frames (the
barcode of ``tests.support.peers``) piped in at the frame rate, a 440 Hz tone as AAC, published
to ``rtmp://127.0.0.1:PORT/live/KEY`` as OBS would (H.264 without B-frames)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from typing import Optional

from tests.support.peers import HEIGHT, WIDTH, draw_number

__all__ = ["FfmpegRtmpPublisher", "free_port", "have_ffmpeg"]


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FfmpegRtmpPublisher:
    def __init__(self, url: str, fps: int = 30, gop: int = 30, audio: bool = True, start: int = 0) -> None:
        self.url = url
        self.fps = fps
        self.gop = gop
        self.audio = audio
        self.next_number = start
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._feeder: Optional[asyncio.Task] = None
        self.stderr = b""

    async def start(self) -> None:
        args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(self.fps),
                "-i", "pipe:0"]
        if self.audio:
            args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-map", "0:v", "-map", "1:a",
                     "-c:a", "aac", "-b:a", "96k", "-shortest"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
                 "-pix_fmt", "yuv420p", "-g", str(self.gop), "-b:v", "600k", "-f", "flv", self.url]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        self._feeder = asyncio.ensure_future(self._feed())

    async def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        t0 = time.monotonic()
        sent = 0
        try:
            while True:
                self.proc.stdin.write(draw_number(self.next_number).tobytes())
                await self.proc.stdin.drain()
                self.next_number += 1
                sent += 1
                await asyncio.sleep(max(0.0, t0 + sent / self.fps - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def stop(self, timeout: float = 10.0) -> int:
        """End the input: ffmpeg flushes and ends the stream (``deleteStream``)."""
        assert self.proc is not None and self.proc.stdin is not None
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        return await self.wait(timeout)

    async def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            self.stderr = await asyncio.wait_for(self.proc.stderr.read(), timeout)
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def kill(self) -> None:
        """Drop the connection without ending the stream (an encoder that crashed)."""
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
