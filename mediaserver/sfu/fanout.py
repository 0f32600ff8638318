"""``Fanout``: forwards one publisher track's RTP packets to every viewer of a room.

Forward, never transcode: each publisher packet's payload is reused as is. The part of a
copy after its fixed header (the header extensions a viewer negotiated, abs-send-time, the
payload) is built once per packet for all viewers with the same extensions; per viewer the
fanout only gives the fields of a 12-byte header (that viewer's SSRC, payload type,
sequence number and timestamp offsets) to ``SenderPort.send``, which writes both into the
UDP mux's ``sendmmsg`` batch for SRTP in place. No task switch, no copy of the payload
into a new packet object, no packetizer.

Per viewer a ``Downstream`` (``downstream.py``) holds the rewrite state:

* sequence numbers stay contiguous for the viewer even when it skipped packets (after a
  drop or a publisher reconnect): each start opens a *segment* with its own offsets;
* a viewer starts, and restarts after a drop, only on a keyframe (the keyframe gate);
  while it waits, keyframe requests go to the publisher through the rate-limited
  ``KeyframeRequester``;
* a viewer whose socket is backed up drops packets and waits for the next keyframe, so
  it never delays the publisher or the other viewers;
* each publisher packet is forwarded once: the fanout tracks the highest extended
  sequence number of the incoming stream, and a duplicate (a late original after its
  retransmission), or a packet too old for any viewer to use (``LATE_LIMIT``), goes
  nowhere, sinks included. A late packet that fills a gap is forwarded, but never starts
  a viewer nor reaches one that started after it;
* NACKs from a viewer are answered from the fanout's shared packet history
  (``nack_answers.NackAnswers``, the fanout's feedback half);
* sender reports: each viewer's NTP/RTP pair is the publisher's own (from its last sender
  report, carried forward to the packet's send time) translated through that viewer's
  timestamp offset, so browsers keep lip sync whatever the network did upstream.

The fanout outlives publishers: when the creator reconnects, ``attach_source`` starts a
new generation and viewers resume on its first keyframe with timestamps continued by
wall clock, without renegotiating.

*Sinks* (``add_sink``) see every source packet once (duplicates never), after the viewers got it:
``sink(packet, codec, generation, keyframe_start)``. The recorder is one. A sink learns
of a new source (publisher reconnect) by ``generation`` changing. A sink must be cheap
and must not modify the packet (the fanout's NACK history shares its payload); one that
raises is removed (and told, if it is a bound method of an object with ``sink_failed``),
so a recorder bug can never stop the live path.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Awaitable, Callable, Optional

from aiortc.rtp import RtpPacket

from mediaserver.sfu.downstream import Downstream, packet_tail
from mediaserver.sfu.fanout_stats import FanoutStats
from mediaserver.sfu.keyframe_requester import KeyframeRequester
from mediaserver.sfu.packet_history import PacketHistory
from mediaserver.sfu.nack_answers import NackAnswers
from mediaserver.sfu.retransmission import LATE_LIMIT, extend_seq
from mediaserver.sfu.rtp_payloads import is_keyframe_start
from core.tasks import TaskOwner

__all__ = ["Downstream", "Fanout", "FanoutStats", "Sink"]

#: ``sink(packet, codec, generation, keyframe_start)``, called once per source packet
Sink = Callable[[RtpPacket, str, int, bool], None]

HISTORY_SIZE = 1024  # packets kept for NACKs, shared by all viewers (~6 s of 1.5 Mbit/s)
_MAX_SEGMENTS = 8
_NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
_NTP_UNIT = float(1 << 32)


def _not_recovering(seq: int) -> bool:
    return False


class Fanout(NackAnswers):
    """Forwards one track kind (``audio`` or ``video``) of a room to its viewers."""

    def __init__(
        self,
        kind: str,
        tasks: TaskOwner,
        logger: logging.LoggerAdapter,
        keyframe_min_interval: float = 1.0,
    ) -> None:
        self.kind = kind
        self._logger = logger
        self._downstreams: list[Downstream] = []
        self._history = PacketHistory(HISTORY_SIZE)  # allocated once: nothing kept per packet
        self._generation = 0
        self._source_pli: Optional[Callable[[], Awaitable[None]]] = None
        self._highest: Optional[int] = None  # extended sequence number, this generation
        self._restart_seq = -1  # RFC 3550 A.1: a far jump is believed on its 2nd packet
        self._key_ext = 0  # extended sequence number of the last keyframe's first packet
        self._start_ext = 0  # where a viewer starting on the current packet starts
        self._cur_ext = 0
        # the publisher's clock from its last sender report: (ntp, rtp, wall time, rate)
        self._source_clock: Optional[tuple[int, int, float, int]] = None
        self._sr_ntp = 0
        self._sr_rtp = 0
        self._last_packet_time = time.monotonic()
        self._switch_time: Optional[float] = None
        self.codec: Optional[str] = None
        self.sinks: list[Sink] = []  # copy-on-write, like _downstreams
        #: whether the publisher's retransmission of a (16-bit) sequence number is still
        #: awaited (``ReceiverTap.recovering``); if not, a viewer missing it needs a keyframe
        self.source_recovering: Callable[[int], bool] = _not_recovering
        self.stats = FanoutStats()
        self.keyframes: Optional[KeyframeRequester] = (
            KeyframeRequester(self._send_pli, tasks, keyframe_min_interval)
            if kind == "video"
            else None
        )

    # ------------------------------------------------------------ sources
    def attach_source(self, send_pli: Optional[Callable[[], Awaitable[None]]]) -> None:
        """A (new) publisher track feeds this fanout; viewers resume on its first keyframe."""
        self._source_pli = send_pli
        self.codec = None
        self._new_generation()

    def _new_generation(self) -> None:
        """A new source stream (or the same one restarted): viewers resume on a keyframe."""
        self._generation += 1
        self._highest = None
        self._source_clock = None
        self._switch_time = self._last_packet_time
        for d in self._downstreams:
            d.waiting = True
        if self.keyframes is not None and self._downstreams:
            self.keyframes.request()

    def on_sender_report(self, ntp: int, rtp: int, clock_rate: int) -> None:
        """The publisher's RTCP sender report: its NTP time and the RTP timestamp of the
        same instant. Viewers' sender reports are translated from it."""
        self._source_clock = (ntp, rtp, time.time(), clock_rate)

    def detach_source(self, send_pli: Callable[[], Awaitable[None]]) -> None:
        """The publisher that fed this fanout left (a newer one may already be attached)."""
        if self._source_pli == send_pli:
            self._source_pli = None
            self.codec = None
            self.source_recovering = _not_recovering
            self.release()

    async def _send_pli(self) -> None:
        if self._source_pli is not None:
            await self._source_pli()

    def request_keyframe(self) -> None:
        if self.keyframes is not None:
            self.keyframes.request()

    # ------------------------------------------------------------ viewers
    def add(self, downstream: Downstream) -> None:
        """A viewer joins. No keyframe is requested yet: one that arrived before the
        viewer's transport is up would be lost to it and spend the rate limit, so the
        request goes out when it is ready (``viewer_ready``, or its first packet after)."""
        self._downstreams = self._downstreams + [downstream]

    def viewer_ready(self, downstream: Downstream) -> None:
        """A viewer's transport is up: ask for the keyframe it starts on."""
        if downstream.waiting:
            self.request_keyframe()

    def remove(self, downstream: Downstream) -> None:
        self._downstreams = [d for d in self._downstreams if d is not downstream]
        downstream.nacks.close()

    def hand_over(self, downstream: Downstream, other: "Fanout") -> None:
        """Move a viewer to ``other`` (another rendition of the same track) without
        renegotiating: its sequence numbers stay contiguous, its timestamps continue by
        wall clock, and it starts there on the next keyframe (asked for at once)."""
        self.remove(downstream)
        downstream.park()
        other.add(downstream)
        other.viewer_ready(downstream)

    def __len__(self) -> int:
        return len(self._downstreams)

    # ------------------------------------------------------------ sinks
    @property
    def generation(self) -> int:
        """Increments each time a (new) publisher track is attached."""
        return self._generation

    def add_sink(self, sink: Sink) -> None:
        self.sinks = self.sinks + [sink]

    def remove_sink(self, sink: Sink) -> None:
        self.sinks = [s for s in self.sinks if s != sink]

    def _sink_failed(self, sink: Sink, exc: Exception) -> None:
        self._logger.error("sink %r failed; removed", sink, exc_info=exc)
        self.remove_sink(sink)
        notify = getattr(getattr(sink, "__self__", None), "sink_failed", None)
        if notify is not None:
            try:
                notify(exc)
            except Exception:
                self._logger.exception("sink_failed of %r failed", sink)

    def can_deliver_to(self, payload_types: dict[str, int]) -> bool:
        """Whether a viewer that negotiated ``payload_types`` can receive the live codec."""
        return self.codec is None or self.codec in payload_types

    # ------------------------------------------------------------ hot path
    def on_packet(self, packet: RtpPacket, codec: str, arrival: float) -> None:
        """Forward one publisher packet to every viewer. Called for each packet received."""
        stats = self.stats
        stats.packets_in += 1
        seq = packet.sequence_number
        ts = packet.timestamp
        payload = packet.payload
        marker = packet.marker
        history = self._history
        highest = self._highest
        ext = seq + 0x10000 if highest is None else highest + ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
        late = highest is not None and ext <= highest
        if late:
            if self._refuse_late(ext, seq):
                return
            if self._highest is None:  # the source restarted its sequence numbers
                ext, late = seq + 0x10000, False
        gen = self._generation
        self.codec = codec
        if late:  # fills a gap: forwarded, but never a place for a viewer to start
            sink_keyframe = is_keyframe_start(codec, payload)
            keyframe = False
        else:
            self._highest = ext
            keyframe = sink_keyframe = is_keyframe_start(codec, payload)
        self._cur_ext = ext
        now = time.monotonic()
        history.put(gen, ext, ts, marker, payload, codec, now)
        start = ext  # where a viewer starting on this keyframe starts: its frame's first packet
        if keyframe and self.keyframes is not None:
            self.keyframes.satisfied()
            start = self._key_ext = self._frame_start(ext, ts, gen)
        self._start_ext = start
        wall = time.time()
        abs_send = ((int((wall + _NTP_EPOCH) * _NTP_UNIT) >> 14) & 0xFFFFFF).to_bytes(3, "big")
        clock = self._source_clock
        if clock is not None:  # the publisher's NTP/RTP pair, carried forward to now
            elapsed = wall - clock[2]
            self._sr_ntp = ntp = clock[0] + int(elapsed * _NTP_UNIT)
            self._sr_rtp = rtp = clock[1] + int(elapsed * clock[3])
        elif not late:  # no sender report yet: this packet's own time
            self._sr_ntp = ntp = int((wall + _NTP_EPOCH) * _NTP_UNIT)
            self._sr_rtp = rtp = ts
        else:
            ntp, rtp = self._sr_ntp, self._sr_rtp
        self._last_packet_time = now
        if late:
            self._forward_late(packet, ext, gen, abs_send, ntp, rtp)
            stats.delays.append(time.perf_counter() - arrival)
            self._to_sinks(packet, codec, gen, sink_keyframe)
            return
        sent = 0
        layout: object = None
        tail = payload
        size = len(payload)
        mark = marker << 7
        for d in self._downstreams:
            if d.waiting or d.generation != gen:
                if not d.port.ready():
                    continue
                if not keyframe:
                    self.request_keyframe()
                    continue
                if not self._start(d, start & 0xFFFF, ts, codec, gen):
                    continue
                if start != ext and not self._send_earlier(d, start, ext, ntp, rtp, abs_send):
                    continue
            if d.layout is not layout:  # the same for (nearly) every viewer: built once
                layout = d.layout
                tail = packet_tail(d.layout, abs_send, payload)
            vseq = (seq + d.seq_delta) & 0xFFFF
            vts = (ts + d.ts_delta) & 0xFFFFFFFF
            try:
                delivered = d.port.send((d.first_byte, mark | d.pt, vseq, vts, d.ssrc), tail, size, ntp,
                                        (rtp + d.ts_delta) & 0xFFFFFFFF)
            except Exception as exc:  # this packet is lost for this viewer, nothing more
                self._send_failed(d, 12 + len(tail), exc)
                continue
            if delivered:
                d.last_vseq = vseq
                d.last_vts = vts
                sent += 1
            else:
                d.dropped += 1
                stats.dropped += 1
                if self.keyframes is not None and not d.waiting:
                    d.waiting = True
                    self._logger.info("viewer %s backed up, skipping to next keyframe", d.label)
                    self.keyframes.request()
        stats.packets_out += sent
        stats.delays.append(time.perf_counter() - arrival)
        for sink in self.sinks:
            try:
                sink(packet, codec, gen, keyframe)
            except Exception as exc:
                self._sink_failed(sink, exc)

    def _to_sinks(self, packet: RtpPacket, codec: str, gen: int, keyframe: bool) -> None:
        for sink in self.sinks:
            try:
                sink(packet, codec, gen, keyframe)
            except Exception as exc:
                self._sink_failed(sink, exc)

    def _forward_late(self, packet: RtpPacket, ext: int, gen: int, abs_send: bytes, ntp: int,
                      rtp: int) -> None:
        """A packet that fills a gap (reordered, or the publisher's retransmission): to the
        viewers that already got what came after it, never as a place to start."""
        payload = packet.payload
        mark = packet.marker << 7
        sent = 0
        for d in self._downstreams:
            if d.waiting or d.generation != gen or ext < d.start_ext or d.last_vseq is None:
                continue
            vseq = (packet.sequence_number + d.seq_delta) & 0xFFFF
            vts = (packet.timestamp + d.ts_delta) & 0xFFFFFFFF
            if self._send_to(d, (d.first_byte, mark | d.pt, vseq, vts, d.ssrc),
                             packet_tail(d.layout, abs_send, payload), len(payload), ntp,
                             (rtp + d.ts_delta) & 0xFFFFFFFF):
                sent += 1
        self.stats.packets_out += sent

    def _frame_start(self, ext: int, ts: int, gen: int) -> int:
        """The first packet of the frame (same timestamp) that ``ext`` belongs to, from the
        history: an H.264 IDR may follow packets holding its AUD, SEI, SPS and PPS."""
        start = ext
        history = self._history
        for _ in range(64):
            prev = start - 1
            if not history.same_frame(prev, gen, ts):
                break
            start = prev
        return start

    def _send_earlier(self, d: Downstream, start: int, ext: int, ntp: int, rtp: int,
                      abs_send: bytes) -> bool:
        """Send a viewer that starts at ``start`` the packets of its first frame that went
        by before the packet that showed it is a keyframe (``ext``). False if one could not
        be sent: the viewer then waits for the next keyframe."""
        history = self._history
        for e in range(start, ext):
            _, _, ts, marker, payload, _, _ = history.get(e)  # type: ignore[misc]
            vseq = (e + d.seq_delta) & 0xFFFF
            vts = (ts + d.ts_delta) & 0xFFFFFFFF
            if not self._send_to(d, (d.first_byte, (marker << 7) | d.pt, vseq, vts, d.ssrc),
                                 packet_tail(d.layout, abs_send, payload), len(payload), ntp,
                                 (rtp + d.ts_delta) & 0xFFFFFFFF):
                d.dropped += 1
                self.stats.dropped += 1
                d.waiting = True
                return False
            d.last_vseq, d.last_vts = vseq, vts
        return True

    def _send_to(self, d: Downstream, header: tuple[int, int, int, int, int], tail: bytes,
                 payload_size: int, ntp: int, vts: int) -> bool:
        try:
            return d.port.send(header, tail, payload_size, ntp, vts)
        except Exception as exc:
            self._send_failed(d, 12 + len(tail), exc)
            return False

    def _send_failed(self, d: Downstream, size: int, exc: Exception) -> None:
        """A send that raised (SRTP refusing a packet, a socket error) costs that packet for
        that viewer; the viewer NACKs it if it cares. Logged on the first and every 100th."""
        d.send_errors += 1
        self.stats.send_errors += 1
        if d.send_errors % 100 == 1:
            self._logger.warning("viewer %s: a %d-byte packet was not sent (%s: %s; %d so far)",
                                 d.label, size, type(exc).__name__, exc, d.send_errors)

    def _refuse_late(self, ext: int, seq: int) -> bool:
        """True for a packet at or behind the newest that must not be forwarded: a copy of
        one already forwarded, or one too old for any viewer. A far jump back that the
        next packet confirms is the source restarting its sequence: a new generation."""
        highest = self._highest
        assert highest is not None
        if highest - ext >= LATE_LIMIT:
            if highest - ext >= HISTORY_SIZE and seq == self._restart_seq:
                self._logger.info("%s sequence numbers restarted", self.kind)
                self._new_generation()
                return False
            self._restart_seq = (seq + 1) & 0xFFFF
            self.stats.too_late += 1
            return True
        if self._history.holds(ext, self._generation):
            self.stats.duplicates += 1
            return True
        return False

    def _start(self, d: Downstream, seq: int, ts: int, codec: str, gen: int) -> bool:
        """Open a new segment for a viewer at a keyframe (or any audio packet)."""
        pt = d.payload_types.get(codec)
        if pt is None:
            if d.unsupported_codec != codec:
                d.unsupported_codec = codec
                self._logger.warning("viewer %s did not negotiate %s", d.label, codec)
            return False
        d.pt = pt
        if d.last_vseq is None:
            d.seq_delta = (random.getrandbits(15) - seq) & 0xFFFF
            d.ts_delta = (d.last_vts - ts) & 0xFFFFFFFF
        else:
            d.seq_delta = (d.last_vseq + 1 - seq) & 0xFFFF
            if d.generation != gen:
                # a new publisher: continue this viewer's timeline by wall clock
                since = d.left_at if d.left_at is not None else self._switch_time
                gap = time.monotonic() - (since or time.monotonic())
                d.left_at = None
                advance = int(gap * d.clock_rates.get(codec, 90000)) + 1
                d.ts_delta = (d.last_vts + advance - ts) & 0xFFFFFFFF
        d.generation = gen
        d.waiting = False
        d.start_ext = self._start_ext
        d.segments.append(((seq + d.seq_delta) & 0xFFFF, d.seq_delta, d.ts_delta, gen))
        del d.segments[:-_MAX_SEGMENTS]
        return True

    # ------------------------------------------------------------ relays
    @property
    def source_clock(self) -> Optional[tuple[int, int, float, int]]:
        """The publisher's last sender report: ``(ntp, rtp, time.time() of it, clock rate)``."""
        return self._source_clock

    def kept(self, seq: int) -> Optional[tuple[int, int, bytes, str]]:
        """The current source's packet with (16-bit) sequence number ``seq``, if the history
        still keeps it: ``(timestamp, marker, payload, codec)`` (a relay asking again)."""
        if self._highest is None:
            return None
        ext = extend_seq(self._highest, seq)
        entry = self._history.get(ext)
        if entry is None or entry[1] != ext or entry[0] != self._generation:
            return None
        return entry[2], entry[3], entry[4], entry[5]

    # ------------------------------------------------------------ lifetime
    def release(self) -> None:
        """The publisher left or the broadcast ended: let go of the packets kept for
        retransmission and of the delay samples. A room (and its fanouts) outlives its
        publishers and broadcasts; their memory should not stay with it."""
        self._history.clear()
        self.stats.delays.clear()
