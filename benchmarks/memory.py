"""Memory benchmark: does a server hosting live publishers stay the same size?

Run from the repository root::

    .venv/bin/python benchmarks/memory.py [--publishers 1,4] [--minutes 6] [--warmup 2]
        [--recordings on|off] [--churn 0] [--servers aiortc,stagepass] [--json out.json]

For each publisher count N and each server, in fresh processes:

* the server: Stagepass (the real app, media only, rooms ``m0..m{N-1}``) or the
  baseline, a *plain aiortc receiver* in this file (stock ``RTCPeerConnection``, tracks
  decoded and drained by ``MediaBlackhole``: what aiortc does on its own);
* one publisher process with N WHIP publishers (``tests/encoded_media.ClipPublisher``:
  a pre-encoded 500 kbit/s H.264 + Opus clip replayed, so publishers cost little CPU);
* with ``--churn S`` (Stagepass only), a viewer joins a room over WHEP every S seconds
  and leaves after S seconds (``common.viewers.LightViewer``: counts, never decodes).

The server reports, every ``--sample`` seconds: RSS, open fds, asyncio tasks, live
``RTCPeerConnection`` objects and packets received. The slope is a least-squares fit of
RSS over the samples after ``--warmup`` minutes, in MB/min (total and per publisher) and
in kB per 1,000 received packets. Then the publishers end their broadcasts (WHIP DELETE)
and the server's RSS, fds, tasks and peer connections are read again after ``--settle``
seconds: a stopped room must give its memory back (``back`` = RSS after the rooms
stopped minus RSS before the first publisher; the target is under 5 MB). With
``--cycles K`` the rooms then start and stop K more times (``--cycle-minutes`` each), a
day's pattern, printing the RSS after each stop.

Targets (issue 23): after the warm-up, under 0.05 MB/min per publisher; ``back`` < 5 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402

from common.children import ALL_CPUS, Child, command_loop, free_port  # noqa: E402
from common.viewers import LightViewer  # noqa: E402

KEY = "memorybenchkey1"


# ======================================================================= server side
def process_figures() -> dict:
    """What this process holds now: RSS (MB), fds, tasks, live peer connections."""
    from aiortc import RTCPeerConnection

    with open("/proc/self/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    pcs = sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection)
              and o.connectionState not in ("closed",))
    return {"rss_mb": rss_kb / 1024, "fds": len(os.listdir("/proc/self/fd")),
            "tasks": len(asyncio.all_tasks()), "pcs": pcs}


def stagepass_app(rooms: int, recordings: bool, data_dir: Path) -> tuple[Any, Any]:
    from stagepass.app import create_app
    from core.settings import Settings
    from core.access import StreamKeyAccess
    from signalling.whip import ROOMS

    settings = Settings.build(data_dir=data_dir, rooms={f"m{i}": KEY for i in range(rooms)},
                        recordings=recordings, log_level="WARNING", workers=1)  # media in this process
    settings.validate()
    app = create_app(settings, access=StreamKeyAccess(settings.stream_keys()))

    def packets() -> int:
        registry = app[ROOMS]
        return sum(f.stats.packets_in for room in registry for f in room.fanouts.values())

    return app, packets


def aiortc_app() -> tuple[Any, Any]:
    """The plain aiortc receiver: WHIP in, stock receivers decode, frames are dropped."""
    from aiohttp import web
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaBlackhole

    sessions: dict[str, tuple[Any, Any]] = {}
    ended = {"packets": 0}

    def received(pc: Any) -> int:
        total = 0
        for t in pc.getTransceivers():
            for stats in t.receiver._RTCRtpReceiver__remote_streams.values():
                total += stats.packets_received
        return total

    async def whip(request: web.Request) -> web.Response:
        pc = RTCPeerConnection()
        sink = MediaBlackhole()
        pc.on("track", sink.addTrack)
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        sid = os.urandom(8).hex()
        sessions[sid] = (pc, sink)
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                            headers={"Location": f"/whip/{request.match_info['room']}/{sid}"})

    async def delete(request: web.Request) -> web.Response:
        pc, sink = sessions.pop(request.match_info["sid"], (None, None))
        if pc is None:
            return web.Response(status=404)
        ended["packets"] += received(pc)
        await sink.stop()
        await pc.close()
        return web.Response(status=200)

    async def shutdown(app: web.Application) -> None:
        for pc, sink in list(sessions.values()):
            await sink.stop()
            await pc.close()

    app = web.Application()
    app.router.add_post("/whip/{room}", whip)
    app.router.add_delete("/whip/{room}/{sid}", delete)
    app.on_shutdown.append(shutdown)
    return app, lambda: ended["packets"] + sum(received(pc) for pc, _ in sessions.values())


async def server_worker(kind: str, port: int, rooms: int, recordings: bool) -> None:
    from aiohttp import web

    data_dir = Path(tempfile.mkdtemp(prefix="stagepass-memory-"))
    app, packets = (stagepass_app(rooms, recordings, data_dir) if kind == "stagepass" else aiortc_app())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def handle(msg: dict) -> dict:
        if msg.get("collect"):
            gc.collect()
        return {**process_figures(), "packets": packets(), "t": time.monotonic()}

    try:
        await command_loop(handle)
    finally:
        await runner.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


# ======================================================================= clients
async def join(http: aiohttp.ClientSession, base: str, room: str) -> Optional[tuple[LightViewer, str]]:
    """A WHEP viewer that counts packets and never decodes; None if refused or not connected."""
    viewer = LightViewer()
    try:
        return viewer, await viewer.play(http, base, room)
    except Exception:
        await viewer.pc.close()
        return None


async def leave(http: aiohttp.ClientSession, base: str, viewer: LightViewer, location: str) -> None:
    """WHEP DELETE, then close the peer."""
    try:
        async with http.delete(base + location) as r:
            await r.read()
    finally:
        await viewer.pc.close()


async def publishers_worker(base: str, count: int, churn: float) -> None:
    from tests.support.encoded_media import ClipPublisher

    publishers: list[ClipPublisher] = []
    churn_task: Optional[asyncio.Task] = None
    joins = {"n": 0, "failed": 0}

    async def churn_loop() -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                viewer = await join(http, base, f"m{joins['n'] % count}")
                joins["n" if viewer else "failed"] += 1
                try:
                    await asyncio.sleep(churn)
                finally:  # also when the run stops: the last viewer leaves too
                    if viewer is not None:
                        await asyncio.shield(leave(http, base, *viewer))

    async def handle(msg: dict) -> dict:
        nonlocal churn_task
        if msg["cmd"] == "publish":
            publishers.clear()
            for i in range(count):
                p = ClipPublisher(base)
                status = await p.publish(f"m{i}", KEY)
                if status != 201:
                    return {"error": f"WHIP {status}"}
                publishers.append(p)
            if churn and churn_task is None:
                churn_task = asyncio.ensure_future(churn_loop())
            return {"ok": True}
        if msg["cmd"] == "stop":
            if churn_task is not None:
                churn_task.cancel()
                await asyncio.gather(churn_task, return_exceptions=True)
                churn_task = None
            for p in publishers:
                await p.delete()
                await p.close()
            publishers.clear()
            return {"ok": True, "joins": joins["n"], "failed_joins": joins["failed"]}
        return {"error": "unknown command"}

    await command_loop(handle)


# ======================================================================= driver
async def worker(name: str, logdir: Path, *args: str) -> Child:
    """This script as a child process, answering JSON commands on stdin."""
    return await Child.worker(Path(__file__).resolve(), name, logdir, ALL_CPUS, *args)


def slope(points: list[tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else None


async def wait_up(base: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(base + "/") as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


class Run:
    """One server, N publishers: start, publish, sample, stop, and the day's cycles."""

    def __init__(self, server: str, n: int, args: argparse.Namespace, logdir: Path) -> None:
        self.server, self.n, self.args, self.logdir = server, n, args, logdir
        self.curve: list[dict] = []

    async def sample(self, srv: Child, t0: float, phase: str, collect: bool = False) -> dict:
        s = await srv.request({"cmd": "sample", "collect": collect})
        s["min"] = (s["t"] - t0) / 60
        s["phase"] = phase
        self.curve.append(s)
        print(f"  {self.server:9} N={self.n} {phase:7} {s['min']:5.1f} min  rss {s['rss_mb']:7.1f} MB"
              f"  fds {s['fds']:3}  tasks {s['tasks']:3}  pcs {s['pcs']:2}  packets {s['packets']}",
              flush=True)
        return s

    async def run(self) -> dict:
        a = self.args
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        srv = await worker(f"{self.server}-{self.n}", self.logdir, "--server", self.server,
                           "--port", str(port), "--rooms", str(self.n), "--recordings", a.recordings)
        pubs = await worker(f"publishers-{self.server}-{self.n}", self.logdir,
                            "--publishers-worker", base, "--count", str(self.n),
                            "--churn", str(a.churn if self.server == "stagepass" else 0))
        try:
            await wait_up(base)
            t0 = time.monotonic()
            before = await self.sample(srv, t0, "before", collect=True)
            result: dict[str, Any] = {"server": self.server, "n": self.n, "before": before}
            for cycle in range(1 + a.cycles):
                minutes = a.minutes if cycle == 0 else a.cycle_minutes
                await pubs.request({"cmd": "publish"})
                start = time.monotonic()
                while time.monotonic() - start < minutes * 60:
                    await asyncio.sleep(a.sample)
                    await self.sample(srv, t0, "live" if cycle == 0 else f"cycle{cycle}")
                if cycle == 0:
                    live = [s for s in self.curve if s["phase"] == "live"]
                    warm = [s for s in live if s["t"] - start >= a.warmup * 60] or live[-2:]
                    result["live_end"] = live[-1]
                    result["mb_per_min"] = slope([(s["min"], s["rss_mb"]) for s in warm])
                    per_pkt = slope([(s["packets"], s["rss_mb"] * 1024) for s in warm])
                    result["kb_per_1000_packets"] = per_pkt * 1000 if per_pkt is not None else None
                    result["packets_per_s"] = ((warm[-1]["packets"] - warm[0]["packets"])
                                               / max(1e-9, warm[-1]["t"] - warm[0]["t"]))
                stopped = await pubs.request({"cmd": "stop"})
                await asyncio.sleep(a.settle)
                after = await self.sample(srv, t0, "stopped", collect=True)
                result.setdefault("stopped", []).append(after)
                if cycle == 0:
                    result["joins"] = stopped.get("joins", 0)
            return result
        finally:
            await pubs.stop()
            await srv.stop()

    @staticmethod
    def summary(r: dict) -> str:
        def f(v: Optional[float], spec: str) -> str:
            return "-" if v is None else format(v, spec)

        before, stop, live = r["before"], r["stopped"][0], r["live_end"]
        per_pub = r["mb_per_min"] / r["n"] if r["mb_per_min"] is not None else None
        ok = per_pub is not None and per_pub < 0.05 and stop["rss_mb"] - before["rss_mb"] < 5
        cycles = " ".join(f"{s['rss_mb']:.1f}" for s in r["stopped"][1:])
        return (f"{r['server']:9} {r['n']:>2} {f(r['mb_per_min'], '+.3f'):>8} {f(per_pub, '+.3f'):>8} "
                f"{f(r['kb_per_1000_packets'], '+.2f'):>8} {r['packets_per_s']:7.0f} "
                f"{before['rss_mb']:7.1f} {live['rss_mb']:7.1f} {stop['rss_mb']:7.1f} "
                f"{stop['rss_mb'] - before['rss_mb']:+6.1f} "
                f"{before['fds']:>3}/{live['fds']:<3}/{stop['fds']:<3} "
                f"{before['tasks']:>3}/{live['tasks']:<3}/{stop['tasks']:<3} "
                f"{live['pcs']:>2}/{stop['pcs']:<2} {r.get('joins', 0):>5}  "
                f"{'ok' if ok else 'MISS'}  {cycles}")


