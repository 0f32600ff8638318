"""Danmaku delivery beside bare python-socketio and Node's socket.io 4, in one run.

One room, ``--rate`` danmaku a second from ``--senders`` accounts (python-socketio clients
of this process, each sending once every senders/rate seconds, staggered) for
``--seconds``; N viewers on Node's stock socket.io-client 4 over websocket
(``tests/support/socketio_viewers.cjs``, up to 250 per node process), the same viewers for every
server. Servers, interleaved per round:

- ``stagepass``: ``stagepass serve`` as shipped (adaptive batching, ``--danmaku-batch-ms 100``);
- ``stagepass b=0``: batching off (one frame per danmaku);
- ``stagepass x2``: one ``stagepass serve --interaction-workers 2`` (``--processes``): the
  control plane hands each WebSocket to the less loaded of two worker processes, which
  share the room through the node's local bus (``--x2-redis``: through Redis);
  ``stagepass b=0 x2``: the same without batching;
- ``bare python-socketio``: ``benchmarks/bare_socketio.py`` (python-socketio's own room emit);
- ``node socket.io``: ``benchmarks/node/server.cjs`` (the reference).

Per server and viewer count: delivery delay from send to receipt at every viewer (p50,
p99), delivered %, server CPU per delivered message (all its processes; "-" with no
viewers) and per danmaku accepted ("us/accept": at ``--viewers 0`` the acceptance path
alone, the part of a process's CPU that does not shrink with its audience), the busiest
server process's CPU %, the share of wall time its garbage collector stopped it, and the
ratios of p99 and CPU per message to Node's in the same round, and for one Stagepass process
the server's own share of the delay ("srv p99<=": acceptance to the frame written, the
bucket bound of the delivery histogram of /metrics). "x2 capacity" compares
the busiest process's CPU at the same load: how much more load two processes take before
one of their cores is full.

The senders connect before the window, as the viewers do. ``--server-root DIR`` runs
another checkout's server (e.g. a ``git archive`` of main) with the same clients;
``--profile DIR`` py-spies every Stagepass process during the window.

    npm ci --prefix benchmarks/node   # once: Node's socket.io server
    .venv/bin/python benchmarks/danmaku.py [--viewers 250,1000] [--rounds 2] [--processes]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import socketio

from fanout.profiling import hot_spots, start_profiler

ROOT = Path(__file__).resolve().parents[1]
VIEWERS_SCRIPT = ROOT / "tests" / "support" / "socketio_viewers.cjs"
PER_NODE = 250
METRICS_TOKEN = "benchmark-metrics-token"
REDIS_URL = "redis://127.0.0.1:6379/8"  # the benchmark's own Redis database (flushed)
SECRET = "b" * 40
X2_REDIS = "--x2-redis" in sys.argv
SERVER_ROOT = ROOT  # --server-root: the checkout Stagepass runs from
D, L = "stagepass_danmaku_delivery_seconds", "stagepass_event_loop_lag_seconds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("STAGEPASS_") and k not in ("REDIS_URL", "DATABASE_URL")}


class Server:
    """One configuration under test: its processes, their base URLs, GC time and setup."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen] = []
        self.bases: list[str] = []
        self.tmp = tempfile.TemporaryDirectory()

    async def start(self) -> None:
        raise NotImplementedError

    async def tokens(self, senders: int) -> tuple[str, list[str]]:
        """(viewer token, one token per sender)."""
        return "x", ["x"] * senders

    async def gc_seconds(self) -> list[float]:
        raise NotImplementedError

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.tmp.cleanup()


