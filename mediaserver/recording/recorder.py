"""``Recorder``: one broadcast's recording, written while it is live, never transcoded.

The recorder is one more consumer of the room's encoded frames. It hangs a sink on each
of the room's fanouts (``Fanout.add_sink``), reassembles frames (``FrameAssembler``),
stamps them on the broadcast media clock and hands them to a writer thread that muxes
them with PyAV *stream copy* (``add_mux_stream``: no encoder, no decoder is opened).

Containers (both readable up to the last flushed packet if the process dies):

* H.264 video (with or without Opus): **MPEG-TS** ``recording.ts``. A TS file has no
  header or index to fix up at the end; every 188-byte packet stands alone, so a cut
  file decodes to its last complete frame, and HLS packaging can remux it as is.
* VP8 video, or audio only: **WebM** (Matroska) ``recording.webm``, with 1 s clusters.
  Matroska needs the frame size of VP8 in its header, so the file is opened on the first
  keyframe (its size is read from the VP8 frame header). A cut file loses at most the
  cluster being written.

Both are written with ``flush_packets=1`` (each packet reaches the kernel at once; a
SIGKILL loses nothing the muxer has emitted) and ``max_interleave_delta`` of 1 s (the
muxer does not hold one track for long waiting on the other).

Opus needs its ``OpusHead`` in Matroska (CodecPrivate) and uses it in TS (channel count
and pre-skip). ``add_mux_stream`` cannot set extradata, so the audio stream is copied
(``add_stream_from_template``) from a two-page Ogg Opus file built in memory, whose
codec context is never opened.

**Media clock.** Packet times are milliseconds since ``Broadcast.started_at``, the clock
danmaku ``t_ms`` use. For every source generation (a publisher connection) and track,
the generation's first packet maps to its arrival time (``time.time() - started_at``);
later ones follow the RTP clock (90 kHz video, 48 kHz audio) unwrapped across 32-bit
wrap. During a generation's first ``ANCHOR_WINDOW_MS`` the anchor is refined to the
earliest ``arrival - rtp_time`` (see ``_Track``), which keeps audio and video within a
few milliseconds of each other. A publisher that drops and returns continues the same
file: its track waits for a keyframe, times stay monotonic, the wall-clock gap is kept
and written as ``[from_ms, to_ms]`` to the manifest's ``gaps``: from the end of the last
media before, to the first media after (any stretch of more than ``GAP_MS`` without
media from any track is a gap too).

**Files.** ``{data_dir}/recordings/{room}/{broadcast}/`` holds the media file and
``manifest.json`` (written atomically: temp file, fsync, rename; refreshed every
``MANIFEST_INTERVAL`` seconds while recording)::

    {"room", "broadcast", "started_at" (unix s), "container" ("mpegts"|"webm"),
     "file" (null if no media ever came), "video_codec" ("h264"|"vp8"|null),
     "audio_codec" ("opus"|null),
     "status": "recording" | "recorded" | "failed", "ended_by": null|"broadcast_end"|
     "shutdown", "gaps": [[from_ms, to_ms]...], "error": null|str, "bytes",
     "start_ms" (first media), "duration_ms" (end of the last media, broadcast clock),
     "frames": {"video", "audio"}, "dropped_frames", "notes": [str...], "updated_at"}

``status`` is ``recording`` while live, and also after a crash (the file is then a valid
partial recording). ``failed`` means writing stopped at ``duration_ms`` because of
``error``; the file up to there is kept and valid, and the recorder never writes that
manifest again (a packager may take it over while the broadcast goes on).

**Failures.** A write error (disk full...) never reaches the live path: the writer logs
it with the room and broadcast ids, closes what it can, marks the manifest ``failed``
(retrying the manifest write while the disk stays full), and the recorder detaches from
the fanouts. The writer thread keeps disk latency off the event loop: the loop only
appends to a queue once per *frame*; if the queue holds more than ``MAX_QUEUED`` frames
(about 25 s of 30 fps video and Opus: the disk is stalled) frames are dropped and video
resumes on a keyframe. Muxing inline would cost about as much CPU (~10 us a packet) but
one slow ``write`` (a saturated disk, a network filesystem) would stall every room.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import json
import logging
import os
import secrets
import queue
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import av
from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.codecs.vpx import vp8_depayload

from mediaserver.recording.frame_assembler import FrameAssembler

__all__ = [
    "GAP_MS",
    "MANIFEST_NAME",
    "Recorder",
    "choose_container",
    "opus_head",
    "read_manifest",
    "write_manifest",
    "recording_dir",
]

MANIFEST_NAME = "manifest.json"
GAP_MS = 1000  #: a stretch without any media longer than this is written as a gap
MAX_QUEUED = 2000  #: frames waiting for the writer before the recorder drops frames
MANIFEST_INTERVAL = 5.0  #: seconds between manifest refreshes while recording
ANCHOR_WINDOW_MS = 500  #: how long a new source's frames are held while its clock anchor settles
PREROLL_MS = 5000  #: how long a WebM with video may wait for the first keyframe (frame size)
FALLBACK_SIZE = (640, 480)  #: frame size announced if no keyframe came within PREROLL_MS
CLOCK_RATES = {"H264": 90000, "VP8": 90000, "OPUS": 48000}
FFMPEG_NAMES = {"H264": "h264", "VP8": "vp8", "OPUS": "opus"}
MEDIA_FILES = {"mpegts": "recording.ts", "webm": "recording.webm"}
_MS = fractions.Fraction(1, 1000)
_MUX_OPTIONS = {
    "mpegts": {"flush_packets": "1", "max_interleave_delta": "1000000"},
    "webm": {"flush_packets": "1", "max_interleave_delta": "1000000", "cluster_time_limit": "1000"},
}


def choose_container(codecs: dict[str, str]) -> str:
    """``mpegts`` for H.264 (remuxes straight to HLS), ``webm`` for VP8 or audio only."""
    return "mpegts" if codecs.get("video") == "H264" else "webm"


def recording_dir(data_dir: Path, room: str, broadcast_id: str) -> Path:
    return Path(data_dir) / "recordings" / room / broadcast_id


def read_manifest(directory: Path) -> dict:
    return json.loads((Path(directory) / MANIFEST_NAME).read_text())


def write_manifest(directory: Path, manifest: dict) -> None:
    """Atomically replace the manifest (unique temp file, fsync, rename)."""
    directory = Path(directory)
    tmp = directory / f".{MANIFEST_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / MANIFEST_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()


def opus_head(channels: int = 2, pre_skip: int = 312, input_rate: int = 48000) -> bytes:
    """The 19-byte Opus identification header (RFC 7845 5.1), channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


