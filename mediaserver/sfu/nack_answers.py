"""The fanout's answers to viewers' NACKs: retransmissions from the shared packet history.

``NackAnswers`` is the half of ``Fanout`` that handles feedback; it reads the fanout's state
(history, generation, highest sequence number, keyframe gate) and is only ever mixed into
``Fanout``. A NACK is mapped back through the viewer's segments to the source packet, and
answered with the judgment ``mediaserver.sfu.retransmission`` describes: once per round trip,
never for an unusable packet, held while it may merely be late, and a keyframe request when the
history cannot answer. Retransmissions go as RTX when the viewer negotiated it.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Optional

from mediaserver.sfu.downstream import Downstream
from mediaserver.sfu.retransmission import LATE_LIMIT, MAX_HOLD, PLAYOUT_WINDOW, extend_seq
from mediaserver.sfu.round_trip import timeout as round_trip_timeout
from mediaserver.sfu.rtp_payloads import RTP_HEADER

__all__ = ["NackAnswers"]

_RTX_HEADER = struct.Struct("!BBHIIH")
_MIN_RESEND_INTERVAL = 0.01
_DEFAULT_RTT = 0.1  # until a viewer's receiver report measured it (libwebrtc's default)
_MAX_RTT_HOLD = 0.25
_JITTER_HOLD = 4.0  # reorder window: this many times the jitter a viewer reports


class NackAnswers:
    """Mixed into ``Fanout`` (which owns every attribute used here)."""

    def on_nack(self, d: Downstream, lost: list[int]) -> None:
        """Retransmit what a viewer lost, from the shared history, with judgment (see
        ``mediaserver.sfu.retransmission``)."""
        if d.last_vseq is None or d.waiting:
            return
        now = time.monotonic()
        d.nacks.listed(lost, now)
        hold, interval = self._resend_timing(d)
        for vseq in lost:
            self._answer(d, vseq, now, interval, hold)
        self._schedule_held(d, now)

    def _resend_timing(self, d: Downstream) -> tuple[float, float]:
        """(hold, interval) for one viewer, from its round-trip timeout
        (``round_trip.timeout``: the smoothed round trip plus four times its variation, at
        most twice the smoothed round trip, so one late or early receiver report moves it
        little). A packet is resent at most once per interval: the timeout plus the hold, at
        most ``PLAYOUT_WINDOW``. A viewer that NACKs every gap at once (aiortc lists every
        missing packet at each new gap) also NACKs packets that are merely late: a NACK
        younger than the timeout plus the reorder window (4x the jitter the viewer reports)
        was written before the packet could have arrived, so it is held. The timeout, not
        the smoothed round trip: a viewer whose round trips vary (its own processing
        backlog, a queue) also takes that long to notice a late packet arrived. A browser
        waits out reordering itself before it NACKs (libwebrtc): its NACKs are answered at
        once."""
        rtt = d.port.rtt
        timeout = _DEFAULT_RTT if rtt is None else round_trip_timeout(rtt, d.port.rtt_var)
        hold = 0.0
        if d.nacks.full_lists:
            hold = min(timeout, _MAX_RTT_HOLD)  # before the first measure: the default
            if d.port.jitter:
                hold += min(MAX_HOLD, _JITTER_HOLD * d.port.jitter / d.clock_rates.get(self.codec or "", 90000))
        return hold, min(PLAYOUT_WINDOW, max(_MIN_RESEND_INTERVAL, timeout + hold))

    def _answer(self, d: Downstream, vseq: int, now: float, interval: float, hold: float) -> None:
        stats = self.stats
        found = self._lookup(d, vseq)
        if found is None or self._highest is None:
            return  # never sent to this viewer, or by a previous publisher
        src_seq, ts_delta = found
        ext = extend_seq(self._highest, src_seq)
        behind = self._highest - ext
        # A browser drops what is older than its playout window or than a keyframe it
        # decoded. A viewer whose NACKs list every packet it misses (aiortc) plays strictly
        # in order: it waits for that packet whatever came after, so it can still use it.
        waits = d.nacks.full_lists
        if behind >= LATE_LIMIT or (not waits and self.keyframes is not None and ext < self._key_ext):
            stats.nacks_unusable += 1
            return
        entry = self._history.get(ext)
        if entry is None or entry[1] != ext or entry[0] != self._generation:
            # the server never got it: wait for the publisher's retransmission, unless
            # it is not coming
            if self.keyframes is not None and not self.source_recovering(src_seq):
                stats.nack_keyframes += 1
                self.keyframes.request()
            return
        age = now - entry[6]
        if age > PLAYOUT_WINDOW and not waits:
            stats.nacks_unusable += 1
            return
        if age < hold:  # may just be late: ask again once the reorder window has passed
            d.nacks.hold(vseq, entry[6] + hold)
            return
        d.nacks.pending.pop(vseq, None)
        if not d.nacks.may_resend(vseq, now, interval):
            stats.nacks_repeated += 1
            return
        _, _, ts, marker, payload, codec, _ = entry
        pt = d.payload_types.get(codec)
        if pt is None:
            return
        vts = (ts + ts_delta) & 0xFFFFFFFF
        rtx_pt = d.rtx_payload_types.get(pt)
        if rtx_pt is not None:
            header = _RTX_HEADER.pack(0x80, (marker << 7) | rtx_pt, d.rtx_seq, vts, d.rtx_ssrc, vseq)
            d.rtx_seq = (d.rtx_seq + 1) & 0xFFFF
        else:
            header = RTP_HEADER.pack(0x80, (marker << 7) | pt, vseq, vts, d.ssrc)
        try:
            resent = d.port.retransmit(header + payload)
        except Exception as exc:
            self._send_failed(d, len(header) + len(payload), exc)
            return
        if resent:
            d.retransmitted += 1
            stats.retransmitted += 1

    def _schedule_held(self, d: Downstream, now: float) -> None:
        nacks = d.nacks
        if not nacks.pending or nacks.timer is not None:
            return
        delay = max(0.0, (nacks.next_due() or now) - now)
        nacks.timer = asyncio.get_running_loop().call_later(delay, self._answer_held, d)

    def _answer_held(self, d: Downstream) -> None:
        nacks = d.nacks
        nacks.timer = None
        if d not in self._downstreams or d.waiting:
            nacks.pending.clear()
            return
        now = time.monotonic()
        _, interval = self._resend_timing(d)
        for vseq in nacks.held_due(now):
            self._answer(d, vseq, now, interval, 0.0)
        self._schedule_held(d, now)

    def _lookup(self, d: Downstream, vseq: int) -> Optional[tuple[int, int]]:
        """The source sequence number and timestamp offset of what the viewer got as
        ``vseq`` in its current generation; None if it never got it."""
        end = d.last_vseq
        for first, seq_delta, ts_delta, gen in reversed(d.segments):
            if (vseq - first) & 0xFFFF <= (end - first) & 0xFFFF:
                if gen != self._generation:
                    return None
                return (vseq - seq_delta) & 0xFFFF, ts_delta
            end = (first - 1) & 0xFFFF
        return None
