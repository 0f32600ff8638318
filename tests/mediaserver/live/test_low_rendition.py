"""The low rendition for weak networks: encoded once per room only while a viewer needs it,
viewers switched between full, low and audio only without renegotiating (an aiortc viewer
reads the frame numbers and sizes), and switched by their receiver reports and bandwidth
estimates when their downlink is throttled (the user-space link shim of tests/support/netshim.py)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from core.settings import Settings
from mediaserver.live.adaptation import Adaptation
from core.access import StreamKeyAccess
from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.encoded_media import ClipPublisher
from tests.support.netshim import Impairment, Link
from tests.support.ops_tools import METRICS_TOKEN, scrape
from tests.support.peers import Publisher, SizedViewer, Viewer
from tests.support.worker_pins import ONE_WORKER_EACH

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]

RADIO_LOSS = 0.2  #: the downlink's random loss (a radio link)
RADIO_REPORTS = 16
#: seconds between the test viewers' receiver reports: a browser's pace (the switcher counts
#: reports, and passes every ``RenditionSwitcher.INTERVAL``), about twice aiortc's own
REPORT_INTERVAL = 0.5


@pytest.fixture
async def live_room(aiohttp_server, tmp_path):
    async def start(publisher=None, **settings):
        s = Settings.build(data_dir=tmp_path, rooms={"demo": KEY}, rtmp_port=0, recordings=False, **ONE_WORKER_EACH, **settings)
        s.validate()
        app = create_app(s, access=StreamKeyAccess(s.stream_keys()))
        srv = await aiohttp_server(app)
        base = str(srv.make_url("")).rstrip("/")
        publisher = publisher(base) if publisher else Publisher(base, width=640, height=480)
        assert await publisher.publish("demo", KEY) == 201
        room = await wait_for(lambda: (r := app[ROOMS].get("demo")) is not None and r.live and r, timeout=15)
        return base, room, publisher
    return start


async def test_switching_between_full_low_and_audio_only(live_room):
    base, room, publisher = await live_room(low_rendition=False)  # switched by hand only
    viewer = SizedViewer(base)
    try:
        assert await viewer.play("demo") == 201
        await wait_for(lambda: len(viewer.frames) >= 20, timeout=15)
        [subscriber] = room.subscribers.values()
        assert {f[1:] for f in viewer.frames} == {(640, 480)} and room.low is None

        await room.set_rendition(subscriber, "low")
        mark = len(viewer.frames)
        await wait_for(lambda: sum(1 for f in viewer.frames[mark:] if f[1:] == (480, 360)) >= 20, timeout=15)
        assert room.low.running and room.low.frames_out >= 20
        low = [f[0] for f in viewer.frames[mark:] if f[1:] == (480, 360)]
        assert low == sorted(low) and low[-1] - low[0] < len(low) + 10  # the same pictures, in order

        await room.set_rendition(subscriber, "audio")
        assert not room.low.running  # nobody watches it any more: not encoded
        audio_before, frames_before = viewer.audio_frames, len(viewer.frames)
        await asyncio.sleep(1.5)
        assert viewer.audio_frames > audio_before + 40  # audio goes on (50 frames a second)
        assert len(viewer.frames) <= frames_before + 3  # video stopped (a frame or two in flight)

        await room.set_rendition(subscriber, "full")
        mark = len(viewer.frames)
        await wait_for(lambda: len(viewer.frames) >= mark + 20, timeout=15)
        assert {f[1:] for f in viewer.frames[mark + 2:]} == {(640, 480)}
        numbers = [f[0] for f in viewer.frames[mark + 2:]]
        assert numbers == sorted(numbers)
        with pytest.raises(ValueError):
            await room.set_rendition(subscriber, "4k")
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_throttled_viewer_is_moved_to_the_low_rendition_by_its_estimates_and_back(live_room):
    """A downlink that carries 800 kbit/s of a 1.5 Mbit/s broadcast (``netshim``'s
    bandwidth limit): the viewer's REMB falls under what it is sent and its reports lose
    packets; it is moved to the low rendition, keeps playing, and returns once the limit
    is lifted."""
    base, room, publisher = await live_room(low_rendition=True, metrics_token=METRICS_TOKEN,
                                            publisher=lambda b: ClipPublisher(b, kbps=1500))
    viewer = Viewer(base, report_interval=REPORT_INTERVAL)
    try:
        assert await viewer.play("demo") == 201
        await asyncio.wait_for(asyncio.shield(viewer.first_frame), 20)
        [subscriber] = room.subscribers.values()
        port = subscriber._downstreams["video"][1].port
        await wait_for(lambda: port.remb is not None, timeout=15)  # the viewer estimates its link
        assert subscriber.rendition == "full"
        link = Link(viewer.pc, "in", Impairment(rate=800_000, queue=0.15))
        await wait_for(lambda: subscriber.rendition == "low", timeout=30)
        assert room.low is not None and room.low.running
        # read at once: after SETTLE_REPORTS + UP_AFTER clean reports on the low rendition
        # (about 5 s at REPORT_INTERVAL) the viewer probes the full one again, which a loaded machine's slow
        # playing check below could reach first
        on_low = await scrape(base)
        assert subscriber.rendition == "low"  # the scrape was taken while it was there
        assert on_low["stagepass_viewers_by_rendition"][(("rendition", "low"),)] == 1
        assert on_low["stagepass_low_renditions_encoding"][()] == 1
        assert on_low["stagepass_rendition_switches_total"][(("direction", "down"),)] >= 1
        frames = len(viewer.numbers)
        await wait_for(lambda: len(viewer.numbers) > frames + 60, timeout=10)  # it keeps playing
        link.remove()  # the network recovers
        await wait_for(lambda: subscriber.rendition == "full", timeout=60)
        await wait_for(lambda: not room.low.running, timeout=5)
        back = await scrape(base)
        assert back["stagepass_viewers_by_rendition"][(("rendition", "full"),)] == 1
        assert back["stagepass_low_renditions_encoding"][()] == 0
        moved = back["stagepass_rendition_switches_total"]
        assert moved[(("direction", "up"),)] == moved[(("direction", "down"),)] >= 1
    finally:
        await viewer.close()
        await publisher.close()


def test_adaptation_is_quick_down_slow_up_and_goes_audio_only_last():
    a = Adaptation()
    settle = [None] * Adaptation.SETTLE_REPORTS
    assert a.report("full", 0.12, 0.05) is None
    assert a.report("full", 0.12, 0.05) == "low"
    assert [a.report("low", 0.5, 0.05) for _ in settle] == settle  # still the full rendition's losses
    assert a.report("low", 0.12, 0.05) is None and a.report("low", 0.15, 0.05) is None  # not bad enough
    assert a.report("low", 0.05, 0.05) is None  # between: ends the run
    heavy = [a.report("low", 0.5, 0.05) for _ in range(Adaptation.AUDIO_AFTER)]
    assert heavy == [None] * (Adaptation.AUDIO_AFTER - 1) + ["audio"]  # the low rendition does not get through
    up = Adaptation.SETTLE_REPORTS + Adaptation.UP_AFTER
    assert [a.report("audio", 0.0, 0.05) for _ in range(up)] == [None] * (up - 1) + ["low"]
    for _ in settle:
        a.report("low", 0.0, 0.05)
    assert a.report("low", 0.05, 0.05) is None  # between: resets both counts
    assert [a.report("low", 0.01, 0.9) for _ in range(2)] == [None, None]  # a long round trip is bad
    clean = Adaptation.UP_AFTER
    assert [a.report("low", 0.0, 0.05) for _ in range(clean)] == [None] * (clean - 1) + ["full"]


def test_a_squeezed_estimate_moves_down_without_loss_and_never_starts_a_probe():
    """REMB under ``REMB_BAD`` of the bitrate sent is a bad report even without loss; on the
    low rendition, under ``REMB_AUDIO`` it means audio only (not in the reports right after
    a switch); a clean report whose estimate is squeezed does not count towards going up.
    Receivers report about once a second: each report here is a second after the one before."""
    a = Adaptation(clock=itertools.count().__next__)
    settle = [None] * Adaptation.SETTLE_REPORTS
    assert a.report("full", 0.0, 0.05, 0.9) is None and a.report("full", 0.0, 0.05, 0.9) is None
    assert a.report("full", 0.0, 0.05, None) is None  # no recent estimate: loss and rtt decide
    assert a.report("full", 0.0, 0.05, 0.45) is None
    assert a.report("full", 0.0, 0.05, 0.45) == "low"
    # right after a switch the estimate still holds the cut made on the congested rendition
    quiet = int(Adaptation.ESTIMATE_SETTLE_SECONDS)
    assert [a.report("low", 0.0, 0.05, 0.3) for _ in range(quiet)] == [None] * quiet
    assert a.report("low", 0.0, 0.05, 0.6) is None and a.report("low", 0.0, 0.05, 0.6) is None  # squeezed, not starved
    # heavy losses while the estimate says the link carries what it is sent: random loss, stay
    assert a.report("low", 0.3, 0.05, 1.2) is None and a.report("low", 0.3, 0.05, 1.1) is None
    assert a.report("low", 0.0, 0.05, 0.3) is None and a.report("low", 0.0, 0.05, 0.3) == "audio"
    for _ in settle:
        a.report("audio", 0.0, 0.05, None)
    # on the low rendition again: clean reports go up, a squeezed estimate breaks the run
    b = Adaptation(clock=itertools.count().__next__)
    b.report("full", 0.2, None), b.report("full", 0.2, None)
    for _ in settle:
        b.report("low", 0.0, None)
    run = [b.report("low", 0.0, 0.05, 1.4) for _ in range(Adaptation.UP_AFTER - 1)]
    assert run == [None] * (Adaptation.UP_AFTER - 1)
    assert b.report("low", 0.0, 0.05, 0.5) is None  # squeezed: not clean
    assert [b.report("low", 0.0, 0.05, 1.4) for _ in range(Adaptation.UP_AFTER)][-1] == "full"


def test_a_failed_probe_up_doubles_the_wait_before_the_next():
    a = Adaptation()
    a.report("full", 0.3, None)
    assert a.report("full", 0.3, None) == "low"
    up = Adaptation.SETTLE_REPORTS + Adaptation.UP_AFTER
    assert [a.report("low", 0.0, None) for _ in range(up)][-1] == "full"  # the first probe
    for _ in range(Adaptation.SETTLE_REPORTS):
        a.report("full", 0.3, None)
    a.report("full", 0.3, None)
    assert a.report("full", 0.3, None) == "low"  # it failed at once
    assert a.up_after == 2 * Adaptation.UP_AFTER
    up = Adaptation.SETTLE_REPORTS + 2 * Adaptation.UP_AFTER
    assert [a.report("low", 0.0, None) for _ in range(up)].index("full") == up - 1
    assert [a.report("full", 0.0, None) for _ in range(8)] == [None] * 8  # this probe holds
    assert a.up_after == Adaptation.UP_AFTER


def test_without_an_estimate_random_loss_keeps_the_low_rendition():
    """A viewer that sends no REMB nor transport-cc: 15-25 % loss, report after report,
    some reports over 30 %, keeps the low rendition (audio only would lose as much); only
    a run of reports losing ``NO_ESTIMATE_AUDIO_LOSS`` on average means audio only, and
    video comes back once audio loses under ``AUDIO_UP_LOSS`` (not only when it is clean)."""
    a = Adaptation()
    a.report("full", 0.2, 0.05), a.report("full", 0.2, 0.05)
    for _ in range(Adaptation.SETTLE_REPORTS):
        a.report("low", 0.2, 0.05)
    radio = [0.15, 0.22, 0.31, 0.18, 0.25, 0.34, 0.2, 0.16, 0.29, 0.24, 0.33, 0.19] * 3
    assert [a.report("low", loss, 0.05, None) for loss in radio] == [None] * len(radio)
    # the latest AUDIO_AFTER reports of a run, on average, decide: a 15 % one holds it back
    assert [a.report("low", loss, 0.05) for loss in (0.25, 0.45, 0.4, 0.15, 0.5)] == [None] * 5
    assert [a.report("low", loss, 0.05) for loss in (0.5, 0.55)] == [None, "audio"]
    for _ in range(Adaptation.SETTLE_REPORTS):
        a.report("audio", 0.5, 0.05)
    # hysteresis: audio losing 20-30 % is still too much to try video again...
    assert [a.report("audio", 0.25, 0.05) for _ in range(3 * Adaptation.UP_AFTER)] == [None] * 3 * Adaptation.UP_AFTER
    # ...under AUDIO_UP_LOSS it is not: the low rendition gets through such a link
    back = [a.report("audio", 0.1, 0.05) for _ in range(Adaptation.UP_AFTER)]
    assert back == [None] * (Adaptation.UP_AFTER - 1) + ["low"]


async def test_a_viewer_without_estimates_stays_on_the_low_rendition_under_random_loss(live_room):
    """A player that sends no bandwidth estimate behind a link losing 15-25 % of its packets
    at random (a radio link, ``netshim``): moved to the low rendition and kept there, playing,
    report after report (audio only would lose as much); a link the low rendition cannot get
    through moves it to audio only, and video comes back once the link is fair again."""
    base, room, publisher = await live_room(low_rendition=True, publisher=lambda b: ClipPublisher(b, kbps=1500))
    viewer = SizedViewer(base, remb=False, report_interval=REPORT_INTERVAL)
    try:
        assert await viewer.play("demo") == 201
        await asyncio.wait_for(asyncio.shield(viewer.first_frame), 20)
        [subscriber] = room.subscribers.values()
        link = Link(viewer.pc, "in", Impairment(loss=RADIO_LOSS, seed=5))
        await wait_for(lambda: subscriber.rendition == "low", timeout=30)
        losses: list[float] = []
        seen = subscriber.latest_report()[0]

        def reports_on_low(count: int) -> bool:
            nonlocal seen
            latest = subscriber.latest_report()
            if latest[0] != seen:
                seen = latest[0]
                losses.append(latest[1])
            return len(losses) >= count or subscriber.rendition != "low"

        frames = len(viewer.frames)
        await wait_for(lambda: reports_on_low(RADIO_REPORTS), timeout=RADIO_REPORTS * 2 + 10, interval=0.05)
        print("losses reported on the low rendition:", [round(x, 2) for x in losses])
        assert subscriber.rendition == "low", losses
        assert max(losses) > Adaptation.DOWN_LOSS, losses  # the link did lose: bad reports
        assert subscriber._downstreams["video"][1].port.remb is None  # loss was all it told
        assert len(viewer.frames) > frames + 60  # and it kept playing
        link.impairment.loss = 0.7  # the low rendition cannot get through
        await wait_for(lambda: subscriber.rendition == "audio", timeout=30)
        link.impairment.loss = 0.03
        await wait_for(lambda: subscriber.rendition == "low", timeout=40)
    finally:
        await viewer.close()
        await publisher.close()
