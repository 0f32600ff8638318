"""``write_segments``: the second pass, muxing video and audio into MPEG-TS segments.

Video packets (:class:`VideoPackets`) and the AAC track are merged in time order; a
packet goes into the segment its time falls in on the :class:`Timeline`. Afterwards the
segments' boundaries are made contiguous (a planned segment that got no packet is
covered by the previous one) and the playlist is written (``packaging.playlist``).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import av

from mediaserver.packaging.files import PLAYLIST, segment_name
from mediaserver.packaging.options import AUDIO_RATE, TB, TICKS, PackagingError
from mediaserver.packaging.playlist import render_playlist
from mediaserver.packaging.scan import RecordingSource
from mediaserver.packaging.timeline import Timeline
from mediaserver.packaging.video import VideoPackets

__all__ = ["write_segments"]


def write_segments(
    hls: Path,
    source: RecordingSource,
    timeline: Timeline,
    video: Optional[VideoPackets],
    progress: Callable[[float], None],
) -> list[dict]:
    """Write ``seg-NNNNN.ts`` and the playlist into ``hls``; returns the segments
    (``index``, ``file``, ``start``, ``duration`` in ticks, ``discontinuity``, ``bytes``)."""
    hls.mkdir()
    has_audio = source.audio.active
    sources: list[Iterator[tuple]] = []
    container = None
    if video is not None:
        container = source.open()
        sources.append(video.items(container))
    if has_audio:
        sources.append((timeline.segment_of(p.pts), p.pts, 1, p) for p in source.audio.packets())
    written: dict[int, dict] = {}
    current = None
    cur_index = -1
    streams: dict[int, Any] = {}
    last_progress = 0.0
    try:
        for seg, t, kind, packet in heapq.merge(*sources, key=lambda item: item[:3]):
            source.check_stop()
            if seg > cur_index:
                if current is not None:
                    current.close()
                cur_index = seg
                path = hls / segment_name(seg)
                current = av.open(str(path), "w", format="mpegts")
                streams = {}
                if video is not None:
                    streams[0] = current.add_mux_stream(
                        "h264", width=source.width, height=source.height, time_base=TB)
                if has_audio:
                    streams[1] = current.add_mux_stream("aac", rate=AUDIO_RATE, time_base=TB)
                written[seg] = {"index": seg, "file": path.name, "start": timeline.starts[seg]}
            packet.stream = streams[kind]
            current.mux(packet)
            frac = t / timeline.end
            if frac - last_progress >= 0.01:
                last_progress = frac
                progress(20 + 75 * min(1.0, frac))
    finally:
        if current is not None:
            current.close()
        if container is not None:
            container.close()
    segments = _contiguous(hls, written, timeline)
    (hls / PLAYLIST).write_text(render_playlist(segments, TICKS))
    return segments


def _contiguous(hls: Path, written: dict[int, dict], timeline: Timeline) -> list[dict]:
    if not written:
        raise PackagingError("no segment could be written")
    order = sorted(written)
    segments = []
    disc_pending = False
    for n, i in enumerate(order):
        seg = written[i]
        # a planned segment that got no packet is covered by the previous one
        for skipped in range((order[n - 1] + 1) if n else 0, i):
            disc_pending |= timeline.starts[skipped] in timeline.disc
        start = 0 if n == 0 else seg["start"]
        end = written[order[n + 1]]["start"] if n + 1 < len(order) else timeline.end
        seg["start"] = start
        seg["duration"] = end - start
        seg["discontinuity"] = n > 0 and (disc_pending or seg["start"] in timeline.disc)
        disc_pending = False
        seg["bytes"] = (hls / seg["file"]).stat().st_size
        segments.append(seg)
    return segments
