"""``RenditionSwitcher``: one loop per room that moves its viewers between renditions.

Every ``INTERVAL`` it reads each viewer's latest receiver report and bandwidth estimate
from its ports (``Subscriber.latest_report``, ``estimate_ratio``: kept as the RTCP
arrives, so a pass costs no ``getStats`` and no task per viewer) and feeds the new ones to
that viewer's ``Adaptation``. Other nodes' edges pulling the room are never switched (their
viewers adapt on their own node), nor is a player to a rendition it cannot play (the low
rendition is H.264: a player that negotiated VP8 only stays on the full one).

A step down is held while half the room (``CROWD`` viewers or more) reports trouble at once:
then the trouble is upstream (the publisher's uplink, which every viewer's reports show) or
in this server (an overloaded event loop delays every viewer's packets), not in each
viewer's own link, and a low rendition encoded from the same source, on the same busy
server, would help nobody and cost a core's share more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Iterable, Optional, Protocol

from mediaserver.live.adaptation import Adaptation

__all__ = ["RenditionSwitcher"]


class Viewer(Protocol):
    id: str
    rendition: str
    relay: bool

    @property
    def closed(self) -> bool: ...

    def latest_report(self) -> Optional[tuple[int, float, Optional[float]]]: ...

    def accepts(self, rendition: str) -> bool: ...

    def estimate_ratio(self) -> Optional[float]: ...


class RenditionSwitcher:
    INTERVAL = 0.5  #: seconds between passes (receivers report about once a second)
    CROWD = 3  #: below this many viewers, the room-wide hold does not apply
    HOLD_LOG_EVERY = 30.0  #: seconds between log lines about a hold

    def __init__(self, viewers: Callable[[], Iterable[Viewer]],
                 switch: Callable[[Viewer, str], Awaitable[None]], log: logging.LoggerAdapter) -> None:
        self._viewers = viewers
        self._switch = switch
        self._log = log
        self._adaptations: dict[str, Adaptation] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # viewer -> (rendition, reports) last fed
        self._held_logged = 0.0
        self.held = 0  #: steps down not taken because half the room struggled at once
        self.switches = {"down": 0, "up": 0}  #: switches made, by direction

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.INTERVAL)
            await self.make(self.step())

    async def make(self, switches: list[tuple[Viewer, str]]) -> None:
        """Make the switches of one pass, counting each in ``switches`` as it takes effect.

        A switch moves the viewer at once and may then wait (stopping a low rendition
        nobody watches any more joins its encoder thread): it is counted before that wait,
        so /metrics never shows a viewer moved without its switch; one that fails without
        moving the viewer is not counted."""
        for viewer, rendition in switches:
            direction = "up" if (viewer.rendition, rendition) in (("low", "full"), ("audio", "low")) else "down"
            self.switches[direction] += 1
            try:
                await self._switch(viewer, rendition)
            except Exception:  # one viewer's switch never stops the others'
                if viewer.rendition != rendition:
                    self.switches[direction] -= 1
                self._log.exception("viewer %s: the switch to %s failed", viewer.id[:8], rendition)

    def step(self) -> list[tuple[Viewer, str]]:
        """One pass: the switches to make now."""
        viewers = [v for v in self._viewers() if not v.relay and not v.closed]
        present = {v.id for v in viewers}
        for gone in [vid for vid in self._adaptations if vid not in present]:
            del self._adaptations[gone]
            self._seen.pop(gone, None)
        wanted: list[tuple[Viewer, str]] = []
        for viewer in viewers:
            report = viewer.latest_report()
            if report is None:
                continue
            count, loss, rtt = report
            key = (viewer.rendition, count)
            if self._seen.get(viewer.id) == key:
                continue  # nothing new from this viewer
            self._seen[viewer.id] = key
            adaptation = self._adaptations.setdefault(viewer.id, Adaptation())
            choice = adaptation.report(viewer.rendition, loss, rtt, viewer.estimate_ratio())
            if choice is not None:
                wanted.append((viewer, choice))
        if not wanted:
            return []
        struggling = sum(1 for v in viewers if (a := self._adaptations.get(v.id)) is not None and a.last_bad)
        crowd = len(viewers) >= self.CROWD and 2 * struggling >= len(viewers)
        switches = []
        for viewer, choice in wanted:
            down = (viewer.rendition, choice) in (("full", "low"), ("low", "audio"))
            if down and crowd:
                self._adaptations[viewer.id].declined()
                self.held += 1
                self._log_hold(struggling, len(viewers))
                continue
            if not viewer.accepts(choice):  # a VP8-only player: the low rendition is H.264
                self._adaptations[viewer.id].declined()
                continue
            self._log.info("viewer %s: %s -> %s (%s)", viewer.id[:8], viewer.rendition, choice,
                           self._adaptations[viewer.id].reason)
            switches.append((viewer, choice))
        return switches

    def _log_hold(self, struggling: int, viewers: int) -> None:
        now = time.monotonic()
        if now - self._held_logged >= self.HOLD_LOG_EVERY:
            self._held_logged = now
            self._log.warning("%d of %d viewers report trouble at once: upstream or this server, not "
                              "their links; nobody is switched down", struggling, viewers)
