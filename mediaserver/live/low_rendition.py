"""``LowRendition``: one extra, low video rendition of a room for viewers on weak networks.

At most one per room, and only while some viewer watches it: the room starts it for the
first viewer switched down and stops it when the last one leaves it. It is a sink on the
room's video fanout: whole frames (``FrameAssembler``) are decoded, scaled to at most
``HEIGHT`` lines and encoded again at ``BITRATE`` by aiortc's H.264 encoder (libx264,
baseline, zero latency) on a worker thread of its own, never on the event loop that
forwards media. Its RTP timestamps follow the source's frame times, and a viewer switched
between the renditions continues its own timeline (``Fanout``). The encoded packets feed the rendition's own
``Fanout``, whose viewers get header rewriting, NACKs and keyframes like any other; a
keyframe request to it makes the encoder's next frame an IDR.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import random
import threading
import time
from typing import Optional

import av
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtp import RtpPacket

from core.tasks import TaskOwner
from mediaserver.recording.frame_assembler import FrameAssembler
from mediaserver.sfu.fanout import Fanout

__all__ = ["BITRATE", "HEIGHT", "LowRendition"]

HEIGHT = 360
BITRATE = 400_000
_QUEUE = 8  # frames waiting for the encoder; beyond, frames are dropped to the next keyframe
_TB90K = fractions.Fraction(1, 90000)
_DEPAYLOAD = {"H264": h264_depayload, "VP8": vp8_depayload}
_DECODER = {"H264": "h264", "VP8": "vp8"}


class LowRendition:
    def __init__(self, source: Fanout, tasks: TaskOwner, logger: logging.LoggerAdapter,
                 keyframe_min_interval: float = 0.5, height: int = HEIGHT, bitrate: int = BITRATE) -> None:
        self.source = source
        self.log = logger
        self.height = height
        self.bitrate = bitrate
        self.fanout = Fanout("video", tasks, logger, keyframe_min_interval)
        self._assembler = FrameAssembler("video", self._frame, request_keyframe=source.request_keyframe)
        self._frames: queue.Queue = queue.Queue(_QUEUE)
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._force_keyframe = threading.Event()
        self._skip_to_keyframe = False
        self._codec: Optional[str] = None
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.started_at: Optional[float] = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.fanout.attach_source(self._keyframe_requested)
        self._thread = threading.Thread(target=self._work, name="low-rendition", daemon=True)
        self._thread.start()
        self.source.add_sink(self._assembler.push)
        self.source.request_keyframe()  # the encoder starts from a keyframe of the source
        self.started_at = time.monotonic()
        self.log.info("low rendition started (%dp, %d kbit/s)", self.height, self.bitrate // 1000)

    async def stop(self) -> None:
        """Stop encoding and wait for the worker; the fanout keeps its (now idle) viewers."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.source.remove_sink(self._assembler.push)
        self._put(None)
        await asyncio.to_thread(thread.join)
        self.fanout.detach_source(self._keyframe_requested)
        self.log.info("low rendition stopped after %d frames", self.frames_out)

    async def _keyframe_requested(self) -> None:
        self._force_keyframe.set()

    # ------------------------------------------------------------ loop side
    def _frame(self, generation: int, rtp_ext: int, keyframe: bool, payloads: list) -> None:
        codec = self.source.codec
        if codec not in _DEPAYLOAD:
            return
        self.frames_in += 1
        if self._skip_to_keyframe and not keyframe:
            return
        if self._put((codec, rtp_ext, keyframe, list(payloads))):
            self._skip_to_keyframe = False
        else:
            self.dropped += 1
            self._skip_to_keyframe = True
            self.source.request_keyframe()

    def _put(self, item) -> bool:
        try:
            self._frames.put_nowait(item)
            return True
        except queue.Full:
            if item is None:  # stopping: make room for the end marker
                self._frames.get_nowait()
                self._frames.put_nowait(None)
            return False

    def _emit(self, payloads: list[bytes], timestamp: int) -> None:
        if self._thread is None:
            return
        arrival = time.perf_counter()
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=102, marker=int(i == len(payloads) - 1), sequence_number=self._seq,
                               timestamp=timestamp & 0xFFFFFFFF, ssrc=self._ssrc, payload=payload)
            self._seq = (self._seq + 1) & 0xFFFF
            self.fanout.on_packet(packet, "H264", arrival)
        self.frames_out += 1

    # ------------------------------------------------------------ worker thread
    def _work(self) -> None:
        decoder = None
        encoder = H264Encoder()
        encoder.target_bitrate = self.bitrate
        loop = self._loop
        assert loop is not None
        while True:
            item = self._frames.get()
            if item is None:
                return
            codec, rtp_ext, keyframe, payloads = item
            if decoder is None or codec != self._codec:
                decoder, self._codec = av.CodecContext.create(_DECODER[codec], "r"), codec
            try:
                data = b"".join(_DEPAYLOAD[codec](p) for p in payloads)
                frames = decoder.decode(av.Packet(data))
            except av.FFmpegError:
                continue  # a broken frame: the next keyframe repairs the picture
            for frame in frames:
                if frame.height > self.height:
                    width = max(2, round(frame.width * self.height / frame.height / 2) * 2)
                    frame = frame.reformat(width=width, height=self.height, format="yuv420p")
                frame.pts = rtp_ext
                frame.time_base = _TB90K
                force = self._force_keyframe.is_set()
                self._force_keyframe.clear()
                out, timestamp = encoder.encode(frame, force_keyframe=force)
                if out:
                    loop.call_soon_threadsafe(self._emit, out, timestamp)
