"""``package_recording`` (the packager): one packaging job, a finished recording becomes an HLS replay.

Input: a recording folder ``{data_dir}/recordings/{room}/{broadcast}/`` written by the
recorder (``manifest.json`` plus one media file: H.264 + Opus in MPEG-TS, or VP8 / audio
only in Matroska/WebM; packet times in milliseconds on the broadcast media clock; gaps
for publisher reconnects listed in the manifest; the file may be cut short by a crash).

Output, in the same folder (``packaging.files``): ``hls/`` (playlist and segments), the
poster and the thumbnails. They are built in a temporary folder, then ``hls/`` is
swapped in atomically -- Linux ``renameat2(RENAME_EXCHANGE)`` -- and the images
replaced, so a re-run replaces the previous result cleanly and a reader never sees a
half-written playlist. ``manifest.json`` is updated (atomically) with status
``processing`` -> ``ready`` | ``failed``, ``progress``, ``hls_duration_ms``,
``hls_bytes``, ``segments``...

The job runs in passes, one module each: ``scan`` (read the file once, audio to
``audio``), ``timeline`` (plan segments and stretches), ``thumbnails`` (plan tiles),
``segmenter`` with ``video`` (write segments and the ``playlist``), then the images.

The work is CPU-heavy and blocking: call :func:`package_recording` from a worker thread
(``mediaserver.packaging.jobs.PackagingJobs`` does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

from mediaserver.packaging.files import HLS_DIR, IMAGE_FILES, PLAYLIST, TMP_PREFIX
from mediaserver.packaging.options import (
    AUDIO_RATE,
    MS_TICKS,
    TICKS,
    JobCancelled,
    PackageOptions,
    PackagingError,
    StopCheck,
)
from mediaserver.packaging.playlist import target_duration
from mediaserver.packaging.scan import RecordingSource
from mediaserver.packaging.segmenter import write_segments
from mediaserver.packaging.thumbnails import plan_thumbnails, write_images
from mediaserver.packaging.timeline import Timeline
from mediaserver.packaging.video import VideoPackets
from mediaserver.recording.manifest import read_manifest, update_manifest

__all__ = ["package_recording"]

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
    log = log or logging.getLogger("stagepass.packaging")
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

    check = StopCheck(stop)
    source = RecordingSource(directory, manifest, options, work, check, progress, log)
    try:
        source.scan()
        timeline = Timeline(source, options)
        timeline.plan()
        has_video = bool(timeline.stretches)
        thumbs = plan_thumbnails(timeline, source.width, source.height, options) if has_video else None
        source.audio.finish(timeline.end)
        out = work / "out"
        out.mkdir()
        video = VideoPackets(source, timeline, thumbs, options) if thumbs is not None else None
        segments = write_segments(out / HLS_DIR, source, timeline, video, progress)
        images = write_images(out, thumbs, options)
        if check.stopped:
            raise JobCancelled()
        # swap the new output in: the playlist folder atomically, then the images
        trash = work / "old"
        trash.mkdir()
        _swap_dir(out / HLS_DIR, directory / HLS_DIR, trash / HLS_DIR)
        for name in IMAGE_FILES:
            if (out / name).exists():
                os.replace(out / name, directory / name)
            elif (directory / name).exists():
                (directory / name).unlink()
    except JobCancelled:
        source.audio.close()
        shutil.rmtree(work, ignore_errors=True)
        log.info("packaging of %s stopped; it resumes on the next start", directory)
        raise
    except Exception as exc:
        source.audio.close()
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

    stats = source.stats
    longest = max(s["duration"] for s in segments)
    video, audio = _video_summary(source, timeline), _audio_summary(source)
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
        hls_duration_ms=timeline.end // MS_TICKS,
        hls_bytes=hls_bytes,
        segments=len(segments),
        segment_max_ms=longest // MS_TICKS,
        target_duration=target_duration(longest, TICKS),
        discontinuities=sum(1 for s in segments if s["discontinuity"]),
        video=video,
        audio=audio,
        input_error=source.input_error,
        packaging=packaging,
        **images,
    )
    manifest = update_manifest(directory, **result)
    if on_progress is not None:
        on_progress(100)
    log.info(
        "packaged %s: %d segments, %.1f s, %d bytes, video %s, in %.1f s",
        directory, len(segments), timeline.end / TICKS, hls_bytes,
        video["mode"] if video else "none", packaging["seconds"],
    )
    return manifest


def _video_summary(source: RecordingSource, timeline: Timeline) -> Optional[dict]:
    """The manifest's ``video``: how the replay's video was made (None: audio only)."""
    if not timeline.stretches:
        return None
    stats = source.stats
    copied = sum((s.end - s.start) for s in timeline.stretches if s.kind == "copy") // MS_TICKS
    if source.codec != "h264":
        mode = "transcode"
    elif not stats["encoders_created"]:
        mode = "copy"
    else:
        mode = "mixed" if copied else "reencode"
    return {
        "codec": "h264", "source_codec": source.codec, "mode": mode,
        "width": source.width, "height": source.height,
        "copied_ms": copied,
        "encoded_ms": stats.get("video_encoded_ms", 0),
        "filled_ms": stats.get("video_filled_ms", 0),
    }


def _audio_summary(source: RecordingSource) -> Optional[dict]:
    """The manifest's ``audio`` (None: no audio)."""
    audio = source.audio
    if not audio.active:
        return None
    return {
        "codec": "aac", "channels": audio.channels, "sample_rate": AUDIO_RATE,
        "source_channels": audio.source_channels,
        "bitrate": audio.bitrate_per_channel * audio.channels,
        "silence_ms": audio.silence_samples * 1000 // AUDIO_RATE,
    }
