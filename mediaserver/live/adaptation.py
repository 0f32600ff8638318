"""``Adaptation``: which rendition a viewer should get, from its receiver feedback.

Fed once per new RTCP receiver report (its ``fraction_lost`` and the round trip measured
from it, None if it measured none) with the viewer's latest bandwidth estimate (REMB, the receiver's delay-based
estimate, which falls below what it is sent as soon as a queue builds up on its link,
often before any loss) as a ratio to the bitrate it is being sent. Down one step (full ->
low rendition -> audio only) after ``DOWN_AFTER`` bad reports in a row, up one step after
``UP_AFTER`` clean ones (the ``SETTLE_REPORTS`` after a switch are not counted: they still
tell of the rendition before): quick to relieve a congested link, slow to load it again.
Going up is a probe (a viewer's reports cannot tell how much more its link would carry):
if it fails (bad again within ``PROBE_REPORTS`` reports) the wait before the next probe
doubles, up to ``MAX_UP_AFTER``, so a viewer behind a link too slow for the full rendition
spends its time on the low one; a probe that holds resets the wait. While a viewer is on
audio only, its audio reports decide when it gets video back.

A REMB cannot vouch for more than the viewer receives now (receivers cap it near 1.5x their
incoming bitrate, and raise it only a few percent a second), so it never starts a step up:
it makes a report bad when it is under ``REMB_BAD`` of the bitrate sent (and, on the low
rendition, under ``REMB_AUDIO``: audio only), keeps an otherwise clean report from
counting towards a probe, and, when it says the link carries what it is sent, keeps heavy
losses on the low rendition from meaning audio only (random loss, not load).

A viewer without an estimate (no REMB nor transport-cc: loss is all it tells) moves from the
low rendition to audio only only when the low rendition cannot get through: its latest
``AUDIO_AFTER`` bad reports in a row losing ``NO_ESTIMATE_AUDIO_LOSS`` or more on average. Random loss
of 15-25 % (a radio link) does not (audio only would lose as much), and one unlucky report
cannot tip it. On audio only, reports losing less than ``AUDIO_UP_LOSS`` count as clean
towards getting video back: the gap between the two thresholds is the hysteresis that keeps
a link near either from flapping, and a failed probe doubles the wait as for any step up. The caller
passes no ratio while the estimate is still rising (``Subscriber.estimate_ratio``: after a
step up it lags behind without telling of a limit), and for ``ESTIMATE_SETTLE_SECONDS``
after a switch the estimates are not used. That wait is a time, not a number of reports: the
receiver's estimate recovers at its own pace (a few percent a second), whether its reports
come every half second or every two; the ``SETTLE_REPORTS`` are reports, as each one tells
of the packets since the one before.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional

__all__ = ["Adaptation", "RENDITIONS"]

RENDITIONS = ("full", "low", "audio")


class Adaptation:
    DOWN_LOSS = 0.08  #: a report losing more than this is bad
    AUDIO_LOSS = 0.25  #: on the low rendition, bad reports losing more than this mean audio only
    UP_LOSS = 0.02  #: a report losing less than this (and with a sane round trip) is clean
    MAX_RTT = 0.6  #: seconds: a longer round trip means a queue building up: bad
    REMB_BAD = 0.7  #: a REMB under this share of the bitrate sent: the link cannot carry it
    REMB_AUDIO = 0.5  #: on the low rendition, bad reports with a REMB under this share: audio only
    #: on the low rendition without an estimate: audio only when ``AUDIO_AFTER`` bad reports in
    #: a row lose this much on average (the low rendition does not get through)
    NO_ESTIMATE_AUDIO_LOSS = 0.4
    AUDIO_AFTER = 4
    AUDIO_UP_LOSS = 0.15  #: on audio only, a report losing less than this is clean (hysteresis)
    DOWN_AFTER = 2
    UP_AFTER = 8
    MAX_UP_AFTER = 64
    PROBE_REPORTS = 6
    SETTLE_REPORTS = 2  #: reports after a switch still tell of the previous rendition: ignored
    #: seconds after a switch during which the estimate is not used: the receiver's estimate
    #: still holds what it cut on the congested rendition, and it moves only a few percent a second
    ESTIMATE_SETTLE_SECONDS = 6.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.bad = 0
        self.good = 0
        self.worst = 0.0
        #: the losses of the latest ``AUDIO_AFTER`` bad reports in a row
        self.run_losses: deque[float] = deque(maxlen=self.AUDIO_AFTER)
        #: the lowest REMB ratio of the bad reports in a row (None: none had an estimate)
        self.lowest_remb: Optional[float] = None
        self.up_after = self.UP_AFTER
        self.since_up: Optional[int] = None  #: reports since the last step up (a probe)
        self.settle = 0
        #: ``clock()`` at the latest switch while its estimates are still ignored, else None
        self.switched_at: Optional[float] = None
        self.last_bad = False  #: whether the latest report counted as bad
        self.reason = ""  #: the latest report, in words (for the log line of a switch)

    def report(self, current: str, loss: float, rtt: Optional[float],
               remb_ratio: Optional[float] = None) -> Optional[str]:
        """The rendition to switch to after this report, or None to stay. ``remb_ratio``:
        the viewer's latest REMB over the video bitrate sent to it (None: no recent REMB,
        or too little video sent to tell)."""
        self.reason = (f"{loss:.0%} lost, rtt {'-' if rtt is None else f'{rtt * 1000:.0f} ms'}, "
                       f"estimate {'-' if remb_ratio is None else f'{remb_ratio:.2f}'} of the bitrate sent")
        now = self._clock()
        if self.since_up is not None:
            self.since_up += 1
        if self.switched_at is not None:
            if now - self.switched_at <= self.ESTIMATE_SETTLE_SECONDS:
                remb_ratio = None
            else:
                self.switched_at = None
        if self.settle:
            self.settle -= 1
            self.last_bad = False
            return None
        step = self._decide(current, loss, rtt, remb_ratio)
        if step is not None:
            self.settle = self.SETTLE_REPORTS
            self.switched_at = now
        return step

    def _starved(self, worst: float, lowest: float) -> bool:
        """On the low rendition, for a viewer with estimates: is the link too weak even for
        it? Its estimate under ``REMB_AUDIO`` of what it is sent, or losses over
        ``AUDIO_LOSS`` - unless the viewer's estimates said its link carries what it is sent
        (``REMB_BAD`` or more): then the losses are not the load (a radio link dropping
        packets at random) and audio only would not spare them."""
        return lowest < self.REMB_AUDIO or (worst > self.AUDIO_LOSS and lowest < self.REMB_BAD)

    def _low_step(self) -> tuple[bool, Optional[str]]:
        """On the low rendition after ``DOWN_AFTER`` bad reports or more in a row: (whether
        the run is over, the step). Without an estimate the run goes on: audio only once
        its latest ``AUDIO_AFTER`` reports lose ``NO_ESTIMATE_AUDIO_LOSS`` on average."""
        if self.lowest_remb is not None:
            return True, "audio" if self._starved(self.worst, self.lowest_remb) else None
        losses = self.run_losses
        if len(losses) == self.AUDIO_AFTER and sum(losses) / len(losses) >= self.NO_ESTIMATE_AUDIO_LOSS:
            return True, "audio"
        return False, None

    def _end_run(self) -> None:
        self.worst, self.lowest_remb = 0.0, None
        self.run_losses.clear()

    def declined(self) -> None:
        """The step ``report`` asked for was not taken: the next reports count at once."""
        self.settle, self.switched_at = 0, None

    def _decide(self, current: str, loss: float, rtt: Optional[float],
                remb_ratio: Optional[float]) -> Optional[str]:
        squeezed = remb_ratio is not None and remb_ratio < self.REMB_BAD
        audio = current == "audio"
        bad_loss = self.AUDIO_UP_LOSS if audio else self.DOWN_LOSS
        self.last_bad = loss > bad_loss or (rtt is not None and rtt > self.MAX_RTT) or squeezed
        if self.last_bad:
            self.bad, self.good = self.bad + 1, 0
            self.worst = max(self.worst, loss)
            self.run_losses.append(loss)
            if remb_ratio is not None:
                self.lowest_remb = remb_ratio if self.lowest_remb is None else min(self.lowest_remb, remb_ratio)
        elif loss < (self.AUDIO_UP_LOSS if audio else self.UP_LOSS):
            self.good, self.bad = self.good + 1, 0
            self._end_run()
        else:
            self.good = self.bad = 0
            self._end_run()
        if self.bad >= self.DOWN_AFTER:
            step: Optional[str] = None
            over = True
            if current == "full":
                step = "low"
            elif current == "low":
                over, step = self._low_step()
            if over:
                self.bad = 0
                self._end_run()
            if step is not None:
                if self.since_up is not None and self.since_up <= self.PROBE_REPORTS:
                    self.up_after = min(self.MAX_UP_AFTER, self.up_after * 2)  # the probe failed
                self.since_up = None
            return step
        if self.since_up is not None and self.since_up > self.PROBE_REPORTS:
            self.up_after, self.since_up = self.UP_AFTER, None  # the probe held
        if self.good >= self.up_after:
            self.good = 0
            step = {"audio": "low", "low": "full"}.get(current)
            if step is not None:
                self.since_up = 0
            return step
        return None
