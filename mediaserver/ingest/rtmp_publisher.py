"""``RtmpPublisher``: an RTMP encoder as a room's publisher.

The room treats it like a WHIP ``Publisher`` (``LivePublisher``): same busy/stale
policy, same broadcast and recording. It turns FLV tags into RTP for the room's
fanouts, once per room: H.264 access units are packetized as they are
(``H264Packetizer``), AAC is transcoded to Opus (``AacToOpus``) on a worker thread of its
own so the event loop that forwards media never encodes. Sender reports for both kinds
come from the RTMP timeline, so viewers keep audio and video in sync.

An RTMP encoder cannot be asked for a keyframe: viewers that join, or drop, wait for
the encoder's next one (its keyframe interval; 1-2 s is what OBS and the README advise).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, Optional

from aiortc.rtp import RtpPacket

from mediaserver.sfu.fanout import Fanout
from core.close_listeners import CloseListener, CloseListeners
from core.cpu import background_executor
from core.logs import context_logger
from core.tasks import TaskOwner
from .aac_opus import OPUS_RATE, AacToOpus
from .flv import FlvError, parse_aac, parse_avc, parse_avc_config, split_nal_units
from .h264_rtp import H264Packetizer

__all__ = ["RtmpPublisher"]

_NTP_EPOCH = 2208988800
_REPORT_EVERY = 1.0  # seconds between sender reports per kind


def _ntp(wall: float) -> int:
    return int((wall + _NTP_EPOCH) * (1 << 32))


class RtmpPublisher:
    role = "publisher"

    def __init__(
        self,
        *,
        room_name: str,
        on_closed: Callable[["RtmpPublisher"], Awaitable[None]],
        room_tasks: TaskOwner,
        stale_after: float,
        fanouts: dict[str, Fanout],
        disconnect: Callable[[], None],
        peer: str,
        opus_bitrate: int = 64000,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.room_name = room_name
        self.peer = peer
        self.created = time.monotonic()
        self.user_id: Optional[int] = None
        self.log = context_logger("stagepass.rtmp", room_name, self.id[:8])
        self.tasks = TaskOwner(self.log)
        self.codecs: dict[str, str] = {"video": "H264", "audio": "OPUS"}
        self._fanouts = fanouts
        self._on_closed = on_closed
        #: a listener registered after the close runs on the room's tasks
        self._close_listeners = CloseListeners(self.log, late=room_tasks)
        self._disconnect = disconnect  #: ends the encoder's connection
        self._stale_after = stale_after
        self._opus_bitrate = opus_bitrate
        self._attached = False
        self._closed = False
        self._bytes = 0
        self._last_media: Optional[float] = None
        #: resolved with the ``time.perf_counter()`` of the first media tag (``LivePublisher``)
        self.first_media: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._video = H264Packetizer()
        self._audio: Optional[AacToOpus] = None
        self._audio_worker: Optional[ThreadPoolExecutor] = None
        self._audio_start_ms: Optional[int] = None
        #: wall clock of RTMP time 0 (set by the first media tag): the NTP base of both kinds
        self._epoch: Optional[float] = None
        self._reported: dict[str, float] = {}
        self.frames = {"video": 0, "audio": 0}  #: media tags forwarded

    # -------------------------------------------------------- the room's side
    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self) -> None:
        for fanout in self._fanouts.values():
            fanout.attach_source(self._keyframe_request)
        self._attached = True
        self.tasks.spawn(self._watch_media(), name="media-watchdog")

    def detach(self) -> None:
        if not self._attached:
            return
        self._attached = False
        for fanout in self._fanouts.values():
            fanout.detach_source(self._keyframe_request)

    async def _keyframe_request(self) -> None:
        """RTMP has no way to ask the encoder for a keyframe: viewers wait for the next."""

    def last_media(self) -> Optional[float]:
        return self._last_media

    def is_stale(self) -> bool:
        if self._closed:
            return True
        last = self._last_media
        if last is None:
            return time.monotonic() - self.created > self._stale_after
        return time.perf_counter() - last > self._stale_after

    async def bytes_received(self) -> Optional[int]:
        return self._bytes

    async def _watch_media(self) -> None:
        """End a publisher whose encoder keeps the connection but sends nothing."""
        while True:
            await asyncio.sleep(self._stale_after / 4)
            if self.is_stale():
                self.log.warning("no media for %.1f s, closing", self._stale_after)
                await self.close()
                return

    async def close(self) -> None:
        """Stop forwarding, end the audio worker and the RTMP connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.detach()
        self._disconnect()
        await self.tasks.close()
        if self._audio_worker is not None:
            await asyncio.to_thread(self._audio_worker.shutdown, True, cancel_futures=True)
        self.log.info("closed (%d video, %d audio tags forwarded)", self.frames["video"], self.frames["audio"])
        await self._on_closed(self)
        await self._close_listeners.run()

    def on_close(self, listener: CloseListener) -> None:
        """Call ``listener`` once this publisher closed (a media worker tells its control
        plane); at once if it already has."""
        self._close_listeners.add(listener)

    # -------------------------------------------------------- the encoder's side
    def on_video(self, timestamp_ms: int, tag: bytes) -> None:
        """One FLV video tag. ``FlvError`` for what cannot be forwarded (not H.264...)."""
        self._bytes += len(tag)
        packet = parse_avc(tag)
        if packet.is_config:
            self._video.config = parse_avc_config(packet.body)
            self.log.info("H.264 sequence header: %d SPS, %d PPS", len(self._video.config.sps),
                          len(self._video.config.pps))
            return
        if packet.is_end or not packet.body:
            return
        config = self._video.config
        if config is None:
            raise FlvError("H.264 video before its sequence header (AVCDecoderConfigurationRecord)")
        arrival = self._arrived(timestamp_ms)
        pts = timestamp_ms + packet.composition_ms
        packets = self._video.packetize(split_nal_units(packet.body, config.length_size), pts)
        self.frames["video"] += 1
        if not self._attached:
            return
        fanout = self._fanouts["video"]
        if packets and self._report_due("video", arrival):
            fanout.on_sender_report(_ntp(self._wall(pts)), packets[0].timestamp, 90000)
        for rtp in packets:
            fanout.on_packet(rtp, "H264", arrival)

    def on_audio(self, timestamp_ms: int, tag: bytes) -> None:
        """One FLV audio tag: AAC frames go to the Opus encoder on the audio worker."""
        self._bytes += len(tag)
        packet = parse_aac(tag)
        if packet.is_config:
            if self._audio is None:
                self._audio = AacToOpus(packet.body, bitrate=self._opus_bitrate)
                # live audio: below the loop that forwards media, above exports and packaging
                self._audio_worker = background_executor(f"rtmp-audio-{self.room_name}", 1, niceness=5)
                self.log.info("AAC sequence header: transcoding to Opus at %d bit/s", self._opus_bitrate)
            return
        if self._audio is None or self._audio_worker is None:
            raise FlvError("AAC audio before its sequence header (AudioSpecificConfig)")
        self._arrived(timestamp_ms)
        if self._audio_start_ms is None:
            self._audio_start_ms = timestamp_ms
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._audio_worker, self._audio.transcode, packet.body)
        future.add_done_callback(self._audio_done)

    def _audio_done(self, future: asyncio.Future) -> None:
        if future.cancelled() or self._closed:
            return
        if future.exception() is not None:
            self.log.error("AAC -> Opus failed", exc_info=future.exception())
            self.tasks.spawn(self.close(), name="close-on-audio-error")
            return
        packets: list[RtpPacket] = future.result()
        self.frames["audio"] += 1
        if not packets or not self._attached:
            return
        arrival = time.perf_counter()
        fanout = self._fanouts["audio"]
        if self._report_due("audio", arrival) and self._audio is not None and self._audio_start_ms is not None:
            first = packets[0].timestamp
            media_ms = self._audio_start_ms + ((first - self._audio.first_ts) & 0xFFFFFFFF) * 1000 / OPUS_RATE
            fanout.on_sender_report(_ntp(self._wall(media_ms)), first, OPUS_RATE)
        for rtp in packets:
            fanout.on_packet(rtp, "OPUS", arrival)

    def _arrived(self, timestamp_ms: int) -> float:
        now = time.perf_counter()
        if self._epoch is None:
            self._epoch = time.time() - timestamp_ms / 1000
            self.log.info("first media from %s", self.peer)
            self.first_media.set_result(now)
        self._last_media = now
        return now

    def _wall(self, media_ms: float) -> float:
        assert self._epoch is not None
        return self._epoch + media_ms / 1000

    def _report_due(self, kind: str, now: float) -> bool:
        if now - self._reported.get(kind, 0.0) < _REPORT_EVERY:
            return False
        self._reported[kind] = now
        return True
