"""``SenderReportTimes``: when the last few sender reports to a viewer left, by their LSR.

A receiver report names the sender report it answers by the middle 32 bits of that report's
NTP timestamp (LSR) and says how long the viewer held it (DLSR, 1/65536 s); the round trip
is now - the report's send time - DLSR (RFC 3550 6.4.1). aiortc remembers only the latest
sender report's LSR and send time, so a viewer that answers an older one (its event loop
busy when the next one came, or that one lost on the way) gives no sample at all. Sender
reports leave every 0.5-1.5 s and viewers report about once a second, so this happens
often; keeping the last ``KEPT`` lets each such report count. An LSR sent again (no media
between two sender reports: the NTP timestamp did not move) takes the later send time, as
aiortc's single slot does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

__all__ = ["SenderReportTimes"]

KEPT = 4  #: sender reports remembered: a viewer answering one older than this gives no sample


class SenderReportTimes:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._sent: OrderedDict[int, float] = OrderedDict()  # LSR -> send time (time.time())

    def note(self, lsr: int, sent_at: float) -> None:
        """A sender report with this LSR left at ``sent_at`` (``time.time()``)."""
        if self._sent.get(lsr) == sent_at:
            return
        self._sent[lsr] = sent_at
        self._sent.move_to_end(lsr)
        while len(self._sent) > self._kept:
            self._sent.popitem(last=False)

    def round_trip(self, lsr: int, dlsr: int, now: float) -> Optional[float]:
        """The round trip (seconds) a receiver report with this LSR and DLSR received at
        ``now`` measures; None if it answers no sender report kept here (LSR and DLSR 0:
        the viewer had none yet), or if the viewer's delay exceeds the time since the
        report left (a wrong DLSR, or a clock step)."""
        if not dlsr:
            return None
        sent_at = self._sent.get(lsr)
        if sent_at is None:
            return None
        rtt = now - sent_at - dlsr / 65536
        return rtt if rtt >= 0 else None
