"""``Fanout``: forwards one publisher track's RTP packets to every viewer of a room.

Forward, never transcode: each publisher packet's payload is reused as is. Per viewer the
fanout only writes a 12-byte header (that viewer's SSRC, payload type, sequence number
and timestamp offsets) plus the header extensions that viewer negotiated, then SRTP and
``sendto`` (``SenderPort``). No task switch, no copy of the payload into a new packet
object, no packetizer.

Per viewer a ``Downstream`` holds the rewrite state:

* sequence numbers stay contiguous for the viewer even when it skipped packets (after a
  drop or a publisher reconnect): each start opens a *segment* with its own offsets;
* a viewer starts, and restarts after a drop, only on a keyframe (the keyframe gate);
  while it waits, keyframe requests go to the publisher through the rate-limited
  ``KeyframeRequester``;
* a viewer whose socket is backed up drops packets and waits for the next keyframe, so
  it never delays the publisher or the other viewers;
* NACKs from a viewer are answered from the fanout's shared packet history, mapped back
  through the viewer's segments, and sent as RTX when the viewer negotiated it.

The fanout outlives publishers: when the creator reconnects, ``attach_source`` starts a
new generation and viewers resume on its first keyframe with timestamps continued by
wall clock, without renegotiating.

*Sinks* (``add_sink``) see every source packet once, after the viewers got it:
``sink(packet, codec, generation, keyframe_start)``. The recorder is one. A sink learns
of a new source (publisher reconnect) by ``generation`` changing. A sink must be cheap
and must not modify the packet (the fanout's NACK history shares its payload); one that
raises is removed (and told, if it is a bound method of an object with ``sink_failed``),
so a recorder bug can never stop the live path.
"""

from __future__ import annotations

import logging
import random
import struct
import time
from typing import Awaitable, Callable, Optional

from aiortc.clock import current_ntp_time
from aiortc.rtp import RtpPacket

from .aiortc_bridge import ABS_SEND_TIME_URI, MID_URI, NegotiatedStream, SenderPort
from .keyframe_requester import KeyframeRequester
from .packet_history import PacketHistory
from .rtp_payloads import is_keyframe_start
from .samples import SampleRing
from .tasks import TaskOwner

__all__ = ["Downstream", "Fanout", "FanoutStats", "Sink"]

#: ``sink(packet, codec, generation, keyframe_start)``, called once per source packet
Sink = Callable[[RtpPacket, str, int, bool], None]

HISTORY_SIZE = 1024  # packets kept for NACKs, shared by all viewers (~6 s of 1.5 Mbit/s)
_MAX_SEGMENTS = 8
_HEADER = struct.Struct("!BBHII")
_RTX_HEADER = struct.Struct("!BBHIIH")


class Downstream:
    """One viewer's copy of one track: its port and its rewrite state."""

    __slots__ = (
        "port", "label", "ssrc", "rtx_ssrc", "payload_types", "rtx_payload_types",
        "clock_rates", "first_byte", "ext_prefix", "ext_suffix", "uses_abs",
        "waiting", "generation", "pt", "seq_delta", "ts_delta", "last_vseq", "last_vts",
        "segments", "rtx_seq", "dropped", "retransmitted", "unsupported_codec",
    )

    def __init__(self, port: SenderPort, stream: NegotiatedStream, label: str) -> None:
        self.port = port
        self.label = label
        self.ssrc = port.ssrc
        self.rtx_ssrc = port.rtx_ssrc
        self.payload_types = stream.payload_types
        self.rtx_payload_types = stream.rtx_payload_types
        self.clock_rates = stream.clock_rates
        self._build_extensions(stream)
        self.waiting = True
        self.generation = -1
        self.pt = 0
        self.seq_delta = 0
        self.ts_delta = 0
        self.last_vseq: Optional[int] = None
        self.last_vts = random.getrandbits(32)
        self.segments: list[tuple[int, int, int, int]] = []  # (first vseq, seq_delta, ts_delta, gen)
        self.rtx_seq = random.getrandbits(15)
        self.dropped = 0
        self.retransmitted = 0
        self.unsupported_codec: Optional[str] = None

    def _build_extensions(self, stream: NegotiatedStream) -> None:
        """Precompute the one-byte header extension block (RFC 8285) for this viewer."""
        mid_id = stream.header_extensions.get(MID_URI)
        abs_id = stream.header_extensions.get(ABS_SEND_TIME_URI)
        mid = stream.mid.encode()
        elements = b""
        if mid_id and mid:
            elements += bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
        self.uses_abs = bool(abs_id)
        body_len = len(elements) + (4 if abs_id else 0)
        if body_len == 0:
            self.first_byte = 0x80
            self.ext_prefix = self.ext_suffix = b""
            return
        words = (body_len + 3) // 4
        self.first_byte = 0x90  # V=2, X=1
        self.ext_prefix = b"\xbe\xde" + words.to_bytes(2, "big") + elements
        if abs_id:
            self.ext_prefix += bytes([(abs_id << 4) | 2])
        self.ext_suffix = b"\x00" * (words * 4 - body_len)