class Stagepass(Server):
    def __init__(self, name: str, batch_ms: int, processes: int = 1) -> None:
        super().__init__(name)
        self.batch_ms = batch_ms
        self.processes = processes

    async def start(self) -> None:
        shared = []
        if self.processes > 1 and X2_REDIS:
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
            shared = ["--redis-url", REDIS_URL]
        env = {**clean_env(), "STAGEPASS_METRICS_TOKEN": METRICS_TOKEN, "STAGEPASS_REVIEW_UNVERIFIED": "off",
               "PYTHONPATH": str(SERVER_ROOT),  # its packages win over the editable install
               "STAGEPASS_WORKERS": "1"}  # media in the node's process: only Socket.IO is measured
        port = free_port()
        cmd = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port),
               "--data-dir", f"{self.tmp.name}/node", "--secret", SECRET, "--log-level", "WARNING",
               "--danmaku-batch-ms", str(self.batch_ms), "--danmaku-user-rate", "100",
               "--danmaku-user-burst", "100", "--danmaku-room-rate", "100000",
               "--signups-per-hour", "100000", "--interaction-workers", str(self.processes), *shared]
        self.procs.append(subprocess.Popen(cmd, cwd=SERVER_ROOT, env=env, stdout=subprocess.DEVNULL))
        self.bases.append(f"http://127.0.0.1:{port}")

    def processes_now(self) -> list[psutil.Process]:
        """The node and its interaction workers (started once the node answers)."""
        node = psutil.Process(self.procs[0].pid)
        return [node, *node.children()]

    async def tokens(self, senders: int) -> tuple[str, list[str]]:
        base = self.bases[0]
        async with aiohttp.ClientSession() as http:
            async def signup(role: str) -> str:
                async with http.post(base + "/api/auth/signup", json={
                        "email": f"{role}-{time.time_ns()}@bench.org", "password": "benchmark pw",
                        "role": role}) as r:
                    return (await r.json())["token"]

            async def token(login: str) -> str:
                async with http.post(base + "/api/rooms/bench/tokens", json={"scope": "view"},
                                     headers={"Authorization": f"Bearer {login}"}) as r:
                    return (await r.json())["token"]

            creator = await signup("creator")
            async with http.post(base + "/api/rooms", headers={"Authorization": f"Bearer {creator}"}, json={
                    "slug": "bench", "title": "bench", "currency": "USD", "ticket_price": 0}) as r:
                assert r.status == 201, await r.text()
            viewer = await token(await signup("viewer"))
            return viewer, [await token(await signup("viewer")) for _ in range(senders)]

    async def gc_seconds(self) -> list[float]:
        out = []
        async with aiohttp.ClientSession() as http:
            for base in self.bases:
                async with http.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as r:
                    text = await r.text()
                out.append(sum(float(v) for v in re.findall(r"^stagepass_gc_pause_seconds_total\{[^}]*\} (\S+)$",
                                                            text, re.M)))
                # each interaction worker's own collector, as it last reported (once a second)
                out.extend(float(v) for v in re.findall(
                    r"^stagepass_interaction_worker_gc_pause_seconds_total\{[^}]*\} (\S+)$", text, re.M))
        return out


async def histograms(server: Server) -> dict[str, dict[float, float]]:
    """The control plane's danmaku delivery and event-loop lag histograms (cumulative
    bucket counts by upper bound); empty for other servers. With interaction workers the
    danmaku are delivered by the workers, whose histograms are not exported."""
    if not isinstance(server, Stagepass):
        return {}
    async with aiohttp.ClientSession() as http:
        async with http.get(server.bases[0] + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as r:
            text = await r.text()
    out: dict[str, dict[float, float]] = {}
    for name in ("stagepass_danmaku_delivery_seconds", "stagepass_event_loop_lag_seconds"):
        out[name] = {float("inf") if le == "+Inf" else float(le): float(v) for le, v in
                     re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M)}
    return out


def quantile_bound(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (ms) of the bucket holding quantile ``q`` of what was observed between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    for bound, count in zip(bounds, counts):
        if count >= q * counts[-1]:
            return bound * 1000
    return float("inf")


def run_queue_ns(procs: list[psutil.Process]) -> list[int]:
    """Nanoseconds each process's main thread (its event loop) has waited for a core
    (``/proc/PID/schedstat``, second field): on a shared machine, where latency goes."""
    out = []
    for p in procs:
        try:
            out.append(int(Path(f"/proc/{p.pid}/schedstat").read_text().split()[1]))
        except (OSError, IndexError, ValueError):
            out.append(0)
    return out


class Bare(Server):
    def processes_now(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.procs]

    async def start(self) -> None:
        port = free_port()
        self.procs.append(subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bare_socketio.py"), str(port)],
                                           cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL))
        self.bases.append(f"http://127.0.0.1:{port}")

    async def gc_seconds(self) -> list[float]:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.bases[0] + "/stats") as r:
                return [(await r.json())["gc_ms"] / 1000]


class Node(Bare):
    async def start(self) -> None:
        port = free_port()
        self.procs.append(subprocess.Popen(["node", str(ROOT / "benchmarks" / "node" / "server.cjs"), str(port)],
                                           cwd=ROOT, stdout=subprocess.DEVNULL))
        self.bases.append(f"http://127.0.0.1:{port}")


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def viewers(base: str, token: str, count: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "node", str(VIEWERS_SCRIPT), base, "bench", token, str(count), "--latency",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 28)
    line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 300))
    if "ready" not in line:
        raise RuntimeError(f"viewers: {line}")
    return proc


async def connect_senders(bases: list[str], tokens: list[str]) -> list[socketio.AsyncClient]:
    clients = []
    for i, token in enumerate(tokens):
        c = socketio.AsyncClient(reconnection=False)
        await c.connect(bases[i % len(bases)], auth={"room": "bench", "token": token}, transports=["websocket"],
                        wait_timeout=60)
        clients.append(c)
    return clients