# ---------------------------------------------------------------------- Opus template
def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_page(packet: bytes, sequence: int, flags: int, granule: int = 0) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    page = bytearray(
        b"OggS" + struct.pack("<BBqIII", 0, flags, granule, 1, sequence, 0)
        + bytes([len(segments)]) + bytes(segments) + packet
    )
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    page[22:26] = struct.pack("<I", crc)
    return bytes(page)


def _opus_template() -> av.container.InputContainer:
    """An in-memory Ogg Opus file (OpusHead, OpusTags, one empty frame): its stream
    carries the OpusHead extradata that ``add_mux_stream`` has no way to set."""
    tags = b"OpusTags" + struct.pack("<I", 9) + b"stagepass" + struct.pack("<I", 0)
    data = (
        _ogg_page(opus_head(), 0, 0x02)
        + _ogg_page(tags, 1, 0)
        + _ogg_page(b"\xf8", 2, 0x04, granule=960)  # one 20 ms frame, no payload
    )
    return av.open(io.BytesIO(data), "r", format="ogg")


def _vp8_size(frame: bytes) -> Optional[tuple[int, int]]:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(frame[6:8], "little") & 0x3FFF,
            int.from_bytes(frame[8:10], "little") & 0x3FFF,
        )
    return None


def _depayload_h264(payloads: list) -> bytes:
    parse = H264PayloadDescriptor.parse
    return b"".join([parse(p)[1] for p in payloads])


