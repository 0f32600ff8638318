"""``Timeline``: where the replay's segments start, and how each stretch of video is made.

Playlist time equals the broadcast media clock: the playlist starts at 0 (broadcast
start), and every stretch without decodable video -- before the first keyframe, a
publisher reconnect, after the camera stopped -- is filled with black H.264 frames, so
playback time t in the replay is ``t_ms`` of the danmaku sent at that moment, playback
never jumps, and a Media Source player never stalls on a buffered-range hole. A hole too
short to fill (< ``min_fill_ms``) is closed by showing the next keyframe that much early.

H.264 GOPs are remuxed (``copy`` stretches); a GOP longer than ``max_gop_ms``, filler
and any other codec are encoded (``encode`` stretches, one libx264 session each). Segments
start on IDR frames: every stretch starts one (after an ``EXT-X-DISCONTINUITY``), then
the first keyframe (or, when encoding, any frame) at least ``segment_target_ms`` after
the segment start, unless less than ``min_tail_ms`` would remain.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from mediaserver.packaging.options import AAC_TICKS, MS_TICKS, TICKS, PackageOptions, PackagingError
from mediaserver.packaging.scan import RecordingSource

__all__ = ["Stretch", "Timeline"]


@dataclass
class Stretch:
    """Consecutive segments produced one way: ``copy`` (remux of packets
    ``first..last``) or ``encode`` (one libx264 session over ``items``: ``("src", first,
    last)`` decoded packets and ``("fill", start, end)`` black frames)."""

    kind: str
    start: int
    end: int = 0
    first: int = 0
    last: int = 0
    items: list = field(default_factory=list)


class Timeline:
    """The plan of one packaging job, made from what the scan found (all times in ticks)."""

    def __init__(self, source: RecordingSource, options: PackageOptions) -> None:
        self.source = source
        self.o = options
        self.vindex = source.vindex
        self.fps = 30.0
        self.end = 0
        self.starts: list[int] = []
        self.disc: set[int] = set()  # segment starts preceded by EXT-X-DISCONTINUITY
        self.stretches: list[Stretch] = []
        #: keyframes shown early (by < min_fill_ms) to close a hole before them
        self.pull: dict[int, int] = {}

    def plan(self) -> None:
        """Fill ``end``, ``fps``, ``stretches``, ``starts``, ``disc`` and ``pull`` from the
        scan; raises :class:`PackagingError` if nothing in the recording is decodable."""
        o = self.o
        vi = self.vindex
        runs = self._runs() if len(vi) and self.source.width else []
        v_end = max((r[3] for r in runs), default=0)
        self.end = max(v_end, self.source.audio.end_ticks if self.source.audio.active else 0)
        if self.end <= 0:
            raise PackagingError("nothing in the recording could be decoded")
        self.source.stats["video_runs"] = len(runs)
        if not runs:
            self.source.video_stream = None
            self._plan_audio_only()
            return
        if len(vi) >= 2:
            deltas = np.diff(np.frombuffer(vi.pts, np.int64))
            deltas = deltas[(deltas > 0) & (deltas < TICKS)]
            if len(deltas):
                self.fps = min(60.0, max(1.0, TICKS / float(np.median(deltas))))
        # the video timeline: black filler wherever there is no decodable video
        min_fill = o.min_fill_ms * MS_TICKS
        pieces: list[tuple] = []
        t = 0
        for first, last, start, end in runs:
            if start - t >= min_fill:
                pieces.append(("fill", t, start))
            elif start > t:
                # too short to fill: show the keyframe a little early instead of leaving
                # a hole (a Media Source player would have to skip over it)
                self.pull[first] = t
                start = t
            pieces.append(("src", first, last, start, end))
            t = end
        if self.end - t >= min_fill:
            pieces.append(("fill", t, self.end))
        # stretches: remux the H.264 GOPs that are short enough, encode everything else
        stretches: list[Stretch] = []

        def encode_item(item: tuple, start: int) -> None:
            if stretches and stretches[-1].kind == "encode":
                stretches[-1].items.append(item)
            else:
                stretches.append(Stretch("encode", start, items=[item]))

        for piece in pieces:
            if piece[0] == "fill":
                encode_item(piece, piece[1])
                continue
            _, first, last, start, end = piece
            if self.source.codec != "h264":
                encode_item(("src", first, last), start)
                continue
            for kind, a, b in self._gop_groups(first, last, end):
                if kind == "copy":
                    stretches.append(Stretch("copy", self.pts(a), first=a, last=b))
                else:
                    encode_item(("src", a, b), self.pts(a))
        for i, s in enumerate(stretches):
            s.end = stretches[i + 1].start if i + 1 < len(stretches) else self.end
        self.stretches = stretches
        # segment starts: every stretch starts one; then the first candidate frame at
        # least segment_target after the previous start, leaving min_tail
        target, tail = o.segment_target_ms * MS_TICKS, o.min_tail_ms * MS_TICKS
        starts: list[int] = []
        for i, s in enumerate(stretches):
            seg_start = 0 if i == 0 and not starts else s.start
            starts.append(seg_start)
            if i > 0:
                self.disc.add(seg_start)
            for c in self._candidates(s):
                if c - starts[-1] >= target and s.end - c >= tail:
                    starts.append(c)
        self.starts = starts

    def _runs(self) -> list[tuple[int, int, int, int]]:
        """Decodable video runs ``(first, last, start, end)``: split at manifest gaps and
        at long holes that end on a keyframe; each run starts at its first keyframe."""
        vi, o = self.vindex, self.o
        gaps = []
        for g in self.source.manifest.get("gaps") or []:
            try:
                a, b = int(g[0]) * MS_TICKS, int(g[1]) * MS_TICKS
            except (TypeError, ValueError, IndexError):
                continue
            if b > a:
                gaps.append((a, b))
        auto = o.auto_gap_ms * MS_TICKS
        bounds = [0]
        for i in range(1, len(vi)):
            p0, p1 = vi.pts[i - 1], vi.pts[i]
            if any(a < p1 and b > p0 for a, b in gaps) or (p1 - p0 >= auto and vi.key[i]):
                bounds.append(i)
        bounds.append(len(vi))
        runs = []
        dropped = 0
        for r0, r1 in zip(bounds, bounds[1:]):
            first = next((i for i in range(r0, r1) if vi.key[i]), None)
            if first is None:
                dropped += r1 - r0
                continue
            dropped += first - r0
            last = r1 - 1
            deltas = [vi.pts[i + 1] - vi.pts[i] for i in range(max(first, last - 30), last)]
            deltas = [d for d in deltas if d > 0]
            frame = int(np.median(deltas)) if deltas else TICKS // 30
            frame = min(max(frame, TICKS // 100), TICKS // 5)
            runs.append([first, last, vi.pts[first], vi.pts[last] + frame])
        for i in range(len(runs) - 1):  # the last frame lasts until the next run at most
            runs[i][3] = min(runs[i][3], runs[i + 1][2])
        self.source.stats["video_undecodable_packets"] = dropped
        return [tuple(r) for r in runs]  # type: ignore[misc]

    def _gop_groups(self, first: int, last: int, end: int) -> list[tuple[str, int, int]]:
        """Split a run of H.264 packets into remuxable groups of GOPs and too-long GOPs."""
        vi = self.vindex
        keys = [i for i in range(first, last + 1) if vi.key[i]]
        limit = self.o.max_gop_ms * MS_TICKS
        groups: list[list] = []
        for n, k in enumerate(keys):
            nxt = keys[n + 1] if n + 1 < len(keys) else last + 1
            gop_end = vi.pts[nxt] if nxt <= last else end
            kind = "encode" if limit and gop_end - self.pts(k) > limit else "copy"
            if groups and groups[-1][0] == kind:
                groups[-1][2] = nxt - 1
            else:
                groups.append([kind, k, nxt - 1])
        return [tuple(g) for g in groups]  # type: ignore[misc]

    def pts(self, i: int) -> int:
        return self.pull.get(i, self.vindex.pts[i])

    def fill_times(self, a: int, b: int) -> Iterator[int]:
        step = TICKS / self.o.fill_fps
        k = 0
        while True:
            t = a + int(round(k * step))
            if t >= b:
                return
            yield t
            k += 1

    def _candidates(self, s: Stretch) -> Iterator[int]:
        vi = self.vindex
        if s.kind == "copy":
            for i in range(s.first, s.last + 1):
                if vi.key[i]:
                    yield self.pts(i)
            return
        for item in s.items:
            if item[0] == "fill":
                yield from self.fill_times(item[1], item[2])
            else:
                for i in range(item[1], item[2] + 1):
                    yield self.pts(i)

    def _plan_audio_only(self) -> None:
        target, tail = self.o.segment_target_ms * MS_TICKS, self.o.min_tail_ms * MS_TICKS
        starts = [0]
        while True:
            c = -(-(starts[-1] + target) // AAC_TICKS) * AAC_TICKS
            if self.end - c < tail:
                break
            starts.append(c)
        self.starts = starts

    def segment_of(self, t: int) -> int:
        return max(0, bisect.bisect_right(self.starts, t) - 1)

