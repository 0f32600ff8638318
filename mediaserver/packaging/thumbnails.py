"""``Thumbnails``: a sprite of tiles at fixed media times, its index (JSON and WebVTT
``#xywh=`` cues), and the poster (the most detailed tile's frame, at video size).

Tile times are planned on the timeline (one every ``thumb_interval_s``, the interval
growing for long recordings so there are at most ``max_thumbs``); in remuxed stretches
only the GOPs that contain a tile time are decoded (``windows``). An audio-only replay
gets a placeholder poster.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import deque
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np

from mediaserver.packaging.options import MS_TICKS, TICKS, PackageOptions, PackagingError
from mediaserver.packaging.timeline import Timeline

__all__ = ["Thumbnails", "plan_thumbnails", "write_images"]


class Thumbnails:
    """Tiles at fixed media times, taken from the first frame at or after each time;
    the most detailed tile's frame becomes the poster."""

    def __init__(self, times: list[int], tile: tuple[int, int], poster: tuple[int, int], interval_ms: int) -> None:
        self.times = times
        self.interval_ms = interval_ms
        #: key packet index -> end of its GOP (ticks): the remuxed GOPs to decode for tiles
        self.windows: dict[int, int] = {}
        self.pending = deque(times)
        self.tile = tile
        self.poster_size = poster
        self.tiles: dict[int, np.ndarray] = {}
        self.poster: Optional[np.ndarray] = None
        self.poster_t: Optional[int] = None
        self.poster_score = -1.0

    def wants(self, t: int) -> bool:
        return bool(self.pending) and self.pending[0] <= t

    def next_time(self) -> Optional[int]:
        return self.pending[0] if self.pending else None

    def offer(self, t: int, frame: av.VideoFrame) -> None:
        if not self.pending or self.pending[0] > t:
            return
        img = frame.to_ndarray(format="bgr24", width=self.tile[0], height=self.tile[1])
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        score = float(gray.std()) + 0.1 * float(gray.mean())
        while self.pending and self.pending[0] <= t:
            tt = self.pending.popleft()
            self.tiles[tt] = img
            if score > self.poster_score:
                self.poster_score = score
                self.poster_t = tt
                self.poster = frame.to_ndarray(
                    format="bgr24", width=self.poster_size[0], height=self.poster_size[1]
                )

    def write(self, out: Path, columns: int) -> dict:
        interval_ms = self.interval_ms
        tw, th = self.tile
        times = [t for t in self.times if t in self.tiles]
        if not times:
            return {}
        cols = min(columns, len(times))
        rows = -(-len(times) // cols)
        sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
        tiles = []
        for i, t in enumerate(times):
            x, y = (i % cols) * tw, (i // cols) * th
            sheet[y:y + th, x:x + tw] = self.tiles[t]
            tiles.append({"t_ms": t // MS_TICKS, "x": x, "y": y})
        _imwrite(out / "thumbs.jpg", sheet, 75)
        index = {
            "image": "thumbs.jpg", "interval_ms": interval_ms, "width": tw, "height": th,
            "columns": cols, "rows": rows, "tiles": tiles,
        }
        (out / "thumbs.json").write_text(json.dumps(index, indent=1))
        cues = ["WEBVTT", ""]
        for i, tile in enumerate(tiles):
            start = tile["t_ms"]
            end = tiles[i + 1]["t_ms"] if i + 1 < len(tiles) else start + interval_ms
            cues += [f"{_vtt_time(start)} --> {_vtt_time(end)}",
                     f"thumbs.jpg#xywh={tile['x']},{tile['y']},{tw},{th}", ""]
        (out / "thumbs.vtt").write_text("\n".join(cues))
        return index


def _vtt_time(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _imwrite(path: Path, img: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PackagingError(f"cannot encode {path.name}")
    path.write_bytes(buf.tobytes())


def _audio_poster(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), 32, np.uint8)
    for i in range(24):  # a stylised waveform
        x = int(w * (0.2 + 0.6 * i / 23))
        amp = int(h * 0.25 * abs(math.sin(i * 0.7)) + h * 0.03)
        cv2.line(img, (x, h // 2 - amp), (x, h // 2 + amp), (200, 200, 200), max(2, w // 120))
    return img


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)



def plan_thumbnails(timeline: Timeline, width: int, height: int, options: PackageOptions) -> Thumbnails:
    """The tile times of a replay with video, and the GOPs to decode for them."""
    o = options
    interval = max(o.thumb_interval_s, timeline.end / TICKS / o.max_thumbs)
    interval_ms = int(round(interval * 1000))
    step = interval_ms * MS_TICKS
    times = list(range(0, timeline.end, step))
    tw = o.thumb_width
    th = _even(tw * height / width)
    pw = min(width, o.poster_max_width)
    ph = _even(pw * height / width)
    thumbs = Thumbnails(times, (tw, th), (pw, ph), interval_ms)
    # in remuxed stretches, decode from the keyframe before each tile time
    vi = timeline.vindex
    stretches = timeline.stretches
    for s in stretches:
        if s.kind != "copy":
            continue
        keys = [i for i in range(s.first, s.last + 1) if vi.key[i]]
        key_pts = [timeline.pts(i) for i in keys]
        for t in times:
            if not s.start <= t < s.end and not (s is stretches[0] and t < s.start):
                continue
            n = max(0, bisect.bisect_right(key_pts, t) - 1)
            gop_end = key_pts[n + 1] if n + 1 < len(keys) else s.end
            thumbs.windows[keys[n]] = gop_end
    return thumbs


def write_images(out: Path, thumbs: Optional[Thumbnails], options: PackageOptions) -> dict:
    """Write the poster and the thumbnails into ``out``; returns their manifest fields."""
    if thumbs is None:  # audio only: a placeholder poster for the catalog
        _imwrite(out / "poster.jpg", _audio_poster((640, 360)), 85)
        return {"poster": "poster.jpg", "poster_size": [640, 360], "thumbs": None}
    index = thumbs.write(out, options.thumb_columns)
    poster = thumbs.poster
    if poster is None:
        poster = np.zeros((thumbs.poster_size[1], thumbs.poster_size[0], 3), np.uint8)
    _imwrite(out / "poster.jpg", poster, 85)
    return {
        "poster": "poster.jpg",
        "poster_size": [poster.shape[1], poster.shape[0]],
        "poster_ms": (thumbs.poster_t or 0) // MS_TICKS,
        "thumbs": {
            "image": "thumbs.jpg", "index": "thumbs.json", "vtt": "thumbs.vtt",
            "interval_ms": thumbs.interval_ms, "count": len(index.get("tiles", [])),
            "tile": [thumbs.tile[0], thumbs.tile[1]],
        } if index else None,
    }