def _depayload_vp8(payloads: list) -> bytes:
    return b"".join([vp8_depayload(p) for p in payloads])


_DEPAYLOAD = {"H264": _depayload_h264, "VP8": _depayload_vp8}


# ---------------------------------------------------------------------- loop side
class _Track:
    """One recorded track on the event loop: assembler plus the RTP -> media-ms map.

    A generation's RTP clock is anchored where its first packet arrived, then refined
    during its first ``ANCHOR_WINDOW_MS``: frames are held back meanwhile, and the
    anchor moves to the earliest ``arrival - rtp_time`` seen. A frame can arrive late
    (the first keyframe takes longest to encode and send) but never early, so this
    removes the first frame's extra delay, which would otherwise shift the whole source
    by tens of milliseconds against the other track."""

    __slots__ = (
        "kind", "codec", "clock_rate", "assembler", "anchor_ms", "gen_start_ms", "settling",
        "accept", "last_ms", "interval", "generations", "recorder",
    )

    def __init__(self, recorder: "Recorder", kind: str, codec: str) -> None:
        self.recorder = recorder
        self.kind = kind
        self.codec = codec
        self.clock_rate = CLOCK_RATES[codec]
        self.anchor_ms = 0.0
        self.gen_start_ms = 0.0
        self.settling: Optional[list] = None  # frames held while the anchor settles
        self.accept = False
        self.last_ms = -1
        self.interval = 20 if kind == "audio" else 33
        self.generations = 0
        self.assembler = FrameAssembler(
            kind, self.on_frame, recorder._request_keyframe_for(kind), self.on_generation,
            on_error=recorder._sink_failed,
        )

    def _now_ms(self) -> float:
        rec = self.recorder
        return (rec.wall_clock() - rec.broadcast.started_at) * 1000.0

    def on_generation(self, generation: int, codec: str) -> None:
        self.flush()  # the previous source's last frames, on its own anchor
        self.anchor_ms = self.gen_start_ms = self._now_ms()
        self.settling = []
        self.generations += 1
        if self.generations > 1:
            self.recorder._source_changed()
        self.accept = codec == self.codec
        if not self.accept:
            self.recorder._note(
                f"{self.kind} codec changed from {self.codec} to {codec} at "
                f"{int(self.anchor_ms)} ms: this source's {self.kind} is not recorded"
            )

    def on_frame(self, generation: int, rtp_ext: int, keyframe: bool, payloads: list) -> None:
        if not self.accept:
            return
        rtp_ms = rtp_ext * 1000 / self.clock_rate
        settling = self.settling
        if settling is None:
            self._out(rtp_ms, keyframe, payloads)
            return
        now = self._now_ms()
        if now - rtp_ms < self.anchor_ms:
            self.anchor_ms = now - rtp_ms
        settling.append((rtp_ms, keyframe, payloads))
        if now - self.gen_start_ms >= ANCHOR_WINDOW_MS:
            self.recorder._flush_settling()

    def flush(self) -> None:
        """Write out the frames held while the anchor settled."""
        settling, self.settling = self.settling, None
        if settling:
            for rtp_ms, keyframe, payloads in settling:
                self._out(rtp_ms, keyframe, payloads)

    def first_ms(self) -> float:
        """Media time of the first held frame (``settling`` must not be empty)."""
        return self.anchor_ms + self.settling[0][0]  # type: ignore[index]

    def _out(self, rtp_ms: float, keyframe: bool, payloads: list) -> None:
        ms = int(self.anchor_ms + rtp_ms)
        last = self.last_ms
        if ms <= last:
            ms = last + 1
        elif 0 < ms - last <= 100:
            self.interval = ms - last
        self.last_ms = ms
        self.recorder._frame(self, ms, keyframe, payloads)


