"""``Recorder``: one broadcast's recording, written while it is live, never transcoded.

The recorder is one more consumer of the room's encoded frames. It hangs a sink on each
of the room's fanouts (``Fanout.add_sink``), reassembles frames (``FrameAssembler``),
stamps them on the broadcast media clock (``RecordedTrack``) and hands them to a writer
thread (``RecordingWriter``) that muxes them with PyAV *stream copy* (``add_mux_stream``:
no encoder, no decoder is opened) into MPEG-TS or WebM (``recording.container``).

A publisher that drops and returns continues the same file: its track waits for a
keyframe, times stay monotonic, the wall-clock gap is kept and written as
``[from_ms, to_ms]`` to the manifest's ``gaps``: from the end of the last media before,
to the first media after (any stretch of more than ``GAP_MS`` without media from any
track is a gap too).

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

**Failures.** A write error never reaches the live path (see ``recording.writer``); the
recorder then detaches from the fanouts. The writer thread keeps disk latency off the
event loop: the loop only appends to a queue once per *frame*; if the queue holds more
than ``MAX_QUEUED`` frames (about 25 s of 30 fps video and Opus: the disk is stalled)
frames are dropped and video resumes on a keyframe. Muxing inline would cost about as
much CPU (~10 us a packet) but one slow ``write`` (a saturated disk, a network
filesystem) would stall every room.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from pathlib import Path
from typing import Any, Callable, Optional

from mediaserver.recording.clock import RecordedTrack
from mediaserver.recording.container import CLOCK_RATES, MEDIA_FILES, choose_container
from mediaserver.recording.manifest import recording_dir
from mediaserver.recording.writer import RecordingWriter

__all__ = ["GAP_MS", "MAX_QUEUED", "Recorder"]

GAP_MS = 1000  #: a stretch without any media longer than this is written as a gap
MAX_QUEUED = 2000  #: frames waiting for the writer before the recorder drops frames


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
        self._tracks = {kind: RecordedTrack(self, kind, codec) for kind, codec in self.codecs.items()}
        self._fanouts: dict[str, Any] = {}
        self._gap_open = False
        self._media_end: Optional[int] = None
        self.dropped_frames = 0
        self._stopping = False
        self._done: Optional[asyncio.Future] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._writer = RecordingWriter(self)

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
    def _frame(self, track: RecordedTrack, ms: int, keyframe: bool, payloads: list) -> None:
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
        ready.sort(key=RecordedTrack.first_ms)
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