async def send(clients: list[socketio.AsyncClient], rate: float, seconds: float) -> int:
    period = len(clients) / rate
    acked = 0

    async def one(i: int, c: socketio.AsyncClient) -> None:
        nonlocal acked
        await asyncio.sleep(i * period / len(clients))
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds:
            ack = await c.call("danmaku:send", {"text": f"{time.time():.6f} hello"}, timeout=60)
            if ack.get("ok"):
                acked += 1
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * period - time.monotonic()))

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    return acked


async def run(server: Server, n: int, rate: float, seconds: float, senders: int,
              profile: Path | None = None) -> dict:
    try:
        await server.start()
        for base in server.bases:
            await wait_up(base + ("/api/catalog" if isinstance(server, Stagepass) else "/stats"))
        view_token, send_tokens = await server.tokens(senders)
        groups = []
        left, i = n, 0
        while left > 0:
            k = min(PER_NODE, left)
            groups.append(viewers(server.bases[i % len(server.bases)], view_token, k))
            left -= k
            i += 1
        procs = [await g for g in groups]  # one at a time: a connect storm is another benchmark
        clients = await connect_senders(server.bases, send_tokens)  # before the window, as the viewers
        await asyncio.sleep(1.5)  # their arrival (presence, recent danmaku) is over
        ps = server.processes_now()
        gc0 = await server.gc_seconds()
        hist0 = await histograms(server)
        cpu0 = [sum(p.cpu_times()[:2]) for p in ps]
        sys0 = [p.cpu_times().system for p in ps]
        queued0 = run_queue_ns(ps)
        profilers = []
        if profile is not None and isinstance(server, Stagepass):
            for i, p in enumerate(ps):
                out = profile / f"{server.name.replace(' ', '_')}-{n}-{i}.txt"
                profilers.append((out, await start_profiler(p.pid, int(seconds + 2), out)))
        t0 = time.monotonic()
        sent = await send(clients, rate, seconds)
        await asyncio.sleep(2.0)  # the last danmaku arrive
        wall = time.monotonic() - t0
        cpu = [sum(p.cpu_times()[:2]) - c for p, c in zip(ps, cpu0)]
        kernel = [p.cpu_times().system - c for p, c in zip(ps, sys0)]
        queued = [(b - a) / 1e9 for a, b in zip(queued0, run_queue_ns(ps))]
        gc = [b - a for a, b in zip(gc0, await server.gc_seconds())]
        hist1 = await histograms(server)
        for c in clients:
            await c.disconnect()
        for out, profiler in profilers:
            await profiler.wait()
            if out.exists():
                print(hot_spots(out), file=sys.stderr, flush=True)
        delays: list[float] = []
        frames = 0
        for p in procs:
            p.stdin.close()
            out = json.loads((await p.stdout.readline()) or b"{}")
            delays.extend(out.get("delays_ms", []))
            frames += out.get("frames", 0)
            await p.wait()
    finally:
        server.stop()
    delays.sort()
    delivered = len(delays)
    return {
        "server": server.name, "viewers": n, "sent": sent, "delivered_pct": 100 * delivered / max(1, sent * n),
        "p50_ms": statistics.median(delays) if delays else float("nan"),
        "p99_ms": delays[int(0.99 * (delivered - 1))] if delays else float("nan"),
        # no deliveries (--viewers 0): no figure, not the window's CPU divided by one
        "cpu_us_per_msg": 1e6 * sum(cpu) / delivered if delivered else float("nan"),
        # every process's CPU per danmaku accepted: at --viewers 0 the acceptance path alone
        # (and the senders' own frames), what each process pays whatever its audience
        "cpu_us_per_accepted": 1e6 * sum(cpu) / sent if sent else float("nan"),
        "busiest_cpu_pct": 100 * max(cpu) / wall,
        # danmaku frames each viewer received (a frame carries one or more danmaku)
        "frames_per_viewer": frames / max(1, n),
        "cpu_pct_by_process": [round(100 * c / wall, 1) for c in cpu],  # the node first, then its workers
        "kernel_share_by_process": [round(k / c, 2) if c else 0.0 for k, c in zip(kernel, cpu)],
        # the share of the window the busiest process's event loop was runnable but waited for a core
        "runq_pct": 100 * max(queued) / wall,
        "gc_pct": 100 * max(g / wall for g in gc),
        # where the time goes: acceptance to the frame written (server side), and loop lag
        "server_p99_ms": quantile_bound(hist0.get(D, {}), hist1.get(D, {}), 0.99) if hist0 else float("nan"),
        "lag_p99_ms": quantile_bound(hist0.get(L, {}), hist1.get(L, {}), 0.99) if hist0 else float("nan"),
    }


