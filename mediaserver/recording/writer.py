"""``RecordingWriter``: the recorder's thread that owns the output file and the manifest.

The event loop only appends frames to a queue; this thread depayloads them, opens the
container on the first frame it can describe (``recording.container``), muxes with
stream copy and refreshes ``manifest.json`` every ``MANIFEST_INTERVAL`` seconds. A write
error (disk full...) never reaches the live path: the writer logs it with the room and
broadcast ids, closes what it can, marks the manifest ``failed`` (retrying the manifest
write while the disk stays full) and tells the recorder to detach from the fanouts.
"""

from __future__ import annotations

import fractions
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import av

from mediaserver.recording.container import (
    DEPAYLOAD,
    FFMPEG_NAMES,
    MUX_OPTIONS,
    opus_template,
    vp8_size,
)
from mediaserver.recording.manifest import write_manifest

__all__ = ["FALLBACK_SIZE", "MANIFEST_INTERVAL", "PREROLL_MS", "RecordingWriter", "WriterOwner"]

MANIFEST_INTERVAL = 5.0  #: seconds between manifest refreshes while recording
PREROLL_MS = 5000  #: how long a WebM with video may wait for the first keyframe (frame size)
FALLBACK_SIZE = (640, 480)  #: frame size announced if no keyframe came within PREROLL_MS
_MS = fractions.Fraction(1, 1000)


class WriterOwner(Protocol):
    """What the writer reads from its recorder, and the loop-side calls it makes (through
    ``_call_soon``, from its thread)."""

    room: str
    broadcast: Any
    codecs: dict[str, str]
    container: str
    directory: Path
    path: Path
    log: logging.Logger | logging.LoggerAdapter
    dropped_frames: int
    _queue: "queue.SimpleQueue[tuple]"

    def _call_soon(self, fn: Callable, *args: Any) -> None: ...
    def _request_keyframe(self, kind: str) -> None: ...
    def _writer_failed(self) -> None: ...
    def _writer_done(self) -> None: ...


class RecordingWriter:
    """Owns the output container and the manifest; runs in its own thread."""

    def __init__(self, recorder: WriterOwner) -> None:
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
                data = DEPAYLOAD[self.rec.codecs["video"]](payloads)
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
                container_options=MUX_OPTIONS[rec.container],
            )
            video = rec.codecs.get("video")
            if video is not None:
                size = (0, 0)
                if rec.container == "webm":
                    found = vp8_size(data) if kind == "video" and video == "VP8" else None
                    if found is None:
                        self.manifest["notes"].append(
                            f"no keyframe within {PREROLL_MS} ms: frame size unknown in the header"
                        )
                    size = found or FALLBACK_SIZE
                self.streams["video"] = container.add_mux_stream(
                    FFMPEG_NAMES[video], width=size[0], height=size[1], time_base=_MS
                )
            if "audio" in rec.codecs:
                self._template = opus_template()
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
