"""Retransmission with judgment, both ways: what the server asks of the publisher
(``NackRequester``) and how it answers a viewer's NACKs (``ViewerNacks``).

Upstream, a gap in the publisher's sequence numbers is not a loss yet: with jitter, the
packet often arrives a few milliseconds later. Like libwebrtc's ``NackRequester``, the
server waits a short *reorder window* before it NACKs a missing packet, learns that
window from how late the packets it thought missing actually arrived, asks again after a
retry interval (learned from how long retransmissions take) if it does not come, and
gives up after ``max_retries`` or once the packet is too old for any viewer to use
(``LATE_LIMIT``).

Downstream (rules applied by ``Fanout.on_nack``; ``ViewerNacks`` keeps the per-viewer
state): a sequence is retransmitted to one viewer at most once per round trip (measured
from that viewer's receiver reports) plus its reorder window; never when
the viewer can no longer use it (more than ``LATE_LIMIT`` packets or ``PLAYOUT_WINDOW``
seconds old, or before the last keyframe; a viewer whose NACKs list every missing packet,
as aiortc's do, plays strictly in order and waits for that packet whatever came after,
so for it only the distance counts). A browser waits out reordering before it NACKs
(libwebrtc) and is answered at once. A viewer that lists every missing packet in each
NACK (aiortc, at each new gap) also NACKs packets that are merely late: its NACK that
comes so early that the packet may just be late (younger than a round trip plus the
viewer's reorder window, 4x the jitter in its receiver reports) is held until that
window has passed, and dropped if a later NACK no longer lists it (it arrived).
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Optional

__all__ = [
    "LATE_LIMIT",
    "MAX_HOLD",
    "NackRequester",
    "PLAYOUT_WINDOW",
    "ViewerNacks",
    "extend_seq",
]

#: packets behind the newest one that a receiver can still use: a late packet past this
#: distance is not forwarded and a NACK for it not answered. A receiver waits for a
#: missing packet (aiortc's jitter buffer until it spans 512 packets, then it skips ahead
#: and asks for a keyframe), so a late packet is worth sending while the viewer may
#: still be waiting for it; but one that reaches aiortc's buffer 100 or more packets
#: behind where it skipped to *flushes* it: 320 + 100 stays clear of 512.
LATE_LIMIT = 320
#: seconds after which a packet is too old to retransmit (behind any playout delay)
PLAYOUT_WINDOW = 1.0
#: the longest a NACK waits to tell a late packet from a lost one
MAX_HOLD = 0.08
#: a NACK listing a sequence the previous NACK listed less than this ago is a "repeat";
#: a few of them mark a viewer that lists every missing packet each time (aiortc)
_REPEAT_WINDOW = 0.04
_FULL_LIST_EVIDENCE = 3


def extend_seq(highest: int, seq: int) -> int:
    """The extended sequence number of 16-bit ``seq`` nearest to extended ``highest``."""
    return highest + ((seq - highest + 0x8000) & 0xFFFF) - 0x8000


class ViewerNacks:
    """One viewer's retransmission state: when each sequence was last resent and the
    NACKs held back until the viewer's reorder window has passed."""

    __slots__ = ("resent", "pending", "timer", "nacks", "repeats", "_last", "_last_at")

    def __init__(self) -> None:
        self.resent: dict[int, float] = {}  #: viewer sequence -> when it was last resent
        #: viewer sequence -> (when to answer it, ``nacks`` when it was held)
        self.pending: dict[int, tuple[float, int]] = {}
        self.timer = None  #: the ``asyncio.TimerHandle`` that answers ``pending``
        self.nacks = 0  #: NACK packets received from the viewer
        #: NACKs that repeated a sequence of the NACK just before (within _REPEAT_WINDOW)
        self.repeats = 0
        self._last: frozenset[int] = frozenset()
        self._last_at = -1.0

    @property
    def full_lists(self) -> bool:
        """Whether this viewer's NACKs list every packet it still misses (aiortc does, at
        each new gap), so a NACK that leaves one out says it arrived. libwebrtc lists a
        packet once per its round trip (100 ms by default), never twice in a row so fast."""
        return self.repeats >= _FULL_LIST_EVIDENCE

    def hold(self, vseq: int, due: float) -> None:
        """Answer ``vseq`` at ``due`` if the viewer's last NACK by then still lists it."""
        held = self.pending.get(vseq)
        self.pending[vseq] = (due if held is None else held[0], self.nacks)

    def held_due(self, now: float) -> list[int]:
        """Held sequences whose reorder window has passed. From a viewer that sends full
        lists, only those whose last word is still "missing" (its latest NACK listed
        them): if it sent other NACKs since, it lists a packet again while it misses it,
        and is answered then."""
        full = self.full_lists
        due = []
        for vseq, (when, nacks_then) in list(self.pending.items()):
            if when <= now:
                del self.pending[vseq]
                if not full or self.nacks == nacks_then:
                    due.append(vseq)
        return due

    def next_due(self) -> Optional[float]:
        return min(when for when, _ in self.pending.values()) if self.pending else None

    def may_resend(self, vseq: int, now: float, interval: float) -> bool:
        """True (and noted) unless ``vseq`` was resent less than ``interval`` ago."""
        last = self.resent.get(vseq)
        if last is not None and now - last < interval:
            return False
        self.resent[vseq] = now
        if len(self.resent) > 512:
            horizon = now - PLAYOUT_WINDOW
            self.resent = {s: t for s, t in self.resent.items() if t > horizon}
        return True

    def listed(self, lost: list[int], now: float) -> None:
        """A new NACK lists ``lost``. From a viewer that sends full lists, a held sequence
        that it no longer lists, although it lists newer ones, has arrived."""
        self.nacks += 1
        listed = frozenset(lost)
        if now - self._last_at < _REPEAT_WINDOW and not listed.isdisjoint(self._last):
            self.repeats += 1
        self._last, self._last_at = listed, now
        if not self.pending or not lost or not self.full_lists:
            return
        newest = lost[-1]
        for vseq in list(self.pending):
            if vseq not in listed and 0 < (newest - vseq) & 0xFFFF < 0x8000:
                del self.pending[vseq]

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending.clear()


