"""``FrameAssembler``: whole encoded frames from one track's RTP packets, for the recorder.

The recorder is a fanout *sink*: ``push`` is called once for every packet the publisher
sends (``Fanout.on_packet``), so the common case, the packet expected next, costs a list
append and a few comparisons (about 0.5 us; a frame's emission about 1 us more). Rules:

* a frame is the run of packets with one RTP timestamp, in sequence-number order (16-bit
  wrap). It is complete when its last packet carries the marker bit, or when the packet
  that follows it (by sequence number) has another timestamp;
* packets may arrive out of order (network reordering, NACK retransmissions): a frame
  waits for a missing packet up to ``reorder_window`` seconds. Past that the packet is
  lost: the frame is dropped, and so is everything up to the next keyframe (a delta
  frame after a loss would decode as garbage). The assembler asks for a keyframe
  (``request_keyframe``, which the fanout rate-limits) and resumes on it;
* a new *generation* (the publisher reconnected, ``Fanout.attach_source``) resets the
  track: frames resume on the new source's first keyframe;
* audio (Opus): every packet is a frame, emitted at once; a packet older than the last
  one emitted is dropped, a missing one is just missing (no keyframes in audio).

Frames come out through ``on_frame(generation, rtp_ext, keyframe, payloads)``: ``rtp_ext``
is the frame's RTP timestamp unwrapped (32-bit wrap) and counted from the first packet of
its generation, which ``on_generation(generation, codec)`` announces as it arrives, so a
caller can anchor the generation's RTP clock to wall-clock time.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from aiortc.rtp import RtpPacket

__all__ = ["FrameAssembler", "FrameHandler"]

#: on_frame(generation, rtp_ext, keyframe, payloads)
FrameHandler = Callable[[int, int, bool, list], None]

_HALF = 0x80000000
_U32 = 0xFFFFFFFF


class FrameAssembler:
    """Reassembles one track (``kind`` ``"video"`` or ``"audio"``); see the module docs."""

    def __init__(
        self,
        kind: str,
        on_frame: FrameHandler,
        request_keyframe: Callable[[], None] = lambda: None,
        on_generation: Optional[Callable[[int, str], None]] = None,
        on_error: Optional[Callable[[Exception], None]] = None,
        reorder_window: float = 0.3,
        max_pending: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self._video = kind == "video"
        self._on_frame = on_frame
        self._request_keyframe = request_keyframe
        self._on_generation = on_generation
        self._on_error = on_error
        self._reorder_window = reorder_window
        self._max_pending = max_pending
        self._clock = clock
        self.generation: Optional[int] = None
        # RTP timestamp unwrapping: the last emitted frame's raw and extended timestamps
        self._ref_ts = 0
        self._ref_ext = 0
        # video: the open frame (contiguous packets up to _scan), and packets that
        # arrived ahead of a missing one (or while waiting for a keyframe)
        self._frame: list[RtpPacket] = []
        self._frame_ts = 0
        self._frame_key = False
        self._scan = 0  # the next sequence number expected
        self._ahead: dict[int, tuple[RtpPacket, bool]] = {}
        self._waiting = True  # for a keyframe
        self._hole_since: Optional[float] = None
        self._last_request = -1e9
        self._stale = 0
        # audio: the last emitted sequence number
        self._last_seq: Optional[int] = None
        # counters
        self.frames = 0
        self.dropped_frames = 0  # frames given up on (loss, or waiting for a keyframe)
        self.losses = 0  # times the track lost a packet and had to wait for a keyframe

    # ------------------------------------------------------------------ sink
    def push(self, packet: RtpPacket, codec: str, generation: int, keyframe: bool) -> None:
        """One packet of the track (the fanout sink signature)."""
        if generation != self.generation:
            self._new_generation(packet, codec, generation)
        if not self._video:
            self._push_audio(packet)
            return
        if self._waiting:
            self._wait(packet, keyframe)
            return
        seq = packet.sequence_number
        if seq != self._scan:
            self._out_of_order(packet, seq, keyframe)
            return
        self._take(packet, keyframe)  # the common case: the packet that was expected next
        if self._ahead:
            self._drain()

    def _take(self, packet: RtpPacket, keyframe: bool) -> None:
        """The packet that was expected next (``push``'s common case, and packets taken
        from ``_ahead``) joins the open frame."""
        self._scan = (packet.sequence_number + 1) & 0xFFFF
        frame = self._frame
        if frame and packet.timestamp != self._frame_ts:
            self._emit()  # a new timestamp without a marker: the open frame is complete
            frame = self._frame
        if not frame:
            self._frame_ts = packet.timestamp
            self._frame_key = keyframe
        elif keyframe:
            self._frame_key = True
        frame.append(packet)
        if packet.marker:
            self._emit()

    def sink_failed(self, exc: Exception) -> None:
        """The fanout removed ``push`` because it raised ``exc``."""
        if self._on_error is not None:
            self._on_error(exc)

    # ------------------------------------------------------------------ generations
    def _new_generation(self, packet: RtpPacket, codec: str, generation: int) -> None:
        self.generation = generation
        self._ref_ts = packet.timestamp
        self._ref_ext = 0
        if self._frame:
            self.dropped_frames += 1  # the unfinished frame of the previous source
        self._reset()
        self._last_seq = None
        if self._video:
            self._enter_wait()
        if self._on_generation is not None:
            self._on_generation(generation, codec)

    def _reset(self) -> None:
        self._frame = []
        self._ahead = {}
        self._hole_since = None
        self._stale = 0

    def wait_for_keyframe(self) -> None:
        """Drop what is pending and resume on the next keyframe (e.g. the writer fell
        behind and discarded frames)."""
        if self._video and not self._waiting:
            self._reset()
            self._enter_wait()

    def _enter_wait(self) -> None:
        self._waiting = True
        self._last_request = self._clock()
        self._request_keyframe()

    # ------------------------------------------------------------------ audio
    def _push_audio(self, packet: RtpPacket) -> None:
        seq = packet.sequence_number
        last = self._last_seq
        if last is not None and (seq - last - 1) & 0xFFFF >= 0x8000:
            self.dropped_frames += 1  # late or duplicate: its successor is already out
            return
        self._last_seq = seq
        self._emit_frame(packet.timestamp, True, [packet.payload])

    # ------------------------------------------------------------------ video
    def _wait(self, packet: RtpPacket, keyframe: bool) -> None:
        """Waiting for a keyframe: keep a few recent packets (a keyframe's first packet
        may arrive after its second), start on a keyframe-start packet."""
        seq = packet.sequence_number
        ahead = self._ahead
        ahead[seq] = (packet, keyframe)
        if len(ahead) > 64:
            del ahead[next(iter(ahead))]
        if not keyframe:
            now = self._clock()
            if now - self._last_request > 0.5:
                self._last_request = now
                self._request_keyframe()
            return
        self._waiting = False
        self._resume_at(self._frame_start(seq))

    def _frame_start(self, seq: int) -> int:
        """The first packet held in ``_ahead`` of the frame ``seq`` belongs to: an H.264
        keyframe is flagged on its IDR, which may follow its AUD, SEI, SPS and PPS."""
        ahead = self._ahead
        ts = ahead[seq][0].timestamp
        while True:
            prev = (seq - 1) & 0xFFFF
            entry = ahead.get(prev)
            if entry is None or entry[0].timestamp != ts:
                return seq
            seq = prev

    def _resume_at(self, seq: int) -> None:
        """Start over at ``seq`` (a keyframe start in ``_ahead``), forgetting older packets."""
        self._ahead = {s: e for s, e in self._ahead.items() if (s - seq) & 0xFFFF < 0x8000}
        self._frame = []
        self._scan = seq
        self._hole_since = None
        self._stale = 0
        self._drain()

    def _out_of_order(self, packet: RtpPacket, seq: int, keyframe: bool) -> None:
        if (seq - self._scan) & 0xFFFF >= 0x8000:  # behind: already taken, or given up on
            self._stale += 1
            if self._stale > 256:  # the stream jumped far ahead: start over
                self._lost()
            return
        self._stale = 0
        self._ahead[seq] = (packet, keyframe)  # a packet is missing before this one
        self._check_hole()

    def _drain(self) -> None:
        """Take the packets of ``_ahead`` that are now contiguous."""
        ahead = self._ahead
        progressed = False
        while True:
            entry = ahead.pop(self._scan, None)
            if entry is None:
                break
            progressed = True
            self._take(entry[0], entry[1])
        if not ahead:
            self._hole_since = None
        else:
            if progressed:
                self._hole_since = None  # another hole: give it its own window
            self._check_hole()

    def _emit(self) -> None:
        frame = self._frame
        self._frame = []
        self._emit_frame(self._frame_ts, self._frame_key, [p.payload for p in frame])

    def _emit_frame(self, ts: int, keyframe: bool, payloads: list) -> None:
        ext = self._ref_ext + ((ts - self._ref_ts + _HALF) & _U32) - _HALF
        self._ref_ts = ts
        self._ref_ext = ext
        self.frames += 1
        self._on_frame(self.generation, ext, keyframe, payloads)  # type: ignore[arg-type]

    def _check_hole(self) -> None:
        """Packets wait behind a missing one: give it ``reorder_window`` to arrive."""
        now = self._clock()
        if self._hole_since is None:
            self._hole_since = now
        elif now - self._hole_since > self._reorder_window or len(self._ahead) > self._max_pending:
            self._lost()

    def _lost(self) -> None:
        """A packet is lost: drop up to the next keyframe already received, or wait."""
        self.losses += 1
        if self._frame:
            self.dropped_frames += 1
        scan = self._scan
        keys = [s for s, (_, key) in self._ahead.items() if key and (s - scan) & 0xFFFF < 0x8000]
        if keys:
            self._resume_at(self._frame_start(min(keys, key=lambda s: (s - scan) & 0xFFFF)))
            return
        self._reset()
        self._enter_wait()