class Recorder:
    """Records one broadcast of one room; see the module docstring.

    ``codecs`` is the publisher's kind -> codec key (``{"video": "H264", "audio":
    "OPUS"}``). ``request_keyframe(kind)`` asks the publisher for a keyframe (the room
    passes its fanouts' rate-limited requesters). Lifecycle: ``start()``, ``attach(fanouts)``,
    then ``await stop(...)`` exactly once.
    """

    def __init__(
        self,
        room: str,
        broadcast: Any,
        codecs: dict[str, str],
        data_dir: Path,
        logger: logging.Logger | logging.LoggerAdapter,
        request_keyframe: Callable[[str], None] = lambda kind: None,
        max_queued: int = MAX_QUEUED,
        wall_clock: Callable[[], float] = time.time,
        keyframe_interval: float = 0.0,
    ) -> None:
        self.room = room
        self.wall_clock = wall_clock
        self.broadcast = broadcast
        self.codecs = {k: c for k, c in codecs.items() if k in ("video", "audio") and c in CLOCK_RATES}
        self.log = logger
        self._request_keyframe = request_keyframe
        self._max_queued = max_queued
        # H.264 GOPs longer than the packager's limit are re-encoded; browsers send
        # keyframes only when asked, so the recorder asks (VP8 is transcoded anyway)
        self._keyframe_every_ms = int(keyframe_interval * 1000) if codecs.get("video") == "H264" else 0
        self._last_key_ms: Optional[int] = None
        self._key_asked_ms = 0
        self.container = choose_container(self.codecs)
        self.directory = recording_dir(data_dir, room, broadcast.id)
        self.path = self.directory / MEDIA_FILES[self.container]
        self._queue: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._tracks = {kind: _Track(self, kind, codec) for kind, codec in self.codecs.items()}
        self._fanouts: dict[str, Any] = {}
        self._gap_open = False
        self._media_end: Optional[int] = None
        self.dropped_frames = 0
        self._stopping = False
        self._done: Optional[asyncio.Future] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._writer = _Writer(self)

    def _request_keyframe_for(self, kind: str) -> Callable[[], None]:
        if kind != "video":
            return lambda: None
        return lambda: self._request_keyframe("video")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the writer thread and ask the publisher for a keyframe."""
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._writer.thread.start()
        if "video" in self._tracks:
            self._request_keyframe("video")
        self.log.info(
            "recording broadcast %s (%s) to %s",
            self.broadcast.id, ", ".join(f"{k}={c}" for k, c in self.codecs.items()), self.path,
        )

    def attach(self, fanouts: dict[str, Any]) -> None:
        """Hang this recorder's sinks on the fanouts of the recorded kinds."""
        for kind, track in self._tracks.items():
            fanout = fanouts.get(kind)
            if fanout is not None:
                fanout.add_sink(track.assembler.push)
                self._fanouts[kind] = fanout

    def detach(self) -> None:
        for kind, fanout in self._fanouts.items():
            fanout.remove_sink(self._tracks[kind].assembler.push)
        self._fanouts = {}

    async def stop(self, ended_by: str = "broadcast_end", timeout: float = 30.0) -> dict:
        """Detach, let the writer finish and close the file; returns the final manifest.

        ``ended_by``: ``broadcast_end`` (the creator ended it) or ``shutdown``; both
        give status ``recorded`` unless writing failed."""
        self.detach()
        if not self._stopping:
            self._flush_settling()
            self._stopping = True
            self._queue.put(("stop", ended_by))
        if self._done is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._done), timeout)
            except asyncio.TimeoutError:
                self.log.error(
                    "recording of broadcast %s: the writer did not finish within %.0f s",
                    self.broadcast.id, timeout,
                )
        return dict(self._writer.manifest)

    # ------------------------------------------------------------------ state
    @property
    def manifest(self) -> dict:
        """The recorder's own manifest (once the recording ended, the file on disk may
        have moved on: the packager takes it over)."""
        m = self._writer.manifest
        return dict(m, gaps=list(m["gaps"]), notes=list(m["notes"]), frames=dict(m["frames"]))

    @property
    def status(self) -> str:
        return self._writer.manifest["status"]

    @property
    def error(self) -> Optional[str]:
        return self._writer.manifest["error"]

    def state(self) -> dict:
        """What the creator's studio shows (room stats)."""
        m = self._writer.manifest
        return {
            "broadcast": self.broadcast.id,
            "status": m["status"],
            "error": m["error"],
            "container": self.container,
            "duration_ms": m["duration_ms"],
            "bytes": m["bytes"],
            "gaps": len(m["gaps"]),
            "dropped_frames": self.dropped_frames,
        }

    # ------------------------------------------------------------------ frames (loop)
    def _frame(self, track: _Track, ms: int, keyframe: bool, payloads: list) -> None:
        writer = self._writer
        if writer.failed or self._stopping:
            return
        end = self._media_end
        if end is None:
            self._gap_open = False
        elif ms > end and (self._gap_open or ms - end > GAP_MS):
            self._queue.put(("gap", end, ms))
            self._gap_open = False
        if self._queue.qsize() > self._max_queued:
            self.dropped_frames += 1
            if self.dropped_frames == 1 or self.dropped_frames % 500 == 0:
                self.log.warning(
                    "recording of broadcast %s: the writer is behind, %d frames dropped",
                    self.broadcast.id, self.dropped_frames,
                )
            if self.dropped_frames == 1:
                self._note(f"the writer fell behind at {ms} ms: frames dropped")
            track.assembler.wait_for_keyframe()
            return
        new_end = ms + track.interval
        if end is None or new_end > end:
            self._media_end = new_end
        if track.kind == "video" and self._keyframe_every_ms:
            self._pace_keyframes(ms, keyframe)
        self._queue.put(("f", track.kind, ms, keyframe, payloads, new_end))

    def _pace_keyframes(self, ms: int, keyframe: bool) -> None:
        if keyframe or self._last_key_ms is None:
            self._last_key_ms = ms
        elif ms - self._last_key_ms >= self._keyframe_every_ms and ms - self._key_asked_ms >= 1000:
            self._key_asked_ms = ms
            self._request_keyframe("video")

    def _flush_settling(self) -> None:
        """A track's anchor window ended: write every track's held frames, earliest
        first, so a gap ends at the first media of the new source, whatever its track."""
        ready = [t for t in self._tracks.values() if t.settling]
        ready.sort(key=_Track.first_ms)
        for track in ready:
            track.flush()

    def _sink_failed(self, exc: Exception) -> None:
        """A bug made a sink raise and the fanout dropped it: end the recording cleanly."""
        self._queue.put(("fail", f"recorder error: {exc!r}"))

    def _source_changed(self) -> None:
        """A track got a new source (the publisher reconnected): the next frame written
        closes a gap that started at the end of the media so far."""
        self._gap_open = True

    def _note(self, text: str) -> None:
        self.log.warning("recording of broadcast %s: %s", self.broadcast.id, text)
        self._queue.put(("note", text))

    # ------------------------------------------------------------------ from the writer
    def _writer_failed(self) -> None:
        """Called on the loop when the writer gave up: stop feeding it."""
        self.detach()

    def _writer_done(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _call_soon(self, fn: Callable, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop closing
                pass


# ---------------------------------------------------------------------- writer thread
class _Writer:
    """Owns the output container and the manifest; runs in its own thread."""

    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder
        self.log = recorder.log
        self.failed = False
        self.bad_frames = 0  # video frames that could not be depayloaded
        self._manifest_error_logged = False
        #: a failed recording's manifest, once written, is final: the packager may pick
        #: it up while the broadcast goes on, and must not see it change under it
        self._manifest_final = False
        b = recorder.broadcast
        self.manifest: dict[str, Any] = {
            "room": recorder.room,
            "broadcast": b.id,
            "started_at": b.started_at,
            "container": recorder.container,
            "file": recorder.path.name,
            "video_codec": FFMPEG_NAMES.get(recorder.codecs.get("video", "")),
            "audio_codec": FFMPEG_NAMES.get(recorder.codecs.get("audio", "")),
            "status": "recording",
            "ended_by": None,
            "gaps": [],
            "error": None,
            "bytes": 0,
            "start_ms": None,
            "duration_ms": 0,
            "frames": {"video": 0, "audio": 0},
            "dropped_frames": 0,
            "notes": [],
            "updated_at": time.time(),
        }
        self.container: Optional[av.container.OutputContainer] = None
        self.streams: dict[str, Any] = {}
        self._template: Optional[av.container.InputContainer] = None
        self._preroll: list[tuple] = []
        self._video_broken = False
        self._end_ms = 0
        self._manifest_due = 0.0
        self._manifest_dirty = True
        #: (type, is_encoder, is_open) of every codec context the output streams hold;
        #: tests check that none is an open encoder
        self.codec_contexts: list[tuple[str, bool, bool]] = []
        self.thread = threading.Thread(
            target=self.run, name=f"recorder-{recorder.room}-{b.id}", daemon=True
        )

    def _ids(self) -> str:
        return f"room {self.rec.room} broadcast {self.rec.broadcast.id}"

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        ended_by = None
        try:
            self._setup()
            ended_by = self._loop()
        except BaseException as exc:  # pragma: no cover - a bug; keep the file
            self._fail(f"recorder crashed: {exc!r}", exc)
        finally:
            self._finish(ended_by)
            self.rec._call_soon(self.rec._writer_done)

    def _setup(self) -> None:
        try:
            self.rec.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(f"cannot create {self.rec.directory}: {exc}", exc)
            return
        self._write_manifest(force=True)

    def _loop(self) -> Optional[str]:
        q = self.rec._queue
        while True:
            try:
                item = q.get(timeout=MANIFEST_INTERVAL)
            except queue.Empty:
                self._write_manifest()
                continue
            tag = item[0]
            if tag == "f":
                if not self.failed:
                    self._frame(item[1], item[2], item[3], item[4], item[5])
            elif tag == "gap":
                self.manifest["gaps"].append([item[1], item[2]])
                self._manifest_dirty = True
                self._write_manifest(force=True)
            elif tag == "note":
                self.manifest["notes"].append(item[1])
                self._manifest_dirty = True
            elif tag == "fail":
                self._fail(item[1])
            elif tag == "stop":
                return item[1]
            self._write_manifest()

    # ------------------------------------------------------------------ frames
    def _frame(self, kind: str, ms: int, keyframe: bool, payloads: list, end: int) -> None:
        if kind == "video":
            if self._video_broken and not keyframe:
                return
            try:
                data = _DEPAYLOAD[self.rec.codecs["video"]](payloads)
            except (ValueError, IndexError) as exc:
                if not self._video_broken:
                    self.log.warning("%s: dropping an unreadable video frame: %s", self._ids(), exc)
                self._video_broken = True
                self.bad_frames += 1
                self.rec._call_soon(self.rec._request_keyframe, "video")
                return
            self._video_broken = False
        else:
            data = payloads[0]
        if self.container is None:
            if not self._ready_to_open(kind, keyframe, data, ms):
                self._preroll.append((kind, ms, keyframe, data, end))
                return
            if not self._open(kind, keyframe, data):
                return
            preroll, self._preroll = self._preroll, []
            for item in preroll:
                if not self._mux(*item):
                    return
        self._mux(kind, ms, keyframe, data, end)

    def _ready_to_open(self, kind: str, keyframe: bool, data: bytes, ms: int) -> bool:
        if "video" not in self.rec.codecs or (kind == "video" and keyframe):
            return True
        return bool(self._preroll) and ms - self._preroll[0][1] > PREROLL_MS

    def _open(self, kind: str, keyframe: bool, data: bytes) -> bool:
        rec = self.rec
        container = None
        try:
            container = av.open(
                str(rec.path), "w", format=rec.container,
                container_options=_MUX_OPTIONS[rec.container],
            )
            video = rec.codecs.get("video")
            if video is not None:
                size = (0, 0)
                if rec.container == "webm":
                    found = _vp8_size(data) if kind == "video" and video == "VP8" else None
                    if found is None:
                        self.manifest["notes"].append(
                            f"no keyframe within {PREROLL_MS} ms: frame size unknown in the header"
                        )
                    size = found or FALLBACK_SIZE
                self.streams["video"] = container.add_mux_stream(
                    FFMPEG_NAMES[video], width=size[0], height=size[1], time_base=_MS
                )
            if "audio" in rec.codecs:
                self._template = _opus_template()
                self.streams["audio"] = container.add_stream_from_template(
                    self._template.streams.audio[0], time_base=_MS
                )
            self.container = container
            self.codec_contexts = [
                (s.type, bool(s.codec_context.is_encoder), bool(s.codec_context.is_open))
                for s in container.streams
                if s.codec_context is not None
            ]
        except (OSError, av.FFmpegError, ValueError) as exc:
            if container is not None and self.container is None:
                try:
                    container.close()
                except Exception:
                    pass
            self._fail(f"cannot open {rec.path}: {exc}", exc)
            return False
        return True

    def _mux(self, kind: str, ms: int, keyframe: bool, data: bytes, end: int) -> bool:
        packet = av.Packet(data)
        packet.stream = self.streams[kind]
        packet.time_base = _MS
        packet.pts = ms
        packet.dts = ms
        packet.is_keyframe = keyframe
        try:
            self.mux(packet)
        except (OSError, av.FFmpegError, ValueError) as exc:
            self._fail(f"write failed at {ms} ms: {exc}", exc)
            return False
        m = self.manifest
        if m["start_ms"] is None:
            m["start_ms"] = ms
        m["frames"][kind] += 1
        self._manifest_dirty = True
        if end > self._end_ms:
            self._end_ms = end
        return True

    def mux(self, packet: av.Packet) -> None:
        """One packet into the container (a seam for tests that simulate a full disk)."""
        self.container.mux(packet)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ failure / end
    def _fail(self, message: str, exc: Optional[BaseException] = None) -> None:
        if self.failed:
            return
        self.failed = True
        self.log.error("recording failed (%s): %s; the live broadcast continues", self._ids(), message)
        m = self.manifest
        m["status"] = "failed"
        m["error"] = message
        self._manifest_dirty = True
        self._close_container()
        self._write_manifest(force=True)
        self.rec._call_soon(self.rec._writer_failed)

    def _close_container(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # the disk may still be full: keep what is there
                self.log.warning("%s: closing the recording: %s", self._ids(), exc)
        if self._template is not None:
            self._template.close()
            self._template = None

    def _finish(self, ended_by: Optional[str]) -> None:
        m = self.manifest
        if self.container is None and self._preroll and not self.failed:
            # ended before the first keyframe: keep the audio that came
            first = self._preroll[0]
            if self._open(first[0], first[2], first[3]):
                preroll, self._preroll = self._preroll, []
                for item in preroll:
                    if not self._mux(*item):
                        break
        self._close_container()
        if m["start_ms"] is None and not self.rec.path.exists():
            m["file"] = None  # no media ever came: there is nothing to package
            m["notes"].append("no media was received")
        if ended_by is not None and not self.failed:
            m["status"] = "recorded"
        m["ended_by"] = ended_by
        self._manifest_dirty = True
        self._write_manifest(force=True)
        if ended_by is not None:
            self.log.info(
                "recording of broadcast %s %s: %d ms, %d bytes, %d gap(s)",
                self.rec.broadcast.id, m["status"], m["duration_ms"], m["bytes"], len(m["gaps"]),
            )

    # ------------------------------------------------------------------ manifest
    def _write_manifest(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._manifest_final:
            return
        if not force and (now < self._manifest_due or not self._manifest_dirty):
            return
        self._manifest_due = now + MANIFEST_INTERVAL
        m = self.manifest
        m["duration_ms"] = self._end_ms
        m["dropped_frames"] = self.rec.dropped_frames + self.bad_frames
        try:
            m["bytes"] = self.rec.path.stat().st_size
        except OSError:
            pass
        m["updated_at"] = time.time()
        try:
            write_manifest(self.rec.directory, m)
            self._manifest_dirty = False
            self._manifest_error_logged = False
            self._manifest_final = self.failed
        except OSError as exc:
            if not self._manifest_error_logged:
                self._manifest_error_logged = True
                self.log.error("%s: cannot write the manifest: %s", self._ids(), exc)
            self._manifest_due = now + 1.0  # retry soon (a full disk may free up)
