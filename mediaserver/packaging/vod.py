"""VOD packaging: a finished recording becomes an HLS replay, a poster and a thumbnail strip.

Input: a recording folder ``{data_dir}/recordings/{room}/{broadcast}/`` written by the
recorder (``manifest.json`` plus one media file: H.264 + Opus in MPEG-TS, or VP8 / audio
only in Matroska/WebM; packet times in milliseconds on the broadcast media clock; gaps
for publisher reconnects listed in the manifest; the file may be cut short by a crash).

Output, in the same folder (built in a temporary folder, then ``hls/`` is swapped in
atomically -- Linux ``renameat2(RENAME_EXCHANGE)`` -- and the images replaced, so a re-run
replaces the previous result cleanly and a reader never sees a half-written playlist)::

    hls/index.m3u8      VOD playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST)
    hls/seg-00000.ts    MPEG-TS segments: H.264 video + AAC-LC 48 kHz audio
    poster.jpg          the most detailed of the thumbnail frames, at video size
    thumbs.jpg          sprite of thumbnails, one every ``thumb_interval_s``
    thumbs.json         where each tile is and which time it shows
    thumbs.vtt          the same as WebVTT ``#xywh=`` cues (video.js, Plyr...)

and ``manifest.json`` updated (atomically) with status ``processing`` -> ``ready`` |
``failed``, ``progress``, ``hls_duration_ms``, ``hls_bytes``, ``segments``...

**Timeline.** Playlist time equals the broadcast media clock: segment timestamps are the
recording's (ms -> 90 kHz), the playlist starts at 0 (broadcast start), and every stretch
without decodable video -- before the first keyframe, a publisher reconnect, after the
camera stopped -- is filled with black H.264 frames (and the audio with silence), so
playback time t in the replay is ``t_ms`` of the danmaku sent at that moment, playback
never jumps, and a Media Source player never stalls on a buffered-range hole. A hole too
short to fill (< ``min_fill_ms``) is closed by showing the next keyframe that much early.

**Video.** H.264 is remuxed (stream copy, packets byte for byte; SPS/PPS are repeated at
a segment start if the keyframe lacks them). Segments start on IDR frames: at the first
keyframe at least ``segment_target_ms`` after the segment start, unless less than
``min_tail_ms`` would remain. A GOP longer than ``max_gop_ms`` (a browser sends
keyframes only when asked) would make one huge segment, so that GOP alone is decoded and
re-encoded with libx264 with keyframes every ``segment_target_ms``. VP8 (and any other
codec) is transcoded to H.264 by one libx264 encoder whose IDR frames are placed exactly
at the planned segment starts (CRF, capped at ``max_bitrate_factor`` x the source's
bitrate). Filler and re-encoded stretches have other parameter sets than the publisher's
stream, so each change of encoder is marked ``EXT-X-DISCONTINUITY`` (timestamps stay
continuous; players only reset their decoder).

**Audio.** Opus (any decodable codec) is decoded, placed on the media clock sample by
sample (holes become silence, overlaps are trimmed), and encoded by one AAC encoder over
the whole timeline, so audio is continuous across segments, gaps and discontinuities.
Stereo whose two channels are identical (what browsers send for a microphone) becomes
mono AAC.

The work is CPU-heavy and blocking: call :func:`package_recording` from a worker thread
(``mediaserver.packaging.jobs.PackagingJobs`` does).
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import heapq
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from array import array
from collections import deque
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from mediaserver.recording.recorder import MANIFEST_NAME, read_manifest, write_manifest

__all__ = [
    "JobCancelled",
    "MANIFEST_NAME",
    "PackageOptions",
    "PackagingError",
    "package_recording",
    "read_manifest",
    "update_manifest",
]

HLS_DIR = "hls"
PLAYLIST = "index.m3u8"
OUTPUT_FILES = ("poster.jpg", "thumbs.jpg", "thumbs.json", "thumbs.vtt")
TMP_PREFIX = ".vod-tmp-"

TICKS = 90000  #: the packager's clock: MPEG-TS 90 kHz
TB = Fraction(1, TICKS)
AUDIO_RATE = 48000
AAC_FRAME = 1024
AAC_TICKS = AAC_FRAME * TICKS // AUDIO_RATE  # 1920: one AAC frame on the 90 kHz clock
_MS = TICKS // 1000


class PackagingError(Exception):
    """The recording cannot be packaged; the message goes into the manifest."""


class JobCancelled(Exception):
    """The job was asked to stop (server shutdown); the manifest stays ``processing``."""


@dataclass(frozen=True)
class PackageOptions:
    segment_target_ms: int = 4000  #: a segment ends at the first keyframe after this
    min_tail_ms: int = 1500  #: no cut if less than this would remain in the stretch
    max_gop_ms: int = 10000  #: longer H.264 GOPs are re-encoded (0: always remux)
    auto_gap_ms: int = 2000  #: a video hole this long ending on a keyframe is filled
    min_fill_ms: int = 100  #: shorter holes are not filled (the previous frame lasts)
    fill_fps: int = 30  #: frame rate of black filler video
    x264_preset: str = "veryfast"
    x264_crf: int = 23
    max_bitrate_factor: float = 1.5  #: encoded video at most this x the source's bitrate
    min_max_bitrate: int = 400_000  #: ... but the cap is never below this (bits/s)
    threads: int = 2  #: encoder / decoder threads
    audio_bitrate_per_channel: int = 64000
    aac_coder: str = "fast"  #: FFmpeg's AAC quantizer search; "twoloop" costs twice the CPU
    thumb_interval_s: float = 10.0
    thumb_width: int = 160
    thumb_columns: int = 10
    max_thumbs: int = 600  #: the interval grows for long recordings
    poster_max_width: int = 1280
    progress_interval_s: float = 0.5  #: at most one manifest progress write per interval
    #: the status a finished job leaves: "packaged" when the replay is then uploaded to
    #: object storage (``mediaserver.storage.uploads`` makes it "ready")
    done_status: str = "ready"


# ---------------------------------------------------------------------- manifest


_manifest_lock = threading.Lock()


def update_manifest(directory: Path, **changes: Any) -> dict:
    """Read, merge ``changes`` into, and atomically rewrite the manifest; returns it.
    Fields this module does not own (the recorder's) are kept as they are."""
    with _manifest_lock:
        manifest = read_manifest(directory)
        manifest.update(changes)
        write_manifest(directory, manifest)
        return manifest


# ---------------------------------------------------------------------- H.264 helpers
_START = b"\x00\x00\x01"
_ANNEXB_PREFIX = b"\x00\x00\x00\x01"


def _nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of every NAL unit of an Annex-B access unit (start: the
    header byte; end: exclusive, trailing zero bytes of the next start code removed)."""
    units = []
    i = data.find(_START)
    while i >= 0:
        h = i + 3
        if h >= len(data):
            break
        j = data.find(_START, h)
        end = len(data) if j < 0 else j
        while end > h and data[end - 1] == 0:
            end -= 1
        units.append((data[h] & 0x1F, h, end))
        i = j
    return units


def _h264_first_vcl(data: bytes) -> int:
    """Type of the first slice NAL (5: IDR), 0 if none; stops at the first slice."""
    i = data.find(_START)
    while i >= 0 and i + 3 < len(data):
        t = data[i + 3] & 0x1F
        if 1 <= t <= 5:
            return t
        i = data.find(_START, i + 3)
    return 0


def _avcc_config(extradata: Optional[bytes]) -> Optional[tuple[int, list[bytes]]]:
    """``(length_size, [SPS..., PPS...])`` from an avcC record, None if not avcC."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1
    sets: list[bytes] = []
    pos = 5
    try:
        for count_mask in (0x1F, 0xFF):
            count = extradata[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                sets.append(bytes(extradata[pos + 2:pos + 2 + size]))
                pos += 2 + size
    except IndexError:
        pass
    return length_size, sets


def _avcc_to_annexb(data: bytes, length_size: int) -> bytes:
    out = []
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        out.append(_ANNEXB_PREFIX + data[pos:pos + size])
        pos += size
    return b"".join(out)


def _adts_header(payload_size: int, channels: int) -> bytes:
    """7-byte ADTS header: MPEG-4 AAC-LC, 48 kHz (index 3), no CRC."""
    length = payload_size + 7
    return bytes((
        0xFF, 0xF1,
        (1 << 6) | (3 << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,
        0xFC,
    ))


# ---------------------------------------------------------------------- directory swap
_RENAME_EXCHANGE = 2
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _swap_dir(new: Path, target: Path, trash: Path) -> None:
    """Put ``new`` at ``target``; the previous ``target`` (if any) ends up at ``trash``."""
    if target.exists():
        if _exchange(new, target):
            new.rename(trash)
            return
        target.rename(trash)
    new.rename(target)


# ---------------------------------------------------------------------- plan
@dataclass
class _Stretch:
    """Consecutive segments produced one way: ``copy`` (remux of packets
    ``first..last``) or ``encode`` (one libx264 session over ``items``: ``("src", first,
    last)`` decoded packets and ``("fill", start, end)`` black frames)."""

    kind: str
    start: int
    end: int = 0
    first: int = 0
    last: int = 0
    items: list = field(default_factory=list)


class _VideoIndex:
    """What the scan learnt about the video packets that are usable (monotonic dts),
    indexed 0..n-1 in demux order; ``ordinal`` is their position among all packets."""

    def __init__(self) -> None:
        self.pts = array("q")
        self.dts = array("q")
        self.key = bytearray()
        self.ordinal = array("q")

    def __len__(self) -> int:
        return len(self.pts)


# ---------------------------------------------------------------------- audio
class _AudioTimeline:
    """Decoded audio placed on the media clock, encoded to AAC into a temporary file.

    ``pos`` is the next sample (48 kHz, from media time 0) to be written; a frame
    starting later than ``pos`` is preceded by silence, one starting earlier is trimmed.
    Small jitter (< ``tolerance``) is absorbed so steady audio is not chopped.

    Browsers announce stereo Opus and send mono speech: the first ``probe_samples`` are
    held back, and if both channels are identical the AAC is mono (half the bits and
    half the encoder time); any later stereo content is then mixed down."""

    tolerance = AUDIO_RATE // 50  # 20 ms
    probe_samples = 10 * AUDIO_RATE

    def __init__(self, path: Path, bitrate_per_channel: int, coder: str = "fast") -> None:
        self.path = path
        self.bitrate_per_channel = bitrate_per_channel
        self.coder = coder
        self.channels = 0
        self.layout = ""
        self.encoder: Optional[av.CodecContext] = None
        self.resampler: Optional[av.AudioResampler] = None
        self.file = None
        self.pos = 0
        self.frames = 0
        self.buf = np.zeros((1, 0), np.float32)
        self.index_pts = array("q")
        self.index_size = array("q")
        self.silence_samples = 0
        self.trimmed_samples = 0
        self.source_channels = 0
        self.pending: list[tuple[int, np.ndarray]] = []
        self.pending_samples = 0

    @property
    def active(self) -> bool:
        return self.encoder is not None

    def settle(self) -> None:
        """Decide the channel count (if still probing) and encode what was held back."""
        if self.encoder is not None or not self.pending:
            return
        stereo = self.source_channels == 2 and any(
            float(np.max(np.abs(d[0] - d[1]))) > 1e-4 for _, d in self.pending if d.shape[1]
        )
        self._open(2 if stereo else 1)
        pending, self.pending = self.pending, []
        for start, data in pending:
            self._place(start, data)

    def _open(self, channels: int) -> None:
        self.channels = channels
        self.layout = "mono" if self.channels == 1 else "stereo"
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate = AUDIO_RATE
        enc.layout = self.layout
        enc.format = "fltp"
        enc.bit_rate = self.bitrate_per_channel * self.channels
        enc.time_base = Fraction(1, AUDIO_RATE)
        enc.options = {"aac_coder": self.coder}
        enc.open()
        self.encoder = enc
        self.buf = np.zeros((self.channels, 0), np.float32)
        self.file = open(self.path, "wb")

    def add(self, frame: av.AudioFrame, t_ticks: int) -> None:
        if self.resampler is None:
            self.source_channels = 1 if frame.layout.nb_channels == 1 else 2
            layout = "mono" if self.source_channels == 1 else "stereo"
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        start = t_ticks * AUDIO_RATE // TICKS
        chunks = [f.to_ndarray() for f in self.resampler.resample(frame)]
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)
        if self.encoder is None:
            self.pending.append((start, data))
            self.pending_samples += data.shape[1]
            if self.pending_samples >= self.probe_samples:
                self.settle()
            return
        self._place(start, data)

    def _place(self, start: int, data: np.ndarray) -> None:
        if data.shape[0] > self.channels:
            data = data.mean(axis=0, keepdims=True)
        if start - self.pos > self.tolerance:
            self._silence(start - self.pos)
        elif self.pos - start > self.tolerance:
            cut = self.pos - start
            self.trimmed_samples += min(cut, data.shape[1])
            data = data[:, cut:]
            if data.shape[1] == 0:
                return
        self._push(data.astype(np.float32, copy=False))

    def _silence(self, samples: int) -> None:
        self.silence_samples += samples
        while samples > 0:
            n = min(samples, AUDIO_RATE)
            self._push(np.zeros((self.channels, n), np.float32))
            samples -= n

    def _push(self, data: np.ndarray) -> None:
        self.pos += data.shape[1]
        buf = np.concatenate((self.buf, data), axis=1) if self.buf.shape[1] else data
        n = buf.shape[1] // AAC_FRAME
        for i in range(n):
            self._encode(buf[:, i * AAC_FRAME:(i + 1) * AAC_FRAME])
        self.buf = buf[:, n * AAC_FRAME:].copy() if buf.shape[1] % AAC_FRAME else buf[:, :0]

    def _encode(self, block: Optional[np.ndarray]) -> None:
        enc = self.encoder
        if block is None:
            packets = enc.encode(None)  # type: ignore[union-attr]
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=self.layout)
            frame.sample_rate = AUDIO_RATE
            frame.pts = self.frames * AAC_FRAME
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.frames += 1
            packets = enc.encode(frame)  # type: ignore[union-attr]
        for packet in packets:
            if packet.pts is None or packet.pts < 0:  # encoder priming before media time 0
                continue
            payload = bytes(packet)
            data = _adts_header(len(payload), self.channels) + payload
            self.file.write(data)  # type: ignore[union-attr]
            self.index_pts.append(packet.pts * TICKS // AUDIO_RATE)
            self.index_size.append(len(data))

    @property
    def end_ticks(self) -> int:
        return self.pos * TICKS // AUDIO_RATE

    def finish(self, end_ticks: int) -> None:
        """Silence up to ``end_ticks``, pad the last AAC frame, flush the encoder."""
        if self.encoder is None:
            return
        end = -(-end_ticks * AUDIO_RATE // TICKS)
        if end > self.pos:
            self._silence(end - self.pos)
        rest = self.buf.shape[1]
        if rest:
            self._push(np.zeros((self.channels, AAC_FRAME - rest), np.float32))
        self._encode(None)
        self.file.close()  # type: ignore[union-attr]

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()

    def packets(self) -> Iterator[av.Packet]:
        """The encoded AAC (ADTS) packets with pts in 90 kHz ticks."""
        with open(self.path, "rb") as f:
            for pts, size in zip(self.index_pts, self.index_size):
                packet = av.Packet(f.read(size))
                packet.time_base = TB
                packet.pts = pts
                packet.dts = pts
                packet.duration = AAC_TICKS
                yield packet


# ---------------------------------------------------------------------- thumbnails
class _Thumbs:
    """Tiles at fixed media times, taken from the first frame at or after each time;
    the most detailed tile's frame becomes the poster."""

    def __init__(self, times: list[int], tile: tuple[int, int], poster: tuple[int, int]) -> None:
        self.times = times
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

    def write(self, out: Path, columns: int, interval_ms: int) -> dict:
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
            tiles.append({"t_ms": t // _MS, "x": x, "y": y})
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


# ---------------------------------------------------------------------- packager
class _Packager:
    def __init__(
        self,
        directory: Path,
        manifest: dict,
        options: PackageOptions,
        work: Path,
        stop: Optional[threading.Event],
        progress: Callable[[float], None],
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.dir = directory
        self.manifest = manifest
        self.o = options
        self.work = work
        self.stop = stop
        self.progress = progress
        self.log = log
        self.stats: dict[str, Any] = {
            "encoders_created": 0, "frames_encoded": 0, "packets_copied": 0,
            "video_dropped_packets": 0, "corrupt_packets": 0,
        }
        self.input_error: Optional[str] = None
        self.video_stream: Optional[av.stream.Stream] = None
        self.audio_stream: Optional[av.stream.Stream] = None
        self.codec = ""
        self.avcc: Optional[tuple[int, list[bytes]]] = None
        self.vindex = _VideoIndex()
        self.video_bytes = 0
        self.audio = _AudioTimeline(work / "audio.adts", options.audio_bitrate_per_channel, options.aac_coder)
        self.width = self.height = 0
        self.fps = 30.0
        self.end = 0
        self.starts: list[int] = []
        self.disc: set[int] = set()  # segment starts preceded by EXT-X-DISCONTINUITY
        self.stretches: list[_Stretch] = []
        self.thumbs: Optional[_Thumbs] = None
        self.thumb_windows: dict[int, int] = {}  # key packet index -> end of its GOP (ticks)
        self.sps_pps: dict[int, bytes] = {}
        #: keyframes shown early (by < min_fill_ms) to close a hole before them
        self.pull: dict[int, int] = {}
        self._ticks = 0

    # -------------------------------------------------------------- helpers
    def _check_stop(self) -> None:
        self._ticks += 1
        if self._ticks % 64 == 0 and self.stop is not None and self.stop.is_set():
            raise JobCancelled()

    def _media_path(self) -> Path:
        name = self.manifest.get("file")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise PackagingError(f"manifest names no media file in the folder: {name!r}")
        path = self.dir / name
        if not path.is_file():
            raise PackagingError(f"media file {name} is missing")
        return path

    def _open(self) -> av.container.InputContainer:
        path = self._media_path()
        try:
            container = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as exc:
            raise PackagingError(f"cannot read {path.name}: {exc}") from None
        video = [s for s in container.streams.video]
        audio = [s for s in container.streams.audio]
        self.video_stream = video[0] if video else None
        self.audio_stream = audio[0] if audio else None
        return container

    @staticmethod
    def _ticks_of(value: Optional[int], tb: Fraction) -> Optional[int]:
        if value is None:
            return None
        return value * tb.numerator * TICKS // tb.denominator

    # -------------------------------------------------------------- pass 1: scan
    def scan(self) -> None:
        container = self._open()
        try:
            self._scan(container)
        finally:
            container.close()
        self.audio.settle()

    def _scan(self, container: av.container.InputContainer) -> None:
        vs, as_ = self.video_stream, self.audio_stream
        if vs is None and as_ is None:
            raise PackagingError("the recording has no audio or video track")
        if vs is not None:
            self.codec = vs.codec_context.name
            if self.codec == "h264":
                self.avcc = _avcc_config(vs.codec_context.extradata)
                if self.avcc:
                    for ps in self.avcc[1]:
                        self.sps_pps[ps[0] & 0x1F] = _ANNEXB_PREFIX + ps
        size = max(1, self._media_path().stat().st_size)
        streams = [s for s in (vs, as_) if s is not None]
        vi = self.vindex
        ordinal = -1
        last_dts = None
        probe_decoder = None
        last_progress = 0.0
        try:
            for packet in container.demux(*streams):
                self._check_stop()
                if packet.size == 0:
                    continue
                if packet.pos is not None and packet.pos > 0:
                    frac = packet.pos / size
                    if frac - last_progress >= 0.01:
                        last_progress = frac
                        self.progress(20 * frac)
                if packet.stream is vs:
                    ordinal += 1
                    tb = packet.time_base
                    pts = self._ticks_of(packet.pts if packet.pts is not None else packet.dts, tb)
                    dts = self._ticks_of(packet.dts if packet.dts is not None else packet.pts, tb)
                    if pts is None or dts is None or packet.is_corrupt:
                        self.stats["corrupt_packets"] += 1
                        continue
                    if last_dts is not None and dts <= last_dts:
                        self.stats["video_dropped_packets"] += 1
                        continue
                    data = None
                    if self.codec == "h264":
                        data = self._annexb(packet)
                        key = _h264_first_vcl(data) == 5
                    elif self.codec == "vp8":
                        key = not (bytes(packet)[0] & 1)
                    else:
                        key = bool(packet.is_keyframe)
                    last_dts = dts
                    self.video_bytes += packet.size
                    vi.pts.append(pts)
                    vi.dts.append(dts)
                    vi.key.append(1 if key else 0)
                    vi.ordinal.append(ordinal)
                    if key and not self.width:
                        if probe_decoder is None:
                            probe_decoder = self._decoder()
                        self._probe_size(probe_decoder, packet, data)
                else:
                    self._scan_audio(packet)
        except (av.FFmpegError, OSError, EOFError) as exc:
            # a file cut by a crash: keep what was read
            self.input_error = f"input read stopped: {exc}"
            self.log.warning("%s", self.input_error)

    def _scan_audio(self, packet: av.Packet) -> None:
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.stats["corrupt_packets"] += 1
            return
        for frame in frames:
            t = frame.pts if frame.pts is not None else packet.pts
            if t is None:
                continue
            tb = frame.time_base or packet.time_base
            self.audio.add(frame, max(0, self._ticks_of(t, tb)))  # type: ignore[arg-type]

    def _annexb(self, packet: av.Packet) -> bytes:
        data = bytes(packet)
        if self.avcc:
            data = _avcc_to_annexb(data, self.avcc[0])
        return data

    def _decoder(self) -> av.CodecContext:
        if self.codec == "h264":
            dec = av.CodecContext.create("h264", "r")
        else:
            src = self.video_stream.codec_context  # type: ignore[union-attr]
            dec = av.CodecContext.create(src.name, "r")
            if src.extradata:
                dec.extradata = src.extradata
        return dec  # fed packets with pts in ticks: its frames carry them

    def _probe_size(self, decoder: av.CodecContext, packet: av.Packet, data: Optional[bytes]) -> None:
        if data is not None:
            data = self._with_parameter_sets(data)
        try:
            frames = decoder.decode(self._decodable(packet, data, 0))
        except av.FFmpegError:
            return
        for frame in frames:
            self.width, self.height = frame.width - frame.width % 2, frame.height - frame.height % 2
            return

    def _with_parameter_sets(self, data: bytes, always: bool = True) -> bytes:
        """Remember the SPS/PPS of an H.264 keyframe; return it with the last known ones
        inserted if it lacks them (a segment or a decoder must start with them)."""
        units = _nal_units(data)
        types = {u[0] for u in units}
        for t, a, b in units:
            if t in (7, 8):
                self.sps_pps[t] = _ANNEXB_PREFIX + data[a:b]
        if not always or {7, 8} <= types or not self.sps_pps:
            return data
        missing = b"".join(v for k, v in sorted(self.sps_pps.items()) if k not in types)
        if not missing:
            return data
        skip = units[0][2] if units and units[0][0] == 9 else 0  # after an access unit delimiter
        self.stats["parameter_sets_inserted"] = self.stats.get("parameter_sets_inserted", 0) + 1
        return data[:skip] + missing + data[skip:]

    def _decodable(self, packet: av.Packet, data: Optional[bytes], pts: int) -> av.Packet:
        if data is None and not self.avcc:
            return packet
        out = av.Packet(data if data is not None else self._annexb(packet))
        out.time_base = TB
        out.pts = out.dts = pts
        return out

    # -------------------------------------------------------------- plan
    def plan(self) -> None:
        o = self.o
        vi = self.vindex
        runs = self._runs() if len(vi) and self.width else []
        v_end = max((r[3] for r in runs), default=0)
        self.end = max(v_end, self.audio.end_ticks if self.audio.active else 0)
        if self.end <= 0:
            raise PackagingError("nothing in the recording could be decoded")
        self.stats["video_runs"] = len(runs)
        if not runs:
            self.video_stream = None
            self._plan_audio_only()
            return
        if len(vi) >= 2:
            deltas = np.diff(np.frombuffer(vi.pts, np.int64))
            deltas = deltas[(deltas > 0) & (deltas < TICKS)]
            if len(deltas):
                self.fps = min(60.0, max(1.0, TICKS / float(np.median(deltas))))
        # the video timeline: black filler wherever there is no decodable video
        min_fill = o.min_fill_ms * _MS
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
        stretches: list[_Stretch] = []

        def encode_item(item: tuple, start: int) -> None:
            if stretches and stretches[-1].kind == "encode":
                stretches[-1].items.append(item)
            else:
                stretches.append(_Stretch("encode", start, items=[item]))

        for piece in pieces:
            if piece[0] == "fill":
                encode_item(piece, piece[1])
                continue
            _, first, last, start, end = piece
            if self.codec != "h264":
                encode_item(("src", first, last), start)
                continue
            for kind, a, b in self._gop_groups(first, last, end):
                if kind == "copy":
                    stretches.append(_Stretch("copy", self._pts(a), first=a, last=b))
                else:
                    encode_item(("src", a, b), self._pts(a))
        for i, s in enumerate(stretches):
            s.end = stretches[i + 1].start if i + 1 < len(stretches) else self.end
        self.stretches = stretches
        # segment starts: every stretch starts one; then the first candidate frame at
        # least segment_target after the previous start, leaving min_tail
        target, tail = o.segment_target_ms * _MS, o.min_tail_ms * _MS
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
        self._plan_thumbs()

    def _runs(self) -> list[tuple[int, int, int, int]]:
        """Decodable video runs ``(first, last, start, end)``: split at manifest gaps and
        at long holes that end on a keyframe; each run starts at its first keyframe."""
        vi, o = self.vindex, self.o
        gaps = []
        for g in self.manifest.get("gaps") or []:
            try:
                a, b = int(g[0]) * _MS, int(g[1]) * _MS
            except (TypeError, ValueError, IndexError):
                continue
            if b > a:
                gaps.append((a, b))
        auto = o.auto_gap_ms * _MS
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
        self.stats["video_undecodable_packets"] = dropped
        return [tuple(r) for r in runs]  # type: ignore[misc]

    def _gop_groups(self, first: int, last: int, end: int) -> list[tuple[str, int, int]]:
        """Split a run of H.264 packets into remuxable groups of GOPs and too-long GOPs."""
        vi = self.vindex
        keys = [i for i in range(first, last + 1) if vi.key[i]]
        limit = self.o.max_gop_ms * _MS
        groups: list[list] = []
        for n, k in enumerate(keys):
            nxt = keys[n + 1] if n + 1 < len(keys) else last + 1
            gop_end = vi.pts[nxt] if nxt <= last else end
            kind = "encode" if limit and gop_end - self._pts(k) > limit else "copy"
            if groups and groups[-1][0] == kind:
                groups[-1][2] = nxt - 1
            else:
                groups.append([kind, k, nxt - 1])
        return [tuple(g) for g in groups]  # type: ignore[misc]

    def _pts(self, i: int) -> int:
        return self.pull.get(i, self.vindex.pts[i])

    def _fill_times(self, a: int, b: int) -> Iterator[int]:
        step = TICKS / self.o.fill_fps
        k = 0
        while True:
            t = a + int(round(k * step))
            if t >= b:
                return
            yield t
            k += 1

    def _candidates(self, s: _Stretch) -> Iterator[int]:
        vi = self.vindex
        if s.kind == "copy":
            for i in range(s.first, s.last + 1):
                if vi.key[i]:
                    yield self._pts(i)
            return
        for item in s.items:
            if item[0] == "fill":
                yield from self._fill_times(item[1], item[2])
            else:
                for i in range(item[1], item[2] + 1):
                    yield self._pts(i)

    def _plan_audio_only(self) -> None:
        target, tail = self.o.segment_target_ms * _MS, self.o.min_tail_ms * _MS
        starts = [0]
        while True:
            c = -(-(starts[-1] + target) // AAC_TICKS) * AAC_TICKS
            if self.end - c < tail:
                break
            starts.append(c)
        self.starts = starts

    def _plan_thumbs(self) -> None:
        o = self.o
        interval = max(o.thumb_interval_s, self.end / TICKS / o.max_thumbs)
        self.thumb_interval_ms = int(round(interval * 1000))
        step = self.thumb_interval_ms * _MS
        times = list(range(0, self.end, step))
        tw = o.thumb_width
        th = _even(tw * self.height / self.width)
        pw = min(self.width, o.poster_max_width)
        ph = _even(pw * self.height / self.width)
        self.thumbs = _Thumbs(times, (tw, th), (pw, ph))
        # in remuxed stretches, decode from the keyframe before each tile time
        vi = self.vindex
        for s in self.stretches:
            if s.kind != "copy":
                continue
            keys = [i for i in range(s.first, s.last + 1) if vi.key[i]]
            key_pts = [self._pts(i) for i in keys]
            for t in times:
                if not s.start <= t < s.end and not (s is self.stretches[0] and t < s.start):
                    continue
                n = max(0, bisect.bisect_right(key_pts, t) - 1)
                gop_end = key_pts[n + 1] if n + 1 < len(keys) else s.end
                self.thumb_windows[keys[n]] = gop_end

    # -------------------------------------------------------------- pass 2: write
    def _segment_of(self, t: int) -> int:
        return max(0, bisect.bisect_right(self.starts, t) - 1)

    def write(self, out: Path) -> list[dict]:
        hls = out / HLS_DIR
        hls.mkdir()
        has_video = bool(self.stretches)
        has_audio = self.audio.active
        sources: list[Iterator[tuple]] = []
        container = None
        if has_video:
            container = self._open()
            sources.append(self._video_items(container))
        if has_audio:
            sources.append((self._segment_of(p.pts), p.pts, 1, p) for p in self.audio.packets())
        written: dict[int, dict] = {}
        current = None
        cur_index = -1
        streams: dict[int, Any] = {}
        last_progress = 0.0
        try:
            for seg, t, kind, packet in heapq.merge(*sources, key=lambda item: item[:3]):
                self._check_stop()
                if seg > cur_index:
                    if current is not None:
                        current.close()
                    cur_index = seg
                    path = hls / f"seg-{seg:05d}.ts"
                    current = av.open(str(path), "w", format="mpegts")
                    streams = {}
                    if has_video:
                        streams[0] = current.add_mux_stream(
                            "h264", width=self.width, height=self.height, time_base=TB)
                    if has_audio:
                        streams[1] = current.add_mux_stream("aac", rate=AUDIO_RATE, time_base=TB)
                    written[seg] = {"index": seg, "file": path.name, "start": self.starts[seg]}
                packet.stream = streams[kind]
                current.mux(packet)
                frac = t / self.end
                if frac - last_progress >= 0.01:
                    last_progress = frac
                    self.progress(20 + 75 * min(1.0, frac))
        finally:
            if current is not None:
                current.close()
            if container is not None:
                container.close()
        return self._playlist(hls, written)

    def _playlist(self, hls: Path, written: dict[int, dict]) -> list[dict]:
        if not written:
            raise PackagingError("no segment could be written")
        order = sorted(written)
        segments = []
        disc_pending = False
        for n, i in enumerate(order):
            seg = written[i]
            # a planned segment that got no packet is covered by the previous one
            for skipped in range((order[n - 1] + 1) if n else 0, i):
                disc_pending |= self.starts[skipped] in self.disc
            start = 0 if n == 0 else seg["start"]
            end = written[order[n + 1]]["start"] if n + 1 < len(order) else self.end
            seg["start"] = start
            seg["duration"] = end - start
            seg["discontinuity"] = n > 0 and (disc_pending or seg["start"] in self.disc)
            disc_pending = False
            seg["bytes"] = (hls / seg["file"]).stat().st_size
            segments.append(seg)
        longest = max(s["duration"] for s in segments)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest / TICKS))}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        for seg in segments:
            if seg["discontinuity"]:
                lines.append("#EXT-X-DISCONTINUITY")
            # rounded boundaries, so the sum of EXTINF never drifts from the media clock
            dur = round((seg["start"] + seg["duration"]) / TICKS, 3) - round(seg["start"] / TICKS, 3)
            lines += [f"#EXTINF:{dur:.3f},", seg["file"]]
        lines.append("#EXT-X-ENDLIST")
        (hls / PLAYLIST).write_text("\n".join(lines) + "\n")
        return segments

    def _packet_source(self, container: av.container.InputContainer) -> Iterator[tuple[int, av.Packet]]:
        """Usable video packets again, as ``(index, packet)``, in the scan's order."""
        vi = self.vindex
        ordinal = -1
        n = 0
        try:
            for packet in container.demux(self.video_stream):
                if packet.size == 0:
                    continue
                ordinal += 1
                if n >= len(vi):
                    return
                if ordinal < vi.ordinal[n]:
                    continue
                yield n, packet
                n += 1
        except (av.FFmpegError, OSError, EOFError):
            pass
        if n < len(vi):
            raise PackagingError("the media file changed while it was being packaged")

    def _video_items(self, container: av.container.InputContainer) -> Iterator[tuple]:
        source = self._packet_source(container)
        state = {"next": None}

        def packet_at(index: int) -> av.Packet:
            item = state["next"]
            while item is None or item[0] < index:
                item = next(source)
            state["next"] = None if item[0] == index else item
            return item[1]

        for s in self.stretches:
            if s.kind == "copy":
                yield from self._copy(s, packet_at)
            else:
                yield from self._encode(s, packet_at)

    def _copy(self, s: _Stretch, packet_at: Callable[[int], av.Packet]) -> Iterator[tuple]:
        vi = self.vindex
        starts = set(self.starts)
        thumbs = self.thumbs
        decoder = None
        window_end = -1
        last_frame = None
        for i in range(s.first, s.last + 1):
            self._check_stop()
            packet = packet_at(i)
            pts, dts = vi.pts[i], vi.dts[i]
            if i in self.pull:
                pts, dts = self.pull[i], dts - (pts - self.pull[i])
            out = dec_packet = packet
            if vi.key[i]:
                raw = self._annexb(packet)
                full = self._with_parameter_sets(raw)  # what a decoder starting here needs
                data = full if pts in starts else raw  # a segment starts with SPS/PPS
                if data is not raw or self.avcc:
                    out = av.Packet(data)
                dec_packet = out if full is data else av.Packet(full)
            elif self.avcc:
                out = dec_packet = av.Packet(self._annexb(packet))
            for p in (out, dec_packet):
                p.time_base = TB
                p.pts = pts
                p.dts = dts
            self.stats["packets_copied"] += 1
            # thumbnails: decode only the GOPs that contain a tile time
            if vi.key[i] and i in self.thumb_windows:
                decoder = self._decoder()
                decoder.thread_count = 1
                window_end = self.thumb_windows[i]
            if decoder is not None:
                try:
                    for frame in decoder.decode(dec_packet):
                        last_frame = frame
                        thumbs.offer(pts if frame.pts is None else frame.pts, frame)  # type: ignore[union-attr]
                except av.FFmpegError:
                    pass
                nxt = thumbs.next_time()  # type: ignore[union-attr]
                if nxt is None or nxt >= window_end:
                    decoder = None
            nxt_pts = vi.pts[i + 1] if i < s.last else s.end
            if last_frame is not None and thumbs.wants(nxt_pts - 1):  # type: ignore[union-attr]
                # a tile time in a hole before the next frame: show the last one
                thumbs.offer(nxt_pts - 1, last_frame)  # type: ignore[union-attr]
            yield (self._segment_of(pts), dts, 0, out)

    def _new_encoder(self) -> av.CodecContext:
        o = self.o
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = self.width, self.height
        enc.pix_fmt = "yuv420p"
        enc.time_base = TB
        enc.framerate = Fraction(round(self.fps))
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
            source_bps = self.video_bytes * 8 * TICKS / span
            cap = int(max(o.min_max_bitrate, source_bps * o.max_bitrate_factor) / 1000)
            params += f":vbv-maxrate={cap}:vbv-bufsize={2 * cap}"
        enc.options = dict(enc.options, **{"x264-params": params})
        self.stats["encoders_created"] += 1
        return enc

    def _black(self) -> av.VideoFrame:
        if not hasattr(self, "_black_frame"):
            img = np.zeros((self.height, self.width, 3), np.uint8)
            self._black_frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        return self._black_frame

    def _encode(self, s: _Stretch, packet_at: Callable[[int], av.Packet]) -> Iterator[tuple]:
        vi = self.vindex
        enc = self._new_encoder()
        idr = deque(t for t in self.starts if s.start <= t < s.end)  # forced IDR frames
        last = [-1]

        def encode(frame: av.VideoFrame, t: int) -> Iterator[tuple]:
            if t <= last[0]:
                return
            last[0] = t
            if frame.width != self.width or frame.height != self.height or frame.format.name != "yuv420p":
                frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            self.thumbs.offer(t, frame)  # type: ignore[union-attr]
            forced = False
            while idr and idr[0] <= t:
                idr.popleft()
                forced = True
            frame.pts = t
            frame.time_base = TB
            frame.pict_type = PictureType.I if forced else PictureType.NONE
            self.stats["frames_encoded"] += 1
            for p in enc.encode(frame):
                yield (self._segment_of(p.pts), p.dts, 0, p)

        for item in s.items:
            if item[0] == "fill":
                black = self._black()
                for t in self._fill_times(item[1], item[2]):
                    self._check_stop()
                    yield from encode(black, t)
                self.stats["video_filled_ms"] = self.stats.get("video_filled_ms", 0) + (item[2] - item[1]) // _MS
                continue
            _, first, last_i = item
            decoder = self._decoder()
            decoder.thread_count = self.o.threads
            decoder.thread_type = "AUTO"
            for i in range(first, last_i + 1):
                self._check_stop()
                packet = packet_at(i)
                if self.codec == "h264" and (vi.key[i] or self.avcc):
                    data = self._annexb(packet)
                    pkt = av.Packet(self._with_parameter_sets(data) if vi.key[i] else data)
                else:
                    pkt = packet
                pkt.time_base = TB
                pkt.pts = self._pts(i)
                pkt.dts = vi.dts[i] - (vi.pts[i] - pkt.pts)
                try:
                    frames = decoder.decode(pkt)
                except av.FFmpegError:
                    self.stats["corrupt_packets"] += 1
                    continue
                for frame in frames:
                    yield from encode(frame, self._pts(i) if frame.pts is None else frame.pts)
            try:
                for frame in decoder.decode(None):
                    yield from encode(frame, frame.pts)
            except av.FFmpegError:
                pass
            end = vi.pts[last_i + 1] if last_i + 1 < len(vi) else s.end
            self.stats["video_encoded_ms"] = self.stats.get("video_encoded_ms", 0) + (min(end, s.end) - vi.pts[first]) // _MS
        for p in enc.encode(None):
            yield (self._segment_of(p.pts), p.dts, 0, p)

    # -------------------------------------------------------------- images
    def images(self, out: Path) -> dict:
        o = self.o
        if self.thumbs is None:  # audio only: a placeholder poster for the catalog
            _imwrite(out / "poster.jpg", _audio_poster((640, 360)), 85)
            return {"poster": "poster.jpg", "poster_size": [640, 360], "thumbs": None}
        index = self.thumbs.write(out, o.thumb_columns, self.thumb_interval_ms)
        poster = self.thumbs.poster
        if poster is None:
            poster = np.zeros((self.thumbs.poster_size[1], self.thumbs.poster_size[0], 3), np.uint8)
        _imwrite(out / "poster.jpg", poster, 85)
        return {
            "poster": "poster.jpg",
            "poster_size": [poster.shape[1], poster.shape[0]],
            "poster_ms": (self.thumbs.poster_t or 0) // _MS,
            "thumbs": {
                "image": "thumbs.jpg", "index": "thumbs.json", "vtt": "thumbs.vtt",
                "interval_ms": self.thumb_interval_ms, "count": len(index.get("tiles", [])),
                "tile": [self.thumbs.tile[0], self.thumbs.tile[1]],
            } if index else None,
        }


# ---------------------------------------------------------------------- entry point
def package_recording(
    directory: Path | str,
    options: Optional[PackageOptions] = None,
    *,
    stop: Optional[threading.Event] = None,
    on_progress: Optional[Callable[[int], None]] = None,
    log: Optional[logging.Logger | logging.LoggerAdapter] = None,
) -> dict:
    """Package one recording folder into HLS + poster + thumbnails; returns the manifest.

    Blocking and CPU-heavy: run it in a worker thread. Safe to re-run (the previous
    output is replaced only once the new one is complete). On failure the manifest gets
    status ``failed`` and ``error`` and :class:`PackagingError` (or the original error) is
    raised; on ``stop`` (set by a shutting-down server) :class:`JobCancelled` is raised
    and the manifest stays ``processing``, so the next start resumes the job.
    """
    directory = Path(directory)
    options = options or PackageOptions()
    log = log or logging.getLogger("stagepass.vod")
    began = time.monotonic()
    manifest = read_manifest(directory)
    previous = manifest.get("status")
    packaging = dict(manifest.get("packaging") or {})
    attempts = int(packaging.get("attempts") or 0) + 1 if previous == "processing" else 1
    packaging.update(attempts=attempts, started_at=time.time(), finished_at=None, error=None)
    changes: dict[str, Any] = dict(status="processing", progress=0, error=None, packaging=packaging)
    if previous == "failed" and not manifest.get("packaging"):
        # the recorder failed (disk full...): its file is valid up to there; keep why
        changes["recording_error"] = manifest.get("error")
    manifest = update_manifest(directory, **changes)
    for stale in directory.glob(TMP_PREFIX + "*"):  # left by a crash
        shutil.rmtree(stale, ignore_errors=True)
    work = directory / f"{TMP_PREFIX}{secrets.token_hex(4)}"
    work.mkdir()
    state = {"pct": 0, "at": 0.0}

    def progress(pct: float) -> None:
        value = int(min(99, max(state["pct"], pct)))
        now = time.monotonic()
        if value > state["pct"] and now - state["at"] >= options.progress_interval_s:
            state["pct"], state["at"] = value, now
            try:
                update_manifest(directory, progress=value)
            except OSError as exc:  # a progress write is not worth failing the job
                log.warning("progress not written: %s", exc)
            if on_progress is not None:
                on_progress(value)

    packager = _Packager(directory, manifest, options, work, stop, progress, log)
    try:
        packager.scan()
        packager.plan()
        packager.audio.finish(packager.end)
        out = work / "out"
        out.mkdir()
        segments = packager.write(out)
        images = packager.images(out)
        if stop is not None and stop.is_set():
            raise JobCancelled()
        # swap the new output in: the playlist folder atomically, then the images
        trash = work / "old"
        trash.mkdir()
        _swap_dir(out / HLS_DIR, directory / HLS_DIR, trash / HLS_DIR)
        for name in OUTPUT_FILES:
            if (out / name).exists():
                os.replace(out / name, directory / name)
            elif (directory / name).exists():
                (directory / name).unlink()
    except JobCancelled:
        packager.audio.close()
        shutil.rmtree(work, ignore_errors=True)
        log.info("packaging of %s stopped; it resumes on the next start", directory)
        raise
    except Exception as exc:
        packager.audio.close()
        shutil.rmtree(work, ignore_errors=True)
        message = str(exc) if isinstance(exc, PackagingError) else f"packaging failed: {exc!r}"
        packaging.update(finished_at=time.time(), error=message)
        try:
            update_manifest(directory, status="failed", error=message, packaging=packaging)
        except OSError:
            log.exception("cannot mark %s failed", directory)
        log.error("packaging of %s failed: %s", directory, message,
                  exc_info=not isinstance(exc, PackagingError))
        raise
    shutil.rmtree(work, ignore_errors=True)

    stats = packager.stats
    longest = max(s["duration"] for s in segments)
    video = None
    if packager.stretches:
        copied = sum((s.end - s.start) for s in packager.stretches if s.kind == "copy") // _MS
        if packager.codec != "h264":
            mode = "transcode"
        elif not stats["encoders_created"]:
            mode = "copy"
        else:
            mode = "mixed" if copied else "reencode"
        video = {
            "codec": "h264", "source_codec": packager.codec, "mode": mode,
            "width": packager.width, "height": packager.height,
            "copied_ms": copied,
            "encoded_ms": stats.get("video_encoded_ms", 0),
            "filled_ms": stats.get("video_filled_ms", 0),
        }
    audio = None
    if packager.audio.active:
        audio = {
            "codec": "aac", "channels": packager.audio.channels, "sample_rate": AUDIO_RATE,
            "source_channels": packager.audio.source_channels,
            "bitrate": packager.audio.bitrate_per_channel * packager.audio.channels,
            "silence_ms": packager.audio.silence_samples * 1000 // AUDIO_RATE,
        }
    hls_bytes = sum(s["bytes"] for s in segments)
    packaging.update(
        finished_at=time.time(), error=None, seconds=round(time.monotonic() - began, 3),
        options=asdict(options), stats=stats,
    )
    result = dict(
        status=options.done_status,
        progress=100,
        error=None,
        hls=f"{HLS_DIR}/{PLAYLIST}",
        hls_start_ms=0,
        hls_duration_ms=packager.end // _MS,
        hls_bytes=hls_bytes,
        segments=len(segments),
        segment_max_ms=longest // _MS,
        target_duration=max(1, math.ceil(longest / TICKS)),
        discontinuities=sum(1 for s in segments if s["discontinuity"]),
        video=video,
        audio=audio,
        input_error=packager.input_error,
        packaging=packaging,
        **images,
    )
    manifest = update_manifest(directory, **result)
    if on_progress is not None:
        on_progress(100)
    log.info(
        "packaged %s: %d segments, %.1f s, %d bytes, video %s, in %.1f s",
        directory, len(segments), packager.end / TICKS, hls_bytes,
        video["mode"] if video else "none", packaging["seconds"],
    )
    return manifest
