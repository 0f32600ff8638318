"""RTMP ingest: time to the first viewer frame, and the server's CPU per RTMP room.

Run from the repository root::

    .venv/bin/python benchmarks/rtmp_ingest.py [--runs 5] [--seconds 10] [--workers N] [--json out.json]

* **first frame**: encoder start -> first decoded frame of an aiortc WHEP viewer that
  joins as soon as the room is live, for Debian's ffmpeg publishing RTMP (H.264 baseline
  320x240 at 30 fps, a keyframe every second, AAC) and, as the baseline in the same run, an
  aiortc WHIP publisher of the same numbered frames (H.264). Also from the viewer's WHEP
  POST to its first frame: the RTMP encoder cannot be asked for a keyframe, so a viewer
  waits for the encoder's next one (up to its keyframe interval) where a WHIP publisher
  sends one on request.
* **CPU per room**: the server process's CPU (all its threads) over ``--seconds`` with one
  RTMP room and no viewer, video only and video + AAC (transcoded to Opus once per room),
  beside the idle server in the same run. The encoder is another process: not counted;
  the numbered frames it encodes are drawn and piped to it by this process (about 2% of a
  core), counted in the server's figure (the control plane's with workers).
  With ``--workers N`` (media workers) the control plane hands the encoder's connection to
  the room's host worker: the CPU is shown for the control plane (this process) and for
  the workers (their processes' CPU from ``/proc``, summed).

The server runs in this process on loopback; the figures are medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/ lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from core.settings import Settings  # noqa: E402
from core.access import StreamKeyAccess  # noqa: E402
from signalling.whip import ROOMS  # noqa: E402
from stagepass.app import RTMP, create_app  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402
from tests.support.peers import Publisher, Viewer  # noqa: E402
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, free_port  # noqa: E402

KEY = "benchmark-key"


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def worker_seconds(self) -> float:
        """CPU seconds of the media worker processes (0 without workers)."""
        pool = getattr(self.app[ROOMS], "pool", None)
        return sum(process_seconds(w.pid) for w in pool.workers.values()) if pool is not None else 0.0

    async def start(self) -> None:
        settings = Settings.build(data_dir=Path(tempfile.mkdtemp(prefix="rtmp-bench-")), rooms={"b": KEY},
                            rtmp_port=free_port(), recordings=False, workers=self.workers)
        settings.validate()
        self.app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}"
        self.rtmp = f"rtmp://127.0.0.1:{self.app[RTMP].port}/live/{KEY}"

    def live(self) -> bool:
        room = self.app[ROOMS].get("b")
        return room is not None and room.live

    async def close(self) -> None:
        await self.runner.cleanup()


async def first_frame(server: Server, kind: str) -> tuple[float, float]:
    """(encoder start -> first viewer frame, viewer POST -> first frame), seconds."""
    t0 = time.monotonic()
    if kind == "rtmp":
        encoder = FfmpegRtmpPublisher(server.rtmp, gop=30)
        await encoder.start()
    else:
        whip = Publisher(server.base)
        assert await whip.publish("b", KEY) == 201
    viewer = Viewer(server.base)
    try:
        await wait_for(server.live)
        t_post = time.monotonic()
        assert await viewer.play("b") == 201
        t_frame = await asyncio.wait_for(viewer.first_frame, 20)
        return t_frame - t0, t_frame - t_post
    finally:
        await viewer.close()
        if kind == "rtmp":
            await encoder.stop()
        else:
            await whip.delete()
            await whip.close()
        room = server.app[ROOMS].get("b")
        await wait_for(lambda: room is None or room.publisher is None)


async def cpu(server: Server, seconds: float, mode: str) -> tuple[float, float]:
    """Percent of one core this process, and the media workers, used over ``seconds``
    (after 2 s of warm-up)."""
    encoder = None
    if mode != "idle":
        encoder = FfmpegRtmpPublisher(server.rtmp, gop=30, audio=mode == "video+aac")
        await encoder.start()
        await wait_for(server.live)
    try:
        await asyncio.sleep(2.0)
        c0, w0, t0 = time.process_time(), server.worker_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        return (time.process_time() - c0) / elapsed * 100, (server.worker_seconds() - w0) / elapsed * 100
    finally:
        if encoder is not None:
            await encoder.stop()
            room = server.app[ROOMS].get("b")
            await wait_for(lambda: room is None or room.publisher is None)


def med(values: list[float]) -> float:
    return statistics.median(values)


async def run(args: argparse.Namespace) -> dict:
    server = Server(args.workers)
    await server.start()
    report: dict = {"workers": args.workers, "first_frame": {"rtmp": [], "whip": []},
                    "post_to_frame": {"rtmp": [], "whip": []},
                    "cpu": {"idle": [], "video": [], "video+aac": []},
                    "worker_cpu": {"idle": [], "video": [], "video+aac": []}}
    try:
        for _ in range(args.runs):
            for kind in ("rtmp", "whip"):  # alternating, so load hits both alike
                total, post = await first_frame(server, kind)
                report["first_frame"][kind].append(total)
                report["post_to_frame"][kind].append(post)
        for _ in range(max(1, args.runs // 2)):
            for mode in ("idle", "video", "video+aac"):
                here, workers = await cpu(server, args.seconds, mode)
                report["cpu"][mode].append(here)
                report["worker_cpu"][mode].append(workers)
    finally:
        await server.close()
    return report


def print_table(report: dict) -> None:
    ff, pf = report["first_frame"], report["post_to_frame"]
    print(f"{'first viewer frame (s, median)':34} {'RTMP':>8} {'WHIP':>8} {'RTMP/WHIP':>10}")
    for label, values in (("encoder start -> frame", ff), ("viewer POST -> frame", pf)):
        r, w = med(values["rtmp"]), med(values["whip"])
        print(f"{label:34} {r:8.2f} {w:8.2f} {r / w:10.2f}")
    print()
    tables = [("server CPU, one RTMP room (% core)", report["cpu"])]
    if report["workers"] > 1:
        tables = [(f"control plane CPU, {report['workers']} workers", report["cpu"]),
                  ("media workers' CPU (% core, sum)", report["worker_cpu"])]
    for title, c in tables:
        idle = med(c["idle"])
        print(f"{title:34} {'median':>8} {'- idle':>8}")
        for mode in ("idle", "video", "video+aac"):
            print(f"{mode:34} {med(c[mode]):8.1f} {med(c[mode]) - idle:8.1f}")
        print(f"{'AAC -> Opus alone':34} {'':8} {med(c['video+aac']) - med(c['video']):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="media worker processes (1: in this process)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
