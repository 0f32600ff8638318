"""A Chromium viewer on a lossy downlink: 5% of the server's datagrams to the browser are
dropped (and the rest jittered by up to 30 ms) in user space (``tests/support/netshim.py``);
NACK/RTX and keyframe recovery keep the picture going in H.264 and in VP8. Frames are
counted with ``getStats`` (``framesDecoded``, sampled every 50 ms, and Chrome's own
``freezeCount`` / ``totalFreezesDuration``)."""

from __future__ import annotations

import asyncio

import pytest

from signalling.whip import ROOMS
from tests.support.browser import console_log
from tests.support.live_server import KEY, media_settings
from tests.support.waiting import wait_for
from tests.support.impaired_session import make_publisher
from tests.support.netshim import Impairment, Link

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def settings(tmp_path):
    """The forwarding path under loss, measured as such: no viewer is moved to the low
    rendition (the switch has tests of its own)."""
    return media_settings(tmp_path, low_rendition=False)


SECONDS = 10.0

SAMPLER = """() => {
  window.__samples = [];
  const pc = window.stagepass.session.pc;
  window.__timer = setInterval(async () => {
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        window.__samples.push({t: performance.now(), decoded: s.framesDecoded || 0, assembled: s.framesReceived || 0,
          freezes: s.freezeCount || 0, freezeTime: s.totalFreezesDuration || 0,
          lost: s.packetsLost || 0, received: s.packetsReceived || 0, nacks: s.nackCount || 0,
          plis: s.pliCount || 0, codec: s.codecId});
      }
    });
  }, 50);
}"""


def stall_span(samples: list[dict]) -> tuple[int, int]:
    """Indexes of the first and last sample of the longest stretch with no new decoded frame."""
    best, start = (0, 0), 0
    for i in range(1, len(samples)):
        if samples[i]["decoded"] != samples[start]["decoded"] or i == len(samples) - 1:
            if samples[i]["t"] - samples[start]["t"] > samples[best[1]]["t"] - samples[best[0]]["t"]:
                best = (start, i)
            start = i
    return best


def longest_stall(samples: list[dict]) -> float:
    """Seconds of the longest stretch with no new decoded frame."""
    first, last = stall_span(samples)
    return (samples[last]["t"] - samples[first]["t"]) / 1000


def around_stall(samples: list[dict]) -> list[tuple]:
    """The samples of the longest stall and one either side, as (ms, frames decoded, frames
    assembled, packets received, lost, NACKs, PLIs, freezes): for the failure message. Frames
    assembled but not decoded point at a starved decoder; packets received but no frame
    assembled, at a packet still missing."""
    first, last = stall_span(samples)
    return [(round(s["t"] - samples[0]["t"]), s["decoded"], s["assembled"], s["received"], s["lost"], s["nacks"],
             s["plis"], s["freezes"]) for s in samples[max(0, first - 1):last + 2]]


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_chromium_viewer_under_downlink_loss_plays_without_freezes(server, browser, codec):
    base, app = server
    log: list[str] = []
    publisher = make_publisher(base, codec)
    link = None
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
        context = await browser.new_context()
        page = await context.new_page()
        console_log(page, "watch", log)
        await page.goto(f"{base}/static/watch.html?room=demo&autoplay=1")
        await wait_for(lambda: len(room.subscribers) == 1, timeout=10)
        subscriber = next(iter(room.subscribers.values()))
        link = Link(subscriber.pc, "out", Impairment(loss=0.05, jitter=0.03, seed=21))
        for _, downstream in subscriber._downstreams.values():
            downstream.port._pair = None  # send through the impaired socket from now on
        await page.wait_for_function(
            "document.getElementById('status').dataset.state === 'playing'", timeout=15_000)
        await page.wait_for_function(
            "document.getElementById('video').currentTime > 1", timeout=15_000)
        await page.evaluate(SAMPLER)
        await asyncio.sleep(SECONDS)
        samples = await page.evaluate("() => { clearInterval(window.__timer); return window.__samples; }")
        assert len(samples) > 20, samples
        first, last = samples[0], samples[-1]
        decoded = last["decoded"] - first["decoded"]
        stall = longest_stall(samples)
        freezes = last["freezes"] - first["freezes"]
        freeze_time = last["freezeTime"] - first["freezeTime"]
        stats = room.stats()["fanouts"]["video"]
        print(f"{codec}: {decoded} frames decoded in {SECONDS:.0f} s, longest stall {stall:.2f} s, "
              f"Chrome freezes {freezes} ({freeze_time:.2f} s), lost {last['lost'] - first['lost']} of "
              f"{last['received'] - first['received']}, NACKs {last['nacks'] - first['nacks']}, PLIs "
              f"{last['plis'] - first['plis']}; shim dropped {link.impairment.dropped} of "
              f"{link.impairment.seen}; server retransmitted {stats['retransmitted']}")
        print("around the longest stall (ms, decoded, assembled, received, lost, NACKs, PLIs, freezes):",
              around_stall(samples))
        assert link.impairment.dropped > 10  # the loss was real
        assert decoded >= 0.6 * 30 * SECONDS, decoded
        assert stall < 0.5, around_stall(samples)
        # Chrome adds each freeze's duration when it ends: no single one reached 500 ms
        assert all(b["freezeTime"] - a["freezeTime"] < 0.5 for a, b in zip(samples, samples[1:])), (
            freezes, freeze_time)
        assert not [line for line in log if "pageerror" in line], log
    finally:
        if link is not None:
            link.remove()
        await publisher.close()