class _Missing:
    __slots__ = ("since", "sent", "retries")

    def __init__(self, since: float) -> None:
        self.since = since
        self.sent: Optional[float] = None
        self.retries = 0


class NackRequester:
    """Which of one incoming stream's packets to NACK, and when; see the module docs.

    The reorder window is 1.2 times the 90th percentile of how late the packets thought
    missing arrived (``min_window`` to ``max_window``); the retry interval 1.5 times the
    90th percentile of how long the publisher took to answer a NACK (its round trip).

    ``add`` for every packet received (``retransmission`` for RTX), ``due`` on a short
    timer; both take the time so tests can drive them.
    """

    def __init__(
        self,
        min_window: float = 0.01,
        max_window: float = MAX_HOLD,
        min_retry: float = 0.05,
        max_retries: int = 10,
        max_age: int = LATE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_window = min_window
        self.max_window = max_window
        self.min_retry = min_retry
        self.max_retries = max_retries
        self.max_age = max_age
        self.clock = clock
        self.window = min_window  #: the current reorder window (seconds)
        self._highest: Optional[int] = None
        self._missing: dict[int, _Missing] = {}
        self._recovered: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._lateness: collections.deque[float] = collections.deque(maxlen=64)
        self._answer_times: collections.deque[float] = collections.deque(maxlen=32)
        self.retry_interval = min_retry  #: how long to wait for a retransmission
        self.requested = 0  #: sequence numbers NACKed (retries included)
        self.gave_up = 0  #: missing packets abandoned

    @property
    def pending(self) -> bool:
        return bool(self._missing)

    def recovering(self, seq: int) -> bool:
        """Whether 16-bit ``seq`` is missing and still being asked for."""
        if self._highest is None:
            return False
        return extend_seq(self._highest, seq) in self._missing

    def add(self, seq: int, retransmission: bool = False, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        if self._highest is None:
            self._highest = seq + 0x10000
            return
        ext = extend_seq(self._highest, seq)
        if ext > self._highest:
            first = max(self._highest + 1, ext - self.max_age + 1)
            for missing in range(first, ext):
                self._missing[missing] = _Missing(now)
            self._highest = ext
            if self._missing:
                horizon = ext - self.max_age + 1
                for old in [s for s in self._missing if s < horizon]:
                    del self._missing[old]
                    self.gave_up += 1
            return
        info = self._missing.pop(ext, None)
        if info is not None:
            if retransmission:
                if info.sent is not None:  # how long the publisher takes to answer
                    self._answer_times.append(now - info.sent)
                    ordered = sorted(self._answer_times)
                    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
                    self.retry_interval = min(1.0, max(self.min_retry, p90 * 1.5))
                self._recovered[ext] = info.since
                if len(self._recovered) > 256:
                    self._recovered.popitem(last=False)
            else:
                self._late(now - info.since)
        elif not retransmission:
            since = self._recovered.pop(ext, None)
            if since is not None:  # the original came after its retransmission
                self._late(now - since)

    def _late(self, lateness: float) -> None:
        self._lateness.append(lateness)
        ordered = sorted(self._lateness)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        self.window = min(self.max_window, max(self.min_window, p90 * 1.2))

    def due(self, now: Optional[float] = None) -> list[int]:
        """16-bit sequence numbers to NACK now (each missing packet once its reorder
        window has passed, again every ``retry_interval``, ``max_retries`` times)."""
        now = self.clock() if now is None else now
        out: list[int] = []
        retry = self.retry_interval
        for ext, info in list(self._missing.items()):
            if info.sent is None:
                if now - info.since < self.window:
                    continue
            elif now - info.sent < retry:
                continue
            info.sent = now
            info.retries += 1
            out.append(ext & 0xFFFF)
            if info.retries >= self.max_retries:
                del self._missing[ext]
                self.gave_up += 1
        self.requested += len(out)
        return out