HEADER = ("server     N   MB/min  /publ.  kB/1kpkt   pkt/s  rss0MB  liveMB  stopMB   back "
          "fds b/l/s    tasks b/l/s  pcs  joins  target  rss after each cycle")


async def run(args: argparse.Namespace) -> list[dict]:
    logdir = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    print(f"logs in {logdir}; {args.minutes} min per run, warm-up {args.warmup} min, "
          f"recordings {args.recordings}, churn {args.churn or 'off'}", flush=True)
    results = []
    for n in [int(x) for x in args.publishers.split(",") if x]:
        for server in [s for s in args.servers.split(",") if s]:
            results.append(await Run(server, n, args, logdir).run())
    print()
    print(HEADER)
    for r in results:
        print(Run.summary(r))
    return results


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--publishers", default="1,4", help="publisher counts, comma separated")
    p.add_argument("--servers", default="aiortc,stagepass")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the slope")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--settle", type=float, default=10.0, help="seconds after the rooms stop")
    p.add_argument("--recordings", default="on", choices=["on", "off"])
    p.add_argument("--churn", type=float, default=0.0, help="a viewer joins/leaves every S s")
    p.add_argument("--cycles", type=int, default=0, help="more start/stop cycles of the rooms")
    p.add_argument("--cycle-minutes", type=float, default=1.0)
    p.add_argument("--json", help="write every sample here")
    # workers (started by this script)
    p.add_argument("--server", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rooms", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--publishers-worker", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.server:
        asyncio.run(server_worker(args.server, args.port, args.rooms, args.recordings == "on"))
        return 0
    if args.publishers_worker:
        asyncio.run(publishers_worker(args.publishers_worker, args.count, args.churn))
        return 0
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