def figure(value: float) -> str:
    """A per-message figure to one decimal, "-" where there is none (no message delivered)."""
    return "-" if value != value else f"{value:.1f}"


def servers(processes: bool) -> list[Server]:
    out: list[Server] = [Stagepass("stagepass", 100), Stagepass("stagepass b=0", 0)]
    if processes:
        out += [Stagepass("stagepass x2", 100, processes=2), Stagepass("stagepass b=0 x2", 0, processes=2)]
    return out + [Bare("bare python-socketio"), Node("node socket.io")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="250,1000")
    parser.add_argument("--rate", type=float, default=20.0, help="danmaku per second sent")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians are printed)")
    parser.add_argument("--processes", action="store_true",
                        help="add Stagepass with two interaction workers (--interaction-workers 2)")
    parser.add_argument("--x2-redis", action="store_true", help="the two workers share through Redis, not the local bus")
    parser.add_argument("--only", default="", help="comma-separated server names to run")
    parser.add_argument("--json", help="write every run here")
    parser.add_argument("--server-root", type=Path, default=ROOT, metavar="DIR",
                        help="the checkout Stagepass runs from (e.g. a git archive of main)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy every Stagepass process during the window into DIR and print its hot "
                        "spots (numbers of a profiled run are not for comparison)")
    args = parser.parse_args()
    if shutil.which("node") is None or not (ROOT / "benchmarks" / "node" / "node_modules" / "socket.io").is_dir():
        sys.exit("needs node and Node's socket.io: npm ci --prefix benchmarks/node")
    os.chdir(ROOT)
    global SERVER_ROOT
    SERVER_ROOT = args.server_root.resolve()
    print(f"Stagepass from {SERVER_ROOT}", flush=True)
    runs = []
    print(f"{'viewers':>7} {'server':<22} {'p50 ms':>7} {'p99 ms':>7} {'deliv %':>7} {'cpu us/msg':>10} "
          f"{'us/accept':>9} {'busiest %':>9} {'gc %':>5} {'p99/node':>8} {'cpu/node':>8} {'srv p99<=':>9} {'runq %':>6}", flush=True)
    for n in [int(x) for x in args.viewers.split(",")]:
        per: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for server in servers(args.processes):
                if args.only and server.name not in args.only.split(","):
                    continue
                r = asyncio.run(run(server, n, args.rate, args.seconds, args.senders, args.profile))
                runs.append(r)
                print(f"  ({server.name}: p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms, "
                      f"{r['delivered_pct']:.1f}% delivered, {figure(r['cpu_us_per_msg'])} us/msg, "
                      f"{r['cpu_us_per_accepted']:.0f} us per danmaku accepted, "
                      f"{r['frames_per_viewer']:.0f} frames a viewer, CPU % by process {r['cpu_pct_by_process']} "
                      f"(kernel share {r['kernel_share_by_process']}), "
                      f"server side p99 "
                      f"<= {r['server_p99_ms']} ms, loop lag p99 <= {r['lag_p99_ms']} ms, waiting for a core "
                      f"{r['runq_pct']:.1f}% of the time)", file=sys.stderr,
                      flush=True)
                per.setdefault(server.name, []).append(r)
        med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0] if not isinstance(rs[0][k], (str, list))}
               for name, rs in per.items()}
        node = med.get("node socket.io")
        for name, m in med.items():
            p99r = m["p99_ms"] / node["p99_ms"] if node else float("nan")
            cpur = m["cpu_us_per_msg"] / node["cpu_us_per_msg"] if node else float("nan")
            print(f"{n:>7} {name:<22} {m['p50_ms']:>7.1f} {m['p99_ms']:>7.1f} {m['delivered_pct']:>7.1f} "
                  f"{figure(m['cpu_us_per_msg']):>10} {m['cpu_us_per_accepted']:>9.0f} "
                  f"{m['busiest_cpu_pct']:>9.1f} {m['gc_pct']:>5.2f} "
                  f"{p99r:>8.2f} {cpur:>8.2f} {m['server_p99_ms']:>9.0f} {m['runq_pct']:>6.1f}", flush=True)
        for one, two in (("stagepass", "stagepass x2"), ("stagepass b=0", "stagepass b=0 x2")):
            if one in med and two in med:
                ratio = med[one]["busiest_cpu_pct"] / med[two]["busiest_cpu_pct"]
                frames = med[two]["frames_per_viewer"] / max(1e-9, med[one]["frames_per_viewer"])
                print(f"{n:>7} {two} capacity (busiest process CPU, 1 process / 2 processes): {ratio:.2f}x; "
                      f"frames a viewer got, 2 processes / 1: {frames:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
