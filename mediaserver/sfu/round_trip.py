"""``RoundTrip``: a viewer's round-trip time, smoothed the way RFC 6298 smooths TCP's.

Each receiver report that answers a sender report gives one sample (RFC 3550 6.4.1). One
sample alone is a poor guide: a report delayed by the viewer's event loop or a queue on its
link reads long, and the next may read short. The smoothed round trip (``srtt``) moves an
eighth of the way to each sample and the variation (``rttvar``) a quarter of the way to
each sample's distance from it, so one late report neither keeps resends waiting (a freeze)
nor one early report sends them before the first could have arrived (a duplicate), while a
lasting change is followed within a few reports. ``timeout`` is the RFC's retransmission
timeout ``srtt + 4 * rttvar`` with the variation's part at most ``srtt`` (so at most twice
the smoothed round trip): one report late by half a second would otherwise add most of that
half second to every resend for the next several seconds (reports come about once a second),
which is the freeze this avoids; and without TCP's one-second floor: a resend too early here
costs one duplicate packet, not a congestion window.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["RoundTrip", "timeout"]

ALPHA = 1 / 8
BETA = 1 / 4
K = 4


def timeout(srtt: float, rttvar: float) -> float:
    """``srtt + min(srtt, 4 * rttvar)``: the longest an answer should take (seconds)."""
    return srtt + min(srtt, K * rttvar)


class RoundTrip:
    def __init__(self) -> None:
        self.srtt: Optional[float] = None  #: seconds; None before the first sample
        self.rttvar = 0.0
        self.samples = 0

    def add(self, sample: float) -> None:
        """One measured round trip (seconds, >= 0)."""
        if sample < 0:
            raise ValueError(f"a round trip cannot be negative: {sample}")
        self.samples += 1
        if self.srtt is None:
            self.srtt, self.rttvar = sample, sample / 2
            return
        self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - sample)
        self.srtt = (1 - ALPHA) * self.srtt + ALPHA * sample

    def timeout(self) -> Optional[float]:
        """How long an answer may take before it is overdue (``timeout``); None before
        the first sample."""
        return None if self.srtt is None else timeout(self.srtt, self.rttvar)
