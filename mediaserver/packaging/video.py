"""``VideoPackets``: the replay's H.264 packets, in timeline order, from the plan.

H.264 is remuxed (stream copy, packets byte for byte; SPS/PPS are repeated at a segment
start if the keyframe lacks them). A GOP longer than ``max_gop_ms`` (a browser sends
keyframes only when asked) would make one huge segment, so that GOP alone is decoded and
re-encoded with libx264 with keyframes at the planned segment starts. VP8 (and any other
codec) is transcoded to H.264 by one libx264 encoder whose IDR frames are placed exactly
at the planned segment starts (CRF, capped at ``max_bitrate_factor`` x the source's
bitrate). Filler and re-encoded stretches have other parameter sets than the publisher's
stream, so each change of encoder is marked ``EXT-X-DISCONTINUITY`` (timestamps stay
continuous; players only reset their decoder). Thumbnail tiles are taken from the
frames on the way.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Callable, Iterator, Optional

import av
import numpy as np
from av.video.frame import PictureType

from mediaserver.packaging.options import MS_TICKS, TB, TICKS, PackageOptions
from mediaserver.packaging.scan import RecordingSource
from mediaserver.packaging.thumbnails import Thumbnails
from mediaserver.packaging.timeline import Stretch, Timeline

__all__ = ["VideoPackets"]


class VideoPackets:
    """Yields ``(segment, dts, 0, packet)`` for the segmenter (0: the video stream)."""

    def __init__(self, source: RecordingSource, timeline: Timeline, thumbs: Thumbnails,
                 options: PackageOptions) -> None:
        self.source = source
        self.timeline = timeline
        self.thumbs = thumbs
        self.o = options
        self.vindex = source.vindex
        self._black_frame: Optional[av.VideoFrame] = None

    def items(self, container: av.container.InputContainer) -> Iterator[tuple]:
        """Every video packet of the replay, reading the usable source packets again."""
        source = self.source.packet_source(container)
        state = {"next": None}

        def packet_at(index: int) -> av.Packet:
            item = state["next"]
            while item is None or item[0] < index:
                item = next(source)
            state["next"] = None if item[0] == index else item
            return item[1]

        for s in self.timeline.stretches:
            if s.kind == "copy":
                yield from self._copy(s, packet_at)
            else:
                yield from self._encode(s, packet_at)

    def _copy(self, s: Stretch, packet_at: Callable[[int], av.Packet]) -> Iterator[tuple]:
        vi = self.vindex
        starts = set(self.timeline.starts)
        thumbs = self.thumbs
        decoder = None
        window_end = -1
        last_frame = None
        for i in range(s.first, s.last + 1):
            self.source.check_stop()
            packet = packet_at(i)
            pts, dts = vi.pts[i], vi.dts[i]
            if i in self.timeline.pull:
                pts, dts = self.timeline.pull[i], dts - (pts - self.timeline.pull[i])
            out = dec_packet = packet
            if vi.key[i]:
                raw = self.source.annexb(packet)
                full = self.source.with_parameter_sets(raw)  # what a decoder starting here needs
                data = full if pts in starts else raw  # a segment starts with SPS/PPS
                if data is not raw or self.source.avcc:
                    out = av.Packet(data)
                dec_packet = out if full is data else av.Packet(full)
            elif self.source.avcc:
                out = dec_packet = av.Packet(self.source.annexb(packet))
            for p in (out, dec_packet):
                p.time_base = TB
                p.pts = pts
                p.dts = dts
            self.source.stats["packets_copied"] += 1
            # thumbnails: decode only the GOPs that contain a tile time
            if vi.key[i] and i in self.thumbs.windows:
                decoder = self.source.decoder()
                decoder.thread_count = 1
                window_end = self.thumbs.windows[i]
            if decoder is not None:
                try:
                    for frame in decoder.decode(dec_packet):
                        last_frame = frame
                        thumbs.offer(pts if frame.pts is None else frame.pts, frame)
                except av.FFmpegError:
                    pass
                nxt = thumbs.next_time()
                if nxt is None or nxt >= window_end:
                    decoder = None
            nxt_pts = vi.pts[i + 1] if i < s.last else s.end
            if last_frame is not None and thumbs.wants(nxt_pts - 1):
                # a tile time in a hole before the next frame: show the last one
                thumbs.offer(nxt_pts - 1, last_frame)
            yield (self.timeline.segment_of(pts), dts, 0, out)

    def _new_encoder(self) -> av.CodecContext:
        o = self.o
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = self.source.width, self.source.height
        enc.pix_fmt = "yuv420p"
        enc.time_base = TB
        enc.framerate = Fraction(round(self.timeline.fps))
        enc.options = {
            "preset": o.x264_preset,
            "crf": str(o.x264_crf),
            "forced-idr": "1",
            "threads": str(o.threads),
        }
        # IDR frames only where the plan puts segment starts (forced); no B-frames
        params = "bframes=0:keyint=infinite:scenecut=0"
        deltas = np.diff(np.frombuffer(self.vindex.pts, np.int64))
        span = int(deltas[deltas < TICKS].sum())  # time with video, gaps left out
        if span > TICKS and o.max_bitrate_factor > 0:
            # CRF, capped so a transcode is not larger than what the publisher sent
            source_bps = self.source.video_bytes * 8 * TICKS / span
            cap = int(max(o.min_max_bitrate, source_bps * o.max_bitrate_factor) / 1000)
            params += f":vbv-maxrate={cap}:vbv-bufsize={2 * cap}"
        enc.options = dict(enc.options, **{"x264-params": params})
        self.source.stats["encoders_created"] += 1
        return enc

    def _black(self) -> av.VideoFrame:
        if self._black_frame is None:
            img = np.zeros((self.source.height, self.source.width, 3), np.uint8)
            self._black_frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        return self._black_frame

    def _encode(self, s: Stretch, packet_at: Callable[[int], av.Packet]) -> Iterator[tuple]:
        vi = self.vindex
        enc = self._new_encoder()
        idr = deque(t for t in self.timeline.starts if s.start <= t < s.end)  # forced IDR frames
        last = [-1]

        def encode(frame: av.VideoFrame, t: int) -> Iterator[tuple]:
            if t <= last[0]:
                return
            last[0] = t
            if frame.width != self.source.width or frame.height != self.source.height or frame.format.name != "yuv420p":
                frame = frame.reformat(width=self.source.width, height=self.source.height, format="yuv420p")
            self.thumbs.offer(t, frame)
            forced = False
            while idr and idr[0] <= t:
                idr.popleft()
                forced = True
            frame.pts = t
            frame.time_base = TB
            frame.pict_type = PictureType.I if forced else PictureType.NONE
            self.source.stats["frames_encoded"] += 1
            for p in enc.encode(frame):
                yield (self.timeline.segment_of(p.pts), p.dts, 0, p)

        for item in s.items:
            if item[0] == "fill":
                black = self._black()
                for t in self.timeline.fill_times(item[1], item[2]):
                    self.source.check_stop()
                    yield from encode(black, t)
                self.source.stats["video_filled_ms"] = self.source.stats.get("video_filled_ms", 0) + (item[2] - item[1]) // MS_TICKS
                continue
            _, first, last_i = item
            decoder = self.source.decoder()
            decoder.thread_count = self.o.threads
            decoder.thread_type = "AUTO"
            for i in range(first, last_i + 1):
                self.source.check_stop()
                packet = packet_at(i)
                if self.source.codec == "h264" and (vi.key[i] or self.source.avcc):
                    data = self.source.annexb(packet)
                    pkt = av.Packet(self.source.with_parameter_sets(data) if vi.key[i] else data)
                else:
                    pkt = packet
                pkt.time_base = TB
                pkt.pts = self.timeline.pts(i)
                pkt.dts = vi.dts[i] - (vi.pts[i] - pkt.pts)
                try:
                    frames = decoder.decode(pkt)
                except av.FFmpegError:
                    self.source.stats["corrupt_packets"] += 1
                    continue
                for frame in frames:
                    yield from encode(frame, self.timeline.pts(i) if frame.pts is None else frame.pts)
            try:
                for frame in decoder.decode(None):
                    yield from encode(frame, frame.pts)
            except av.FFmpegError:
                pass
            end = vi.pts[last_i + 1] if last_i + 1 < len(vi) else s.end
            self.source.stats["video_encoded_ms"] = self.source.stats.get("video_encoded_ms", 0) + (min(end, s.end) - vi.pts[first]) // MS_TICKS
        for p in enc.encode(None):
            yield (self.timeline.segment_of(p.pts), p.dts, 0, p)
