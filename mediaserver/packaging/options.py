"""What a packaging job is told (``PackageOptions``), how it ends early, and its clock.

Every time inside the packager is in ticks of the MPEG-TS 90 kHz clock (``TICKS``);
the recording's milliseconds become ``ms * MS_TICKS``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

__all__ = [
    "AAC_FRAME",
    "AAC_TICKS",
    "AUDIO_RATE",
    "JobCancelled",
    "MS_TICKS",
    "PackageOptions",
    "PackagingError",
    "StopCheck",
    "TB",
    "TICKS",
]

TICKS = 90000  #: the packager's clock: MPEG-TS 90 kHz
TB = Fraction(1, TICKS)
MS_TICKS = TICKS // 1000  #: ticks in one millisecond
AUDIO_RATE = 48000
AAC_FRAME = 1024
AAC_TICKS = AAC_FRAME * TICKS // AUDIO_RATE  # 1920: one AAC frame on the 90 kHz clock


class PackagingError(Exception):
    """The recording cannot be packaged; the message goes into the manifest."""


class JobCancelled(Exception):
    """The job was asked to stop (server shutdown); the manifest stays ``processing``."""


class StopCheck:
    """Raises :class:`JobCancelled` once ``stop`` is set (looked at every 64th call,
    so the inner loops of the passes can call it per packet)."""

    def __init__(self, stop: Optional[threading.Event]) -> None:
        self.stop = stop
        self._calls = 0

    def __call__(self) -> None:
        self._calls += 1
        if self._calls % 64 == 0 and self.stop is not None and self.stop.is_set():
            raise JobCancelled()

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


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
    #: object storage (``mediaserver.packaging.uploads`` makes it "ready")
    done_status: str = "ready"
