"""One measured step: one server with N light viewers, fresh processes, measured like
``live_fanout.py`` (the server's own CPU clock, one-second slices, median)."""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from common.children import ALL_CPUS, Child
from common.measure import machine_cpu, process_cpu_seconds
from fanout.profiling import hot_spots, start_profiler
from fanout.step import until
from side_by_side import SCRIPT, VIEWERS_PER_PROCESS
from side_by_side.servers import start_server, wait_up


class Step:
    def __init__(self, server: str, n: int, args: argparse.Namespace, logdir: Path) -> None:
        self.server, self.n, self.args, self.logdir = server, n, args, logdir
        self.children: list[Child] = []
        self.server_cpus = args.server_cpus or ALL_CPUS
        self.client_cpus = (ALL_CPUS - args.server_cpus) or ALL_CPUS

    async def run(self, http: aiohttp.ClientSession) -> dict:
        try:
            return await self._run(http)
        finally:
            await asyncio.gather(*(c.stop() for c in reversed(self.children)))

    def cpu_seconds(self, pid: int) -> float:
        """The server's CPU seconds so far (``benchmarks/scale.py`` adds its media workers')."""
        return process_cpu_seconds(pid)

    async def _worker(self, name: str, *args: str) -> Child:
        child = await Child.start(f"{self.server}-{self.n}-{name}", [sys.executable, str(SCRIPT), *args],
                                  self.logdir, self.client_cpus, nice=10 if name.startswith("viewers") else 0)
        self.children.append(child)
        return child

    async def _start_server(self, http: aiohttp.ClientSession) -> tuple[Child, str, str]:
        started = await start_server(self.server, f"{self.server}-{self.n}", self.logdir, self.server_cpus,
                                     getattr(self.args, "base_root", None))
        self.children.insert(0, started.child)
        await wait_up(http, self.server, started)
        return started.child, started.base, started.feed

    async def _run(self, http: aiohttp.ClientSession) -> dict:
        server, base, feed = await self._start_server(http)
        feeder = await self._worker("feeder", "--worker", "feeder", "--url", feed,
                                    "--clip", str(self.logdir / "clip.vp8"))
        await feeder.request({"cmd": "publish"})
        kind = "janus" if self.server.startswith("janus") else "whep"
        viewers = [await self._worker(f"viewers{i}", "--worker", "viewers", "--kind", kind, "--url", base)
                   for i in range(math.ceil(self.n / VIEWERS_PER_PROCESS))]
        sizes = [min(VIEWERS_PER_PROCESS, self.n - i * VIEWERS_PER_PROCESS) for i in range(len(viewers))]
        added = await asyncio.gather(*(v.request({"cmd": "add", "n": k}) for v, k in zip(viewers, sizes)))
        connected = sum(r["connected"] for r in added)
        if connected < self.n:
            raise RuntimeError(f"{connected}/{self.n} viewers connected: {[e for r in added for e in r['errors']][:2]}")

        async def snap() -> list[int]:
            replies = await asyncio.gather(*(v.request({"cmd": "snap"}) for v in viewers))
            return [p for r in replies for p in r["packets"]]

        async def receiving() -> bool:
            return all(p > 0 for p in await snap())

        await until(receiving, 20, "video at every viewer")
        await asyncio.sleep(self.args.warmup)
        pid = server.proc.pid
        profiler = None
        if self.args.profile and self.server.startswith("stagepass") and self.n:
            profile = self.args.profile / f"{self.server}-{self.n}.txt"
            profiler = await start_profiler(pid, self.args.seconds, profile)
        first, t0 = await snap(), time.monotonic()
        cpu0, box0 = self.cpu_seconds(pid), machine_cpu()
        slices, prev, prev_t = [], cpu0, t0
        for i in range(1, self.args.seconds + 1):
            await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
            cpu, now = self.cpu_seconds(pid), time.monotonic()
            slices.append((cpu - prev) / (now - prev_t))
            prev, prev_t = cpu, now
        last, t1, box1 = await snap(), time.monotonic(), machine_cpu()
        if profiler is not None:
            await asyncio.wait_for(profiler.wait(), 30)
            print(hot_spots(profile, top=20), flush=True)
        per_viewer = [(b - a) / (t1 - t0) for a, b in zip(first, last)]
        return {
            "server": self.server, "viewers": self.n,
            "cpu_pct": statistics.median(slices) * 100,
            "packets_out_per_s": sum(per_viewer),
            "viewer_pps_min": min(per_viewer) if per_viewer else None,
            "viewer_pps_median": statistics.median(per_viewer) if per_viewer else None,
            "box_pct": (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * 100,
        }
