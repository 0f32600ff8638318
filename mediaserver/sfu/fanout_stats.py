"""``FanoutStats``: what a ``Fanout`` counts (packets in and out, drops, duplicates, late
packets, NACK outcomes, send errors) and the in-server delay samples, for the benchmarks,
logs and the workers' totals."""

from __future__ import annotations

from typing import Optional

from mediaserver.sfu.samples import SampleRing

__all__ = ["FanoutStats"]


class FanoutStats:
    """Counters and the in-server delay samples the benchmark and logs read."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.packets_out = 0
        self.dropped = 0
        self.retransmitted = 0
        self.duplicates = 0  #: copies of packets already forwarded, not forwarded again
        self.too_late = 0  #: packets too old for any viewer, not forwarded
        self.nacks_unusable = 0  #: NACKed sequences too old for the viewer: not resent
        self.nacks_repeated = 0  #: NACKed again within a round trip of being resent: not resent
        self.nack_keyframes = 0  #: NACKs the history could not answer: keyframe asked instead
        self.send_errors = 0  #: packets a send raised on (one viewer each), not sent
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
            "duplicates": self.duplicates,
            "too_late": self.too_late,
            "nacks_unusable": self.nacks_unusable,
            "nacks_repeated": self.nacks_repeated,
            "nack_keyframes": self.nack_keyframes,
            "send_errors": self.send_errors,
            "delay_ms_p50": pct(0.50),
            "delay_ms_p99": pct(0.99),
        }