class FanoutStats:
    """Counters and the in-server delay samples the benchmark and logs read."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.packets_out = 0
        self.dropped = 0
        self.retransmitted = 0
        self.delays = SampleRing(20000)  # preallocated: no object kept per packet

    def as_dict(self) -> dict:
        delays = sorted(self.delays)

        def pct(p: float) -> Optional[float]:
            return delays[min(len(delays) - 1, int(p * len(delays)))] * 1000 if delays else None

        return {
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "dropped": self.dropped,
            "retransmitted": self.retransmitted,
            "delay_ms_p50": pct(0.50),
            "delay_ms_p99": pct(0.99),
        }


class Fanout:
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
        self._last_ts: Optional[int] = None
        self._last_packet_time = time.monotonic()
        self._switch_time: Optional[float] = None
        self.codec: Optional[str] = None
        self.sinks: list[Sink] = []  # copy-on-write, like _downstreams
        self.stats = FanoutStats()
        self.keyframes: Optional[KeyframeRequester] = (
            KeyframeRequester(self._send_pli, tasks, keyframe_min_interval)
            if kind == "video"
            else None
        )

    # ------------------------------------------------------------ sources
    def attach_source(self, send_pli: Optional[Callable[[], Awaitable[None]]]) -> None:
        """A (new) publisher track feeds this fanout; viewers resume on its first keyframe."""
        self._generation += 1
        self._source_pli = send_pli
        self._last_ts = None
        self._switch_time = self._last_packet_time
        self.codec = None
        for d in self._downstreams:
            d.waiting = True
        if self.keyframes is not None and self._downstreams:
            self.keyframes.request()

    def detach_source(self, send_pli: Callable[[], Awaitable[None]]) -> None:
        """The publisher that fed this fanout left (a newer one may already be attached)."""
        if self._source_pli == send_pli:
            self._source_pli = None
            self.codec = None
            self.release()

    async def _send_pli(self) -> None:
        if self._source_pli is not None:
            await self._source_pli()

    def request_keyframe(self) -> None:
        if self.keyframes is not None:
            self.keyframes.request()

    # ------------------------------------------------------------ viewers
    def add(self, downstream: Downstream) -> None:
        self._downstreams = self._downstreams + [downstream]
        self.request_keyframe()

    def remove(self, downstream: Downstream) -> None:
        self._downstreams = [d for d in self._downstreams if d is not downstream]

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
        first_of_frame = ts != self._last_ts
        self._last_ts = ts
        self.codec = codec
        keyframe = is_keyframe_start(codec, payload, first_of_frame)
        if keyframe and self.keyframes is not None:
            self.keyframes.satisfied()
        gen = self._generation
        self._history.put(gen, seq, ts, marker, payload, codec)
        ntp = current_ntp_time()
        abs_send = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        self._last_packet_time = time.monotonic()
        pack = _HEADER.pack
        sent = 0
        for d in self._downstreams:
            if d.waiting or d.generation != gen:
                if not d.port.ready():
                    continue
                if not keyframe:
                    self.request_keyframe()
                    continue
                if not self._start(d, seq, ts, codec, gen):
                    continue
            vseq = (seq + d.seq_delta) & 0xFFFF
            vts = (ts + d.ts_delta) & 0xFFFFFFFF
            data = b"".join((
                pack(d.first_byte, (marker << 7) | d.pt, vseq, vts, d.ssrc),
                d.ext_prefix,
                abs_send if d.uses_abs else b"",
                d.ext_suffix,
                payload,
            ))
            if d.port.send(data, len(payload), ntp, vts):
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
                gap = time.monotonic() - (self._switch_time or time.monotonic())
                advance = int(gap * d.clock_rates.get(codec, 90000)) + 1
                d.ts_delta = (d.last_vts + advance - ts) & 0xFFFFFFFF
        d.generation = gen
        d.waiting = False
        d.segments.append(((seq + d.seq_delta) & 0xFFFF, d.seq_delta, d.ts_delta, gen))
        del d.segments[:-_MAX_SEGMENTS]
        return True

    # ------------------------------------------------------------ feedback
    def on_nack(self, d: Downstream, lost: list[int]) -> None:
        """Retransmit what a viewer lost, from the shared history."""
        if d.last_vseq is None:
            return
        ntp = current_ntp_time()
        for vseq in lost:
            found = self._lookup(d, vseq)
            if found is None:
                continue
            entry, ts_delta = found
            _, _, ts, marker, payload, codec = entry
            pt = d.payload_types.get(codec)
            if pt is None:
                continue
            vts = (ts + ts_delta) & 0xFFFFFFFF
            rtx_pt = d.rtx_payload_types.get(pt)
            if rtx_pt is not None:
                header = _RTX_HEADER.pack(0x80, (marker << 7) | rtx_pt, d.rtx_seq, vts, d.rtx_ssrc, vseq)
                d.rtx_seq = (d.rtx_seq + 1) & 0xFFFF
            else:
                header = _HEADER.pack(0x80, (marker << 7) | pt, vseq, vts, d.ssrc)
            if d.port.send(header + payload, len(payload), ntp, vts):
                d.retransmitted += 1
                self.stats.retransmitted += 1

    # ------------------------------------------------------------ lifetime
    def release(self) -> None:
        """The publisher left or the broadcast ended: let go of the packets kept for
        retransmission and of the delay samples. A room (and its fanouts) outlives its
        publishers and broadcasts; their memory should not stay with it."""
        self._history.clear()
        self.stats.delays.clear()

    def _lookup(self, d: Downstream, vseq: int) -> Optional[tuple[tuple, int]]:
        end = d.last_vseq
        for first, seq_delta, ts_delta, gen in reversed(d.segments):
            if (vseq - first) & 0xFFFF <= (end - first) & 0xFFFF:
                src_seq = (vseq - seq_delta) & 0xFFFF
                entry = self._history.get(src_seq)
                if entry is not None and entry[0] == gen and entry[1] == src_seq:
                    return entry, ts_delta
                return None
            end = (first - 1) & 0xFFFF
        return None
