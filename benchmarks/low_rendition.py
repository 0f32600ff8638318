"""The low rendition for weak networks: its CPU per room, and how long a switch takes.

Run from the repository root::

    .venv/bin/python benchmarks/low_rendition.py [--runs 3] [--seconds 8] [--json out.json]

One room, an aiortc WHIP publisher (H.264 640x480 at 30 fps, numbered frames) and one aiortc
viewer reading frame numbers and sizes, all in this process on loopback. Per run:

* **CPU**: this process's CPU over ``--seconds`` with the viewer on the full rendition
  (the baseline: publisher encoding, forwarding, viewer decoding) and then on the low one
  (the same plus the rendition's decode, scale and encode); the difference is the
  rendition's cost, and the rendition's worker thread is also measured alone (psutil
  per-thread times).
* **switch time**: from ``Room.set_rendition`` to the viewer's first decoded frame of the
  other size, down (full -> low) and up (low -> full). Both wait for a keyframe: the low
  rendition's encoder makes one at once, the publisher is asked for one (rate-limited).

Prints medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/ lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from aiohttp import web  # noqa: E402

from core.settings import Settings  # noqa: E402
from core.access import StreamKeyAccess  # noqa: E402
from signalling.whip import ROOMS  # noqa: E402
from stagepass.app import create_app  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402
from tests.support.peers import Publisher, SizedViewer  # noqa: E402
from tests.support.rtmp_encoder import free_port  # noqa: E402

KEY = "benchmark-key"


def thread_cpu(native_id: int) -> float:
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


async def one_run(seconds: float) -> dict:
    settings = Settings.build(data_dir=Path(tempfile.mkdtemp(prefix="low-bench-")), rooms={"b": KEY}, rtmp_port=0,
                              recordings=False, workers=1)  # media in this process
    settings.validate()
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    publisher = Publisher(base, width=640, height=480)
    viewer = SizedViewer(base)
    try:
        assert await publisher.publish("b", KEY) == 201
        await wait_for(lambda: (r := app[ROOMS].get("b")) is not None and r.live)
        room = app[ROOMS].get("b")
        assert await viewer.play("b") == 201
        await wait_for(lambda: len(viewer.frames) > 30)
        [subscriber] = room.subscribers.values()
        c0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        full_cpu = (time.process_time() - c0) / (time.monotonic() - t0) * 100

        t_switch = time.monotonic()
        mark = len(viewer.frames)
        await room.set_rendition(subscriber, "low")
        await wait_for(lambda: any(f[1:] == (480, 360) for f in viewer.frames[mark:]))
        down = time.monotonic() - t_switch
        await asyncio.sleep(1.0)
        worker = room.low._thread.native_id
        w0, c0, t0 = thread_cpu(worker), time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        low_cpu = (time.process_time() - c0) / elapsed * 100
        worker_cpu = (thread_cpu(worker) - w0) / elapsed * 100

        t_switch = time.monotonic()
        mark = len(viewer.frames)
        await room.set_rendition(subscriber, "full")
        await wait_for(lambda: any(f[1:] == (640, 480) for f in viewer.frames[mark:]))
        up = time.monotonic() - t_switch
        return {"full_cpu": full_cpu, "low_cpu": low_cpu, "worker_cpu": worker_cpu, "down_s": down, "up_s": up}
    finally:
        await viewer.close()
        await publisher.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.seconds)) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{'one room, one viewer (% of a core, median)':44} {'value':>8}")
    print(f"{'process, viewer on full (baseline)':44} {med['full_cpu']:8.1f}")
    print(f"{'process, viewer on low':44} {med['low_cpu']:8.1f}")
    print(f"{'low rendition: difference':44} {med['low_cpu'] - med['full_cpu']:8.1f}")
    print(f"{'low rendition: its worker thread alone':44} {med['worker_cpu']:8.1f}")
    print()
    print(f"{'switch to the first frame (s, median)':44} {'value':>8}")
    print(f"{'down: full -> low':44} {med['down_s']:8.2f}")
    print(f"{'up: low -> full':44} {med['up_s']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": med}, indent=2))


if __name__ == "__main__":
    main()
