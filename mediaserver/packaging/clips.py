"""Clips: a piece ``[start_ms, end_ms)`` of a packaged replay, cut into an HLS clip.

A clip is remuxed from the replay's HLS (H.264 + AAC, playlist time = the broadcast media
clock), never re-encoded as a whole:

* cut on a keyframe (within ``KEYFRAME_TOLERANCE_MS``): every packet is copied byte for
  byte into one segment, ``body.ts``;
* cut between keyframes: only the frames from ``start_ms`` to the next keyframe are
  decoded and encoded again (libx264, one IDR first) into ``head.ts``, with the audio of
  that stretch copied; from the keyframe on everything is copied into ``body.ts``. The two
  encoders' parameter sets differ, so the playlist marks the change with
  ``EXT-X-DISCONTINUITY`` (timestamps stay continuous), as the replay packager does.

Clip time starts at 0: a frame at broadcast time ``t`` is at ``t - start_ms`` in the clip,
so a danmaku of the broadcast at ``t_ms`` belongs to the clip at ``t_ms - start_ms``.

Files: ``{data_dir}/clips/{room}/{clip id}/`` with ``clip.json`` (what the clip is),
``index.m3u8`` and its segments. The work is CPU-bound and blocking: run :func:`cut_clip`
off the event loop.
"""

from __future__ import annotations

import fractions
import json
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import av

__all__ = [
    "CLIP_FILES", "CLIP_ID_RE", "Clip", "ClipError", "ClipLibrary", "KEYFRAME_TOLERANCE_MS", "cut_clip",
]

KEYFRAME_TOLERANCE_MS = 20  #: a cut this close to a keyframe starts on it, without re-encoding
CLIP_ID_RE = re.compile(r"^[0-9a-f]{12}$")
CLIP_FILES = frozenset({"index.m3u8", "head.ts", "body.ts"})
_META = "clip.json"
_TB90K = fractions.Fraction(1, 90000)


class ClipError(ValueError):
    """The clip cannot be cut (outside the replay, no video...); the message says why."""


def _ms(packet_or_frame, origin: float) -> float:
    return float(packet_or_frame.pts * packet_or_frame.time_base) * 1000 - origin


