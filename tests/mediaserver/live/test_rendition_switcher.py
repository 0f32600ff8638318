"""``RenditionSwitcher``: each viewer's new reports reach its own ``Adaptation`` once; edges
are never switched; a step down waits while half the room struggles at once (upstream or
server trouble), and a lone struggling viewer in a crowd is switched."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import pytest

from mediaserver.live.adaptation import Adaptation
from mediaserver.live.rendition_switcher import RenditionSwitcher
from tests.support.waiting import wait_for

pytestmark = pytest.mark.unit


class FakeViewer:
    def __init__(self, vid: str, relay: bool = False) -> None:
        self.id = vid
        self.relay = relay
        self.closed = False
        self.rendition = "full"
        self.reports = 0
        self.loss = 0.0
        self.ratio: Optional[float] = None
        self.h264 = True

    def report(self, loss: float, ratio: Optional[float] = None) -> None:
        """A new receiver report arrives."""
        self.reports += 1
        self.loss, self.ratio = loss, ratio

    def latest_report(self):
        return (self.reports, self.loss, 0.05) if self.reports else None

    def estimate_ratio(self) -> Optional[float]:
        return self.ratio

    def accepts(self, rendition: str) -> bool:
        return rendition != "low" or self.h264


def switcher_of(viewers: list[FakeViewer]) -> RenditionSwitcher:
    async def switch(viewer, rendition):  # pragma: no cover - step() is driven directly
        viewer.rendition = rendition

    return RenditionSwitcher(lambda: viewers, switch, logging.LoggerAdapter(logging.getLogger("test"), {}))


def apply(switches) -> list[tuple[str, str]]:
    for viewer, rendition in switches:
        viewer.rendition = rendition
    return [(v.id, r) for v, r in switches]


def test_a_report_counts_once_and_edges_are_never_switched():
    lone, edge = FakeViewer("lone"), FakeViewer("edge", relay=True)
    s = switcher_of([lone, edge])
    lone.report(0.3)
    edge.report(0.5)
    assert s.step() == []
    assert s.step() == []  # the same report again: not a second bad one
    lone.report(0.3)
    edge.report(0.5)
    edge.report(0.5)
    assert apply(s.step()) == [("lone", "low")]
    assert edge.rendition == "full" and "edge" not in s._adaptations


def test_half_the_room_struggling_at_once_is_not_their_links():
    viewers = [FakeViewer(f"v{i}") for i in range(4)]
    s = switcher_of(viewers)
    for _ in range(Adaptation.DOWN_AFTER):  # the publisher's uplink loses: every viewer sees it
        for v in viewers[:2]:
            v.report(0.2)
        for v in viewers[2:]:
            v.report(0.0)
        switches = s.step()
    assert switches == [] and s.held == 2 and all(v.rendition == "full" for v in viewers)
    # one viewer alone on a weak link, the others clean: switched (the hold did not wait it out)
    for v in viewers[:2]:
        v.report(0.0)
    s.step()
    viewers[0].report(0.3, ratio=0.4)
    assert s.step() == []
    viewers[0].report(0.3, ratio=0.4)
    assert apply(s.step()) == [("v0", "low")]


def test_a_player_without_h264_is_never_moved_to_the_low_rendition():
    vp8 = FakeViewer("vp8")
    vp8.h264 = False
    s = switcher_of([vp8])
    for _ in range(Adaptation.DOWN_AFTER):
        vp8.report(0.3)
        assert s.step() == []
    assert vp8.rendition == "full"


def test_a_viewer_that_left_is_forgotten():
    a, b = FakeViewer("a"), FakeViewer("b")
    viewers = [a, b]
    s = switcher_of(viewers)
    a.report(0.0)
    b.report(0.0)
    s.step()
    viewers.remove(b)
    s.step()
    assert set(s._adaptations) == {"a"}


async def test_a_switch_counts_once_the_viewer_moved_not_after_its_clean_up():
    """Moving a viewer up stops the low rendition nobody watches any more, which waits for
    its encoder thread: the switch is counted from the moment the viewer moved (a scrape
    meanwhile saw the viewer on the full rendition and no step up: test_low_rendition's
    throttled viewer, on a loaded machine). A switch that fails before moving the viewer
    does not count; one that fails in its clean-up does."""
    viewer, broken = FakeViewer("v"), FakeViewer("broken")
    viewer.rendition = broken.rendition = "low"
    stopped = asyncio.Event()

    async def switch(v, rendition):
        if v is broken:
            raise RuntimeError("the low rendition would not stop")
        v.rendition = rendition
        await stopped.wait()  # the unwatched rendition's encoder thread is joined

    s = RenditionSwitcher(lambda: [viewer, broken], switch, logging.LoggerAdapter(logging.getLogger("test"), {}))
    making = asyncio.ensure_future(s.make([(viewer, "full")]))
    await wait_for(lambda: viewer.rendition == "full")
    assert s.switches == {"down": 0, "up": 1} and not making.done()
    stopped.set()
    await making
    await s.make([(broken, "full")])
    assert s.switches == {"down": 0, "up": 1}

    async def fails_after_moving(v, rendition):
        v.rendition = rendition
        raise RuntimeError("stopping the unwatched rendition failed")

    s._switch = fails_after_moving
    await s.make([(broken, "audio")])
    assert broken.rendition == "audio" and s.switches == {"down": 1, "up": 1}
