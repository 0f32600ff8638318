"""The replay's HLS playlist (m3u8), written and read in this one place.

:func:`render_playlist` writes the VOD playlist packaging produces
(``EXT-X-PLAYLIST-TYPE:VOD``, ``EXT-X-ENDLIST``, ``EXT-X-DISCONTINUITY`` where the encoder
changes); :func:`parse_playlist` reads one back into segments with their start on the
replay's timeline; :func:`signed_playlist` rewrites it so that every segment URI carries
the caller's query (the replay token), and optionally stops at a preview limit: the
preview playlist keeps the segments that start before the limit, and ends with
``EXT-X-ENDLIST`` like the full one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

__all__ = ["Segment", "parse_playlist", "render_playlist", "segment_start", "signed_playlist", "target_duration"]


@dataclass(frozen=True)
class Segment:
    uri: str
    start_ms: int
    duration_ms: int


def target_duration(longest: int, clock_rate: int) -> int:
    """``EXT-X-TARGETDURATION``: the longest segment (in ``clock_rate`` ticks), rounded up to seconds."""
    return max(1, math.ceil(longest / clock_rate))


def render_playlist(segments: Iterable[dict], clock_rate: int) -> str:
    """The VOD playlist of ``segments`` (dicts with ``file``, ``start`` and ``duration``
    in ``clock_rate`` ticks, ``discontinuity``), in order."""
    segments = list(segments)
    longest = max(s["duration"] for s in segments)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target_duration(longest, clock_rate)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for seg in segments:
        if seg["discontinuity"]:
            lines.append("#EXT-X-DISCONTINUITY")
        # rounded boundaries, so the sum of EXTINF never drifts from the media clock
        dur = round((seg["start"] + seg["duration"]) / clock_rate, 3) - round(seg["start"] / clock_rate, 3)
        lines += [f"#EXTINF:{dur:.3f},", seg["file"]]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def parse_playlist(text: str) -> tuple[list[str], list[tuple[list[str], Segment]]]:
    """Split a VOD playlist into its header lines and (tag lines, segment) pairs."""
    header: list[str] = []
    segments: list[tuple[list[str], Segment]] = []
    pending: list[str] = []
    t = 0.0
    duration = 0.0
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "#EXT-X-ENDLIST":
            continue
        if line.startswith("#"):
            if line.startswith("#EXTINF:"):
                duration = float(line[8:].split(",", 1)[0])
            if not segments and not pending and not line.startswith(("#EXTINF", "#EXT-X-DISCONTINUITY")):
                header.append(line)
            else:
                pending.append(line)
            continue
        segments.append((pending, Segment(line, round(t * 1000), round(duration * 1000))))
        t += duration
        pending = []
    return header, segments


def signed_playlist(text: str, query: str, limit_ms: Optional[int] = None) -> str:
    """The playlist with ``?query`` on every segment URI, cut at ``limit_ms`` if given."""
    header, segments = parse_playlist(text)
    if limit_ms is not None:
        segments = [item for item in segments if item[1].start_ms < limit_ms] or segments[:1]
    lines = list(header)
    for tags, seg in segments:
        lines += tags
        lines.append(f"{seg.uri}?{query}" if query else seg.uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segment_start(playlist: Optional[str], name: str) -> Optional[int]:
    """Where segment ``name`` starts in ``playlist`` (None if there is none or not listed)."""
    if playlist is None:
        return None
    for _, seg in parse_playlist(playlist)[1]:
        if seg.uri == name:
            return seg.start_ms
    return None
