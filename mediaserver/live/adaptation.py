"""``Adaptation``: which rendition a viewer should get, from its receiver feedback.

Fed once per new RTCP receiver report (its ``fraction_lost`` and the round trip measured
from it). Down one step (full -> low rendition -> audio only) after ``DOWN_AFTER`` bad
reports in a row, up one step after ``UP_AFTER`` clean ones: quick to relieve a congested
link, slow to load it again, so a viewer does not flap between renditions. While a viewer
is on audio only, its audio reports decide when it gets video back.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["Adaptation", "RENDITIONS"]

RENDITIONS = ("full", "low", "audio")


class Adaptation:
    DOWN_LOSS = 0.08  #: a report losing more than this is bad
    AUDIO_LOSS = 0.25  #: on the low rendition, bad reports losing more than this mean audio only
    UP_LOSS = 0.02  #: a report losing less than this (and with a sane round trip) is clean
    MAX_RTT = 0.6  #: seconds: a longer round trip means a queue building up: bad
    DOWN_AFTER = 2
    UP_AFTER = 5

    def __init__(self) -> None:
        self.bad = 0
        self.good = 0
        self.worst = 0.0

    def report(self, current: str, loss: float, rtt: Optional[float]) -> Optional[str]:
        """The rendition to switch to after this report, or None to stay."""
        if loss > self.DOWN_LOSS or (rtt is not None and rtt > self.MAX_RTT):
            self.bad, self.good = self.bad + 1, 0
            self.worst = max(self.worst, loss)
        elif loss < self.UP_LOSS:
            self.good, self.bad, self.worst = self.good + 1, 0, 0.0
        else:
            self.good = self.bad = 0
            self.worst = 0.0
        if self.bad >= self.DOWN_AFTER:
            worst, self.bad, self.worst = self.worst, 0, 0.0
            if current == "full":
                return "low"
            if current == "low" and worst > self.AUDIO_LOSS:
                return "audio"
        if self.good >= self.UP_AFTER:
            self.good = 0
            return {"audio": "low", "low": "full"}.get(current)
        return None
