"""A Chromium viewer past a source packet lost for good (``Fanout.source_lost``: the server's
repair upstream gave up) restarts on the next keyframe with its sequence numbers 1,024 further
on, the jump that makes an aiortc viewer drop its jitter buffer: Chrome must take that jump
too, clearing its NACK list, and keep decoding. Frames counted with ``getStats``."""

from __future__ import annotations

import asyncio

import pytest

from signalling.whip import ROOMS
from tests.support.browser import open_page
from tests.support.impaired_session import make_publisher
from tests.support.live_server import KEY, media_settings
from tests.support.waiting import wait_for
from tests.web.test_browser_network import SAMPLER, around_stall, longest_stall

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def settings(tmp_path):
    return media_settings(tmp_path, low_rendition=False)


async def test_chromium_viewer_takes_the_jump_past_a_packet_lost_for_good(server, browser):
    base, app = server
    log: list[str] = []
    publisher = make_publisher(base, "video/H264")
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
        page = await open_page(browser, base, "watch", log)
        await page.goto(f"{base}/static/watch.html?room=demo&autoplay=1")
        await page.wait_for_function("document.getElementById('video').currentTime > 1", timeout=15_000)
        fanout = room.fanouts["video"]
        [d] = [d for _, d in (s._downstreams["video"] for s in room.subscribers.values())]
        await page.evaluate(SAMPLER)
        await asyncio.sleep(1.0)
        before = d.last_vseq
        fanout.source_lost([fanout._highest & 0xFFFF])  # as if its repair upstream had given up
        assert d.waiting and fanout.stats.lost_keyframes == 1
        await asyncio.sleep(4.0)
        samples = await page.evaluate("() => { clearInterval(window.__timer); return window.__samples; }")
        first, last = samples[0], samples[-1]
        decoded, stall = last["decoded"] - first["decoded"], longest_stall(samples)
        print(f"Chrome past a lost packet: {decoded} frames decoded in 5 s, longest stall {stall:.2f} s, "
              f"NACKs {last['nacks'] - first['nacks']}, PLIs {last['plis'] - first['plis']}, "
              f"sequence {before} -> {d.last_vseq}")
        assert (d.last_vseq - before) & 0xFFFF > 1024  # it jumped
        assert stall < 1.5, around_stall(samples)
        assert decoded >= 0.6 * 30 * 4, decoded
        assert last["nacks"] - first["nacks"] < 50  # no NACK storm for the numbers jumped over
        assert not [line for line in log if "pageerror" in line], log
    finally:
        await publisher.close()
