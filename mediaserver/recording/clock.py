"""``RecordedTrack``: one recorded track's frames stamped on the broadcast media clock.

Packet times are milliseconds since ``Broadcast.started_at``, the clock danmaku ``t_ms``
use. For every source generation (a publisher connection) and track, the generation's
first packet maps to its arrival time (``wall_clock() - started_at``); later ones follow
the RTP clock (90 kHz video, 48 kHz audio) unwrapped across 32-bit wrap. During a
generation's first ``ANCHOR_WINDOW_MS`` the anchor is refined to the earliest
``arrival - rtp_time``, which keeps audio and video within a few milliseconds of each
other. A publisher that drops and returns continues the same clock: times stay monotonic
and the wall-clock gap is kept (the recorder writes it to the manifest's ``gaps``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from mediaserver.recording.container import CLOCK_RATES
from mediaserver.recording.frame_assembler import FrameAssembler

__all__ = ["ANCHOR_WINDOW_MS", "RecordedTrack", "TrackOwner"]

ANCHOR_WINDOW_MS = 500  #: how long a new source's frames are held while its clock anchor settles


class TrackOwner(Protocol):
    """What a track needs from its recorder."""

    broadcast: Any
    wall_clock: Callable[[], float]

    def _request_keyframe_for(self, kind: str) -> Callable[[], None]: ...
    def _sink_failed(self, exc: Exception) -> None: ...
    def _source_changed(self) -> None: ...
    def _note(self, text: str) -> None: ...
    def _flush_settling(self) -> None: ...
    def _frame(self, track: "RecordedTrack", ms: int, keyframe: bool, payloads: list) -> None: ...


class RecordedTrack:
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

    def __init__(self, recorder: TrackOwner, kind: str, codec: str) -> None:
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