def cut_clip(playlist: Path, start_ms: int, end_ms: int, out_dir: Path) -> dict:
    """Cut ``[start_ms, end_ms)`` of the HLS replay ``playlist`` into ``out_dir``.

    Returns ``{"duration_ms", "reencoded_ms", "segments"}``. ``out_dir`` is created."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with av.open(str(playlist)) as src:
        if not src.streams.video:
            raise ClipError("the replay has no video to cut a clip from")
        video = src.streams.video[0]
        audio = src.streams.audio[0] if src.streams.audio else None
        origin = 0.0  # playlist time is the broadcast media clock, starting at 0
        src.seek(int(max(0, start_ms - 1) * 1000), backward=True)  # AV_TIME_BASE: microseconds
        cutter = _Cutter(out_dir, video, audio, start_ms, end_ms)
        streams = [s for s in (video, audio) if s is not None]
        for packet in src.demux(*streams):
            if packet.pts is None or packet.size == 0:
                continue
            t = _ms(packet, origin)
            if packet.stream is video:
                if not cutter.video(packet, t):
                    break
            else:
                cutter.audio(packet, t)
        return cutter.finish()


class _Cutter:
    def __init__(self, out_dir: Path, video, audio, start_ms: int, end_ms: int) -> None:
        self.out_dir = out_dir
        self.src_video, self.src_audio = video, audio
        self.start, self.end = start_ms, end_ms
        self.offset = start_ms * 90  # 90 kHz ticks subtracted from every timestamp
        self.phase = "before"  # before -> head (re-encoding) -> body (copying) -> done
        self.head: Optional[_Output] = None
        self.body: Optional[_Output] = None
        self.decoder = None
        self.encoder_stream = None
        self.key_ms: Optional[float] = None  # where the copied part starts
        self.pending_audio: list = []

    # ------------------------------------------------------------ video
    def video(self, packet, t: float) -> bool:
        """False once the clip's end is reached."""
        if t >= self.end:
            return False
        if packet.is_keyframe and t >= self.start - KEYFRAME_TOLERANCE_MS:
            if self.phase != "body":
                self._to_body(t)
        if self.phase == "body":
            self.body.write(packet, self.src_video, self.offset)  # type: ignore[union-attr]
            return True
        # before the first keyframe in the clip: decode from the keyframe before it
        if self.decoder is None:
            if not packet.is_keyframe:
                return True  # a seek can land before a keyframe: skip to it
            self.decoder = av.CodecContext.create(self.src_video.codec_context.name, "r")
            self.decoder.extradata = self.src_video.codec_context.extradata
        for frame in self.decoder.decode(packet):
            ft = _ms(frame, 0.0) if frame.pts is not None else t
            if ft >= self.start:
                self._encode(frame, ft)
        return True

    def _encode(self, frame, t: float) -> None:
        if self.head is None:
            self.phase = "head"
            self.head = _Output(self.out_dir / "head.ts", self.src_video, self.src_audio, encode=True,
                                width=frame.width, height=frame.height)
        frame.pts = int(round(t * 90)) - self.offset
        frame.time_base = _TB90K
        frame.pict_type = av.video.frame.PictureType.NONE
        self.head.encode(frame)

    def _to_body(self, t: float) -> None:
        if self.head is not None:
            self.head.flush()
        else:  # the clip starts on this keyframe, which may be a few ms before start_ms
            self.offset = min(self.offset, int(round(t * 90)))
        self.phase = "body"
        self.key_ms = t
        self.body = _Output(self.out_dir / "body.ts", self.src_video, self.src_audio, encode=False)
        for packet, at in self.pending_audio:  # audio from the keyframe on waited for the body
            self.audio(packet, at)
        self.pending_audio.clear()

    # ------------------------------------------------------------ audio
    def audio(self, packet, t: float) -> None:
        """Audio before the copied keyframe goes with the head, from it on with the body;
        until that keyframe is known, it waits."""
        if t < self.start or t >= self.end:
            return
        if self.key_ms is None:
            self.pending_audio.append((packet, t))
            return
        target = self.body if self.head is None or t >= self.key_ms else self.head
        target.write(packet, self.src_audio, self.offset)  # type: ignore[union-attr]

    # ------------------------------------------------------------ end
    def finish(self) -> dict:
        if self.phase == "head" and self.head is not None:
            self.head.flush()
            for packet, _ in self.pending_audio:  # the clip ends before the next keyframe
                self.head.write(packet, self.src_audio, self.offset)
        outputs = [o for o in (self.head, self.body) if o is not None]
        if not outputs:
            raise ClipError("no video in this part of the replay")
        for o in outputs:
            o.close()
        segments = [{"file": o.path.name, "duration_ms": max(1, o.duration_ms())} for o in outputs]
        if self.head is not None and self.key_ms is not None:  # the head ends where the copy starts
            segments[0]["duration_ms"] = max(1, round(self.key_ms - self.start))
        duration = sum(s["duration_ms"] for s in segments)
        _write_playlist(self.out_dir / "index.m3u8", segments)
        reencoded = segments[0]["duration_ms"] if self.head is not None else 0
        return {"duration_ms": duration, "reencoded_ms": reencoded, "segments": segments}


class _Output:
    """One MPEG-TS segment of the clip: copied packets, or the head's re-encoded video."""

    def __init__(self, path: Path, video, audio, *, encode: bool, width: int = 0, height: int = 0) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format="mpegts")
        if encode:
            stream = self.container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = _TB90K
            stream.codec_context.time_base = _TB90K
            stream.codec_context.options = {"preset": "veryfast", "crf": "20", "x264-params": "bframes=0"}
            self.video = stream
        else:
            self.video = self.container.add_stream_from_template(video)
        self.audio = self.container.add_stream_from_template(audio) if audio is not None else None
        self.encoding = encode
        self.first: Optional[int] = None
        self.last: Optional[int] = None

    def _note(self, pts: int) -> None:
        self.first = pts if self.first is None else min(self.first, pts)
        self.last = pts if self.last is None else max(self.last, pts)

    def write(self, packet, source_stream, offset: int) -> None:
        out = self.video if source_stream.type == "video" else self.audio
        if out is None:
            return
        scale = source_stream.time_base / _TB90K
        packet.pts = int(packet.pts * scale) - offset
        packet.dts = int(packet.dts * scale) - offset if packet.dts is not None else packet.pts
        packet.time_base = _TB90K
        packet.stream = out
        self._note(packet.pts + int((packet.duration or 0) * scale))
        self.container.mux(packet)

    def encode(self, frame) -> None:
        self._note(frame.pts + 3000)  # one 30 fps frame
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def flush(self) -> None:
        if self.encoding:
            for packet in self.video.encode(None):
                self.container.mux(packet)
            self.encoding = False

    def duration_ms(self) -> int:
        if self.first is None or self.last is None:
            return 0
        return int((self.last - self.first) / 90)

    def close(self) -> None:
        self.container.close()


