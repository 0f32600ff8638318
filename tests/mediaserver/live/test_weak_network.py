"""A viewer behind a real bandwidth limit: the test makes a network namespace joined to
this one by a veth pair, runs an aiortc viewer in it, and limits what reaches it with
``tc`` (a token bucket on the host end). Below the full rendition's bitrate the viewer's
receiver reports lose packets, the server moves it to the low rendition, and it stays
there (brief probes up aside) while the limit holds; it returns to the full rendition when
the limit is lifted. Needs root, ``ip`` and ``tc`` (CI runs as root)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from core.settings import Settings
from core.access import StreamKeyAccess
from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.encoded_media import ClipPublisher
from tests.support.missing_tools import missing_tool
from tests.support.rtmp_encoder import free_port
from tests.support.worker_pins import ONE_WORKER_EACH

pytestmark = [pytest.mark.inprocess, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
#: seconds between the viewer's receiver reports: a browser's pace, twice aiortc's own; the
#: switcher counts reports, so the windows below are in reports at this pace
REPORT_INTERVAL = 0.5
LIMITED_WINDOW = 20 * REPORT_INTERVAL  #: seconds sampled while the limit holds (about 20 reports)
STAYS_FULL = 8 * REPORT_INTERVAL  #: seconds it must stay on the full rendition after the limit (8 reports)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def namespace():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        missing_tool("a network namespace needs root, ip and tc (iproute2)")
    tag = os.getpid() % 10000
    ns, host_if, ns_if = f"spweak{tag}", f"spw{tag}h", f"spw{tag}n"
    subnet = f"10.213.{tag % 250}"
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{subnet}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{subnet}.2/30", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_if, f"{subnet}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def test_a_viewer_behind_a_bandwidth_limit_ends_on_the_low_rendition_and_returns(namespace, tmp_path):
    ns, host_if, host_addr = namespace
    settings = Settings.build(data_dir=tmp_path, rooms={"demo": KEY}, rtmp_port=0, recordings=False,
                              low_rendition=True, **ONE_WORKER_EACH)
    settings.validate()
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    publisher = ClipPublisher(f"http://127.0.0.1:{port}", kbps=1500)
    viewer = None
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = await wait_for(lambda: (r := app[ROOMS].get("demo")) is not None and r.live and r, timeout=15)
        viewer = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns, sys.executable, "-m", "tests.support.ns_viewer", f"http://{host_addr}:{port}", "demo",
            str(REPORT_INTERVAL),
            cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        first = json.loads(await asyncio.wait_for(viewer.stdout.readline(), 30))
        assert first["status"] == 201
        subscriber = room.subscribers[first["location"].rsplit("/", 1)[1]]

        seen = {"frames": 0}

        async def read_lines() -> None:  # the viewer's latest frame count
            async for line in viewer.stdout:
                seen.update(json.loads(line))

        reader = asyncio.ensure_future(read_lines())

        async def frames() -> int:
            assert not reader.done(), "the viewer stopped"
            return seen["frames"]

        await wait_for(lambda: seen["frames"] >= 30, timeout=20)
        assert subscriber.rendition == "full"
        # the viewer's downlink is limited below the full rendition (1.5 Mbit/s) but above the low one
        sh("tc", "qdisc", "add", "dev", host_if, "root", "tbf", "rate", "800kbit", "burst", "20kb", "latency", "150ms")
        await wait_for(lambda: subscriber.rendition == "low", timeout=30)
        on_low, samples, before = 0, 0, await frames()
        deadline = time.monotonic() + LIMITED_WINDOW
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            samples += 1
            on_low += subscriber.rendition == "low"
        # mostly on the low rendition (it probes up now and then, less and less often)
        assert on_low >= 0.65 * samples, (on_low, samples)
        assert await frames() > before + 15 * LIMITED_WINDOW  # and the picture keeps moving (half of 30 fps)
        sh("tc", "qdisc", "del", "dev", host_if, "root")
        await wait_for(lambda: subscriber.rendition == "full", timeout=90)
        await asyncio.sleep(STAYS_FULL)
        assert subscriber.rendition == "full"  # and it stays there
        assert room.low is not None and not room.low.running
        reader.cancel()
    finally:
        if viewer is not None and viewer.returncode is None:
            viewer.kill()
            await viewer.wait()
        await publisher.close()
        await runner.cleanup()
