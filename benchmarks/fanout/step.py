"""``Step``: one measurement, one server with N viewers, in fresh processes."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable, Optional

import aiohttp

from common.children import ALL_CPUS, Child, free_port
from common.measure import machine_cpu, median, process_cpu_seconds, udp_drops, user_system_ticks
from fanout import KEY, LIGHT_VIEWER_NICE, METRICS_TOKEN, ROOM, SCRIPT, VIEWERS_PER_PROCESS
from fanout.profiling import start_profiler
from fanout.results import summarize

__all__ = ["Step"]


async def room_stats(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(f"{base}/api/rooms/{ROOM}") as r:
        return await r.json()


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


class Step:
    """One measurement: ``server`` ("stagepass" or "baseline") with ``n`` viewers."""

    def __init__(self, server: str, n: int, args: argparse.Namespace, logdir: Path,
                 metrics: bool = False) -> None:
        self.server, self.n, self.args, self.logdir = server, n, args, logdir
        #: Stagepass with ``STAGEPASS_METRICS_TOKEN`` set, scraped every second in the window
        self.metrics = metrics
        self.scrapes: list[float] = []  #: seconds each scrape of /metrics took
        self.children: list[Child] = []
        # Stagepass is one single-threaded process: give it its own CPU(s), the load
        # generator the others. The baseline (multithreaded encoders) runs unpinned.
        pinned = server == "stagepass" and args.server_cpus and args.server_cpus < ALL_CPUS
        self.server_cpus = args.server_cpus if pinned else ALL_CPUS
        self.client_cpus = ALL_CPUS - args.server_cpus if pinned else ALL_CPUS
        self.client_cpu = [0.0, 0.0]  #: % of a core: publisher, all viewer processes
        self.system_share: Optional[float] = None  #: kernel part of the server's CPU time
        self.udp_drops = [0, 0]  #: datagrams lost to full receive buffers: server, viewers

    async def run(self, http: aiohttp.ClientSession) -> dict:
        try:
            return await self._run(http)
        finally:
            await asyncio.gather(*(c.stop() for c in reversed(self.children)))

    async def _spawn(self, name: str, *args: str) -> Child:
        cpus = self.server_cpus if name == "server" else self.client_cpus
        # light viewers yield to the publisher and the sample viewer when the CPU is short
        nice = LIGHT_VIEWER_NICE if name.startswith("viewers") else 0
        child = await Child.worker(SCRIPT, f"{self.server}-{self.n}-{name}", self.logdir, cpus, *args,
                                   nice=nice)
        self.children.append(child)
        return child

    async def _run(self, http: aiohttp.ClientSession) -> dict:
        a, port = self.args, free_port()
        base = f"http://127.0.0.1:{port}"
        if self.server == "stagepass":
            argv = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port),
                    "--data-dir", str(self.logdir / "data"), "--rooms", f"{ROOM}={KEY}",
                    "--log-level", "WARNING"]
            root = a.server_root.resolve()  # its packages win over the editable install
            # the forwarding path alone: a starved sample viewer is never moved to a low
            # rendition encoded in the server (older checkouts ignore the variable)
            env = dict(os.environ, PYTHONPATH=str(root), STAGEPASS_LOW_RENDITION="off")
            # the single-process server this benchmark measures (the default is a worker of each kind per CPU)
            env.update(STAGEPASS_WORKERS="1", STAGEPASS_INTERACTION_WORKERS="1")
            env.pop("STAGEPASS_METRICS_TOKEN", None)
            if self.metrics:
                env["STAGEPASS_METRICS_TOKEN"] = METRICS_TOKEN
            server = await Child.start(f"stagepass-{self.n}-server{'-metrics' if self.metrics else ''}",
                                       argv, self.logdir,
                                       self.server_cpus, cwd=root, env=env)
            self.children.append(server)
        else:
            server = await self._spawn("server", "--baseline-server", str(port))
        server.takes_commands = False

        async def up() -> bool:
            if server.proc.returncode is not None:
                raise RuntimeError(f"server exited; see {server.log}")
            try:
                return "room" in await room_stats(http, base)
            except aiohttp.ClientError:
                return False

        await until(up, 30, "the server")
        publisher = await self._spawn("publisher", "--worker", "publisher", "--url", base,
                                      "--width", str(a.width), "--height", str(a.height),
                                      "--fps", str(a.fps), "--kbps", str(a.kbps))

        async def publish() -> None:
            await publisher.request({"cmd": "publish"})

            async def live() -> bool:
                return bool((await room_stats(http, base)).get("live"))

            await until(live, 20, "the publisher to go live")

        # Stagepass: viewers first, so every delay sample the server keeps has all of them.
        # The baseline needs the publisher's tracks before it can answer a viewer.
        if self.server == "baseline":
            await publish()
        viewers: list[Child] = []
        if self.n:
            viewers.append(await self._spawn("sample", "--worker", "sample", "--url", base))
        light = self.n - 1
        for i in range(math.ceil(max(light, 0) / VIEWERS_PER_PROCESS)):
            viewers.append(await self._spawn(f"viewers{i}", "--worker", "viewers", "--url", base))
        sizes = [1] + [min(VIEWERS_PER_PROCESS, light - i * VIEWERS_PER_PROCESS)
                       for i in range(len(viewers) - 1)]
        added = await asyncio.gather(*(v.request({"cmd": "add", "n": k})
                                       for v, k in zip(viewers, sizes)))
        connected = sum(r["connected"] for r in added)
        errors = [e for r in added for e in r["errors"]]
        if self.server == "stagepass":
            await publish()

        async def receiving() -> bool:  # every viewer got video
            snaps = await asyncio.gather(*(v.request({"cmd": "snap"}) for v in viewers))
            return all(vv[0][2] > 0 for s in snaps for vv in s["viewers"])

        try:
            await until(receiving, 20, "video at every viewer")
        except RuntimeError:
            print(f"  ! {self.server} n={self.n}: some viewers receive no video", flush=True)
        await asyncio.sleep(a.warmup)
        scraper = asyncio.ensure_future(self._scrape(http, base)) if self.metrics else None
        try:
            row = await self._window(http, base, server.proc.pid, publisher, viewers)
        finally:
            if scraper is not None:
                scraper.cancel()
                await asyncio.gather(scraper, return_exceptions=True)
        row["metrics"] = "on" if self.metrics else "off"
        row["scrape_ms_median"] = median(self.scrapes) * 1000 if self.scrapes else None
        row["publisher"]["cpu_pct"] = self.client_cpu[0]
        row["server_system_share"] = self.system_share
        row["server_udp_drops"], row["viewer_udp_drops"] = self.udp_drops
        received = (row["packets_in_per_s"] or 0) * row["window_s"] + self.udp_drops[0]
        row["ingress_loss_pct"] = 100 * self.udp_drops[0] / received if received else None
        row["viewer_processes_cpu_pct"] = self.client_cpu[1]
        # everything else on the machine (this script's parent included), % of one core
        row["other_cpu_pct"] = max(0.0, row["box_pct"] * len(ALL_CPUS)
                                   - row["cpu_pct_mean"] - sum(self.client_cpu))
        row.update(server=self.server, viewers=self.n, connected=connected,
                   connect_errors=errors[:3], codec=next((r.get("codec") for r in added
                                                          if r.get("codec")), None))
        return row

    async def _scrape(self, http: aiohttp.ClientSession, base: str) -> None:
        """Prometheus' part: GET /metrics every second (a tight scrape interval)."""
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        while True:
            started = time.monotonic()
            async with http.get(base + "/metrics", headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"/metrics answered {r.status}")
                await r.read()
            self.scrapes.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, started + 1.0 - time.monotonic()))

    async def _window(self, http: aiohttp.ClientSession, base: str, pid: int,
                      publisher: Child, viewers: list[Child]) -> dict:
        async def snapshot(captures: bool = False) -> tuple:
            return await asyncio.gather(
                room_stats(http, base), publisher.request({"cmd": "snap", "captures": captures}),
                *(v.request({"cmd": "snap"}) for v in viewers))

        def clients() -> tuple[float, float]:
            return (process_cpu_seconds(publisher.proc.pid),
                    sum(process_cpu_seconds(v.proc.pid) for v in viewers))

        profiler = None
        if self.args.profile:
            profiler = await start_profiler(pid, self.args.seconds,
                                            self.args.profile / f"{self.server}-{self.n}.txt")
        viewer_pids = [v.proc.pid for v in viewers]
        first = await snapshot()
        clients0 = clients()
        drops0 = udp_drops([pid]), udp_drops(viewer_pids)
        cpu0, box0, t0 = process_cpu_seconds(pid), machine_cpu(), time.monotonic()
        ticks0 = user_system_ticks(pid)
        slices, prev, prev_t = [], cpu0, t0
        for i in range(1, self.args.seconds + 1):
            await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
            cpu, now = process_cpu_seconds(pid), time.monotonic()
            slices.append((cpu - prev) / (now - prev_t))
            prev, prev_t = cpu, now
        box1, clients1, t1 = machine_cpu(), clients(), time.monotonic()
        user, system = (b - a for a, b in zip(ticks0, user_system_ticks(pid)))
        self.system_share = system / (user + system) if user + system else None
        self.client_cpu = [(b - a) / (t1 - t0) * 100 for a, b in zip(clients0, clients1)]
        last = await snapshot(captures=True)
        self.udp_drops = [b - a for a, b in zip(drops0, (udp_drops([pid]),
                                                          udp_drops(viewer_pids)))]
        if profiler is not None:
            await asyncio.wait_for(profiler.wait(), 30)
        return summarize(first, last, slices, (box1[0] - box0[0]) / max(1, box1[1] - box0[1]),
                         self.args.fps)