def _write_playlist(path: Path, segments: list[dict]) -> None:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{math.ceil(max(s['duration_ms'] for s in segments) / 1000)}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for i, s in enumerate(segments):
        if i:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{s['duration_ms'] / 1000:.3f},", s["file"]]
    lines.append("#EXT-X-ENDLIST")
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class Clip:
    id: str
    room: str
    directory: Path
    meta: dict

    @property
    def ready(self) -> bool:
        return self.meta.get("status") == "ready"

    @property
    def teaser(self) -> bool:
        return bool(self.meta.get("teaser"))

    def summary(self) -> dict:
        m = self.meta
        return {
            "id": self.id, "room": self.room, "recording": m["recording"], "title": m.get("title") or "",
            "start_ms": m["start_ms"], "end_ms": m["end_ms"], "duration_ms": m.get("duration_ms"),
            "reencoded_ms": m.get("reencoded_ms"), "teaser": self.teaser, "status": m.get("status"),
            "created_at": m.get("created_at"), "playlist_url": f"/clips/{self.id}/index.m3u8",
            "poster_url": f"/replay/{m['recording']}/poster.jpg", "page_url": f"/static/clip.html?clip={self.id}",
        }


class ClipLibrary:
    """The clips on this node's disk: ``{data_dir}/clips/{room}/{id}/``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "clips"

    def create(self, room: str, recording: str, start_ms: int, end_ms: int, title: str, teaser: bool,
               playlist: Path) -> Clip:
        """Cut and record a clip (blocking: call off the event loop)."""
        clip_id = secrets.token_hex(6)
        directory = self.root / room / clip_id
        meta = {"id": clip_id, "room": room, "recording": recording, "start_ms": start_ms, "end_ms": end_ms,
                "title": title, "teaser": teaser, "created_at": int(time.time()), "status": "processing"}
        work = self.root / room / f".{clip_id}.tmp"
        try:
            meta.update(cut_clip(playlist, start_ms, end_ms, work), status="ready")
            (work / _META).write_text(json.dumps(meta))
            os.replace(work, directory)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return Clip(clip_id, room, directory, meta)

    def find(self, clip_id: str) -> Optional[Clip]:
        if not CLIP_ID_RE.match(clip_id) or not self.root.is_dir():
            return None
        for room_dir in self.root.iterdir():
            directory = room_dir / clip_id
            if (directory / _META).is_file():
                return Clip(clip_id, room_dir.name, directory, json.loads((directory / _META).read_text()))
        return None

    def clips(self, room: Optional[str] = None) -> list[Clip]:
        """Newest first."""
        if not self.root.is_dir():
            return []
        rooms = [self.root / room] if room else [d for d in self.root.iterdir() if d.is_dir()]
        out = []
        for room_dir in rooms:
            if not room_dir.is_dir() or room_dir.is_symlink():
                continue
            for directory in room_dir.iterdir():
                if CLIP_ID_RE.match(directory.name) and (directory / _META).is_file():
                    out.append(Clip(directory.name, room_dir.name, directory,
                                    json.loads((directory / _META).read_text())))
        return sorted(out, key=lambda c: -int(c.meta.get("created_at") or 0))

    def update(self, clip: Clip, **changes) -> Clip:
        meta = {**clip.meta, **changes}
        tmp = clip.directory / f".{_META}.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, clip.directory / _META)
        return Clip(clip.id, clip.room, clip.directory, meta)

    def delete(self, clip: Clip) -> None:
        shutil.rmtree(clip.directory)

    def file(self, clip: Clip, name: str) -> Optional[Path]:
        """A clip's file by a name of the fixed set, never through a link."""
        if name not in CLIP_FILES:
            return None
        path = clip.directory / name
        return path if path.is_file() and not path.is_symlink() else None
