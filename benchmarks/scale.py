"""Scale-out across nodes: what one node hop costs a viewer.

Run from the repository root::

    .venv/bin/python benchmarks/scale.py [--seconds 10] [--joins 6] [--json out.json]

Two real ``stagepass serve`` nodes on loopback share one Redis database (number 3,
flushed before and after) and one SQLite file: origin **A** has an aiortc publisher
(``tests/peers.Publisher``, H.264 with numbered frames at 30 fps, Opus beside it), edge
**B** pulls the room from A over WHEP when a viewer plays it there.

* **node hop latency**: two decoding viewers on A and one on B watch together for
  ``--seconds``; for every frame number all three decoded, the B viewer's decode time
  minus the first A viewer's is the hop's added latency, and the second A viewer's minus
  the first's is the baseline of the same run (two viewers of one node: decoding and
  scheduling noise, no hop). Medians and p95 in ms.
* **join time** (WHEP ``POST`` sent -> first decoded frame), ``--joins`` rounds, each
  round in turn: a viewer on A (baseline), a *cold* viewer on B (no viewer there: B
  must pull from A first), and a *warm* viewer on B (a viewer already keeps B pulling).
  B lets go between rounds (the cold viewer leaves last).

Media workers (``--workers N``, one machine), first, unless ``--no-workers``:

* **CPU per forwarded packet, 1 worker vs 2 workers**: ``side_by_side.step.Step`` (``janus_side_by_side.py``'s step: a VP8
  clip over WHIP from a feeder process, ``--worker-viewers`` light viewers that only
  decrypt and count, server pinned to CPU 0 and clients to the others) against
  ``stagepass serve`` and ``stagepass serve --workers 2``; the server's CPU is the control
  plane's plus its workers' (``/proc``), net of ingest (the same server with no viewer).
  With 2 workers the room's host worker pipes every packet once to the other, which
  serves half the viewers: the difference is what the pipe costs, spread over the
  packets forwarded.
* **worker pipe hop latency**: ``stagepass serve --workers 2`` with the numbered publisher
  and four decoding viewers, placed alternately on the other worker (relayed through the
  pipe) and the host; for every frame number all four decoded, a relayed viewer's decode
  time minus a host viewer's is the hop's added latency, and the second host viewer's
  minus the first's the baseline (no hop) of the same run.
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
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/ lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from tests.support.paywall_fixtures import flushed_redis  # noqa: E402
from tests.support.peers import Publisher, Viewer  # noqa: E402
from tests.support.server_process import start_server, stop  # noqa: E402

REDIS_DB = 3
KEY = "scale-benchmark-key"


def flags(db_path: Path) -> list[str]:
    return ["--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}", "--database-url", f"sqlite:///{db_path}",
            "--secret", "b" * 40, "--rooms", f"bench={KEY}", "--node-heartbeat-seconds", "0.5",
            "--recordings", "off", "--log-level", "WARNING"]


def pct(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def frame_times(viewer: Viewer) -> dict[int, float]:
    return dict(zip(viewer.numbers, viewer.frame_times))


async def room(base: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/rooms/bench") as r:
            return await r.json()


async def join(base: str, timeout: float = 20.0) -> tuple[Viewer, float]:
    """A viewer playing ``bench`` on ``base`` and its seconds from POST to first frame."""
    viewer = Viewer(base)
    sent = time.monotonic()
    status = await viewer.play("bench")
    if status != 201:
        raise RuntimeError(f"WHEP on {base}: {status} {viewer.error}")
    first = await asyncio.wait_for(viewer.first_frame, timeout)
    return viewer, first - sent


async def leave(viewer: Viewer) -> None:
    await viewer.delete()
    await viewer.close()


async def hop_latency(base_a: str, base_b: str, seconds: float) -> dict:
    (a1, _), (a2, _), (b1, _) = await asyncio.gather(join(base_a), join(base_a), join(base_b))
    try:
        await asyncio.sleep(seconds)
    finally:
        for viewer in (a1, a2, b1):
            await leave(viewer)
    t1, t2, tb = frame_times(a1), frame_times(a2), frame_times(b1)
    common = sorted(set(t1) & set(t2) & set(tb))
    same = [(t2[n] - t1[n]) * 1000 for n in common]
    hop = [(tb[n] - t1[n]) * 1000 for n in common]
    return {"frames": len(common), "same_node_ms": same, "node_hop_ms": hop}


async def wait_let_go(base_b: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (await room(base_b)).get("origin") is not None:
        if time.monotonic() > deadline:
            raise RuntimeError("the edge did not let go of the origin")
        await asyncio.sleep(0.1)


async def join_times(base_a: str, base_b: str, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"origin": [], "edge cold": [], "edge warm": []}
    for _ in range(rounds):
        await wait_let_go(base_b)
        viewer, seconds = await join(base_a)
        found["origin"].append(seconds)
        await leave(viewer)
        cold, seconds = await join(base_b)
        found["edge cold"].append(seconds)
        warm, seconds = await join(base_b)
        found["edge warm"].append(seconds)
        await leave(warm)
        await leave(cold)
    return found


# ======================================================================= media workers
def worker_cpu_step(step_class: type) -> type:  # side_by_side.step.Step, imported once the benchmarks folder is on the path
    class WorkerStep(step_class):
        def cpu_seconds(self, pid: int) -> float:
            """The control plane's CPU and its media workers' (its child processes)."""
            from common.measure import server_cpu_seconds

            return server_cpu_seconds(pid)

    return WorkerStep


async def worker_cpu(viewers: int, seconds: int, rounds: int) -> dict:
    """us of server CPU per forwarded packet, net of ingest, with 1 and 2 media workers."""
    benchmarks = str(ROOT / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    from common.children import ALL_CPUS  # noqa: E402
    from side_by_side.clip import save_clip, stream_rate, vp8_clip  # noqa: E402
    from side_by_side.report import medians, starved, us_per_packet  # noqa: E402
    from side_by_side.step import Step  # noqa: E402

    step_class = worker_cpu_step(Step)
    servers = ["stagepass-workers1", "stagepass-workers2"]
    logdir = Path(tempfile.mkdtemp(prefix="scale-workers-"))
    save_clip(vp8_clip(), logdir / "clip.vp8")
    rate = stream_rate(vp8_clip())
    args = argparse.Namespace(seconds=seconds, warmup=3.0, profile=None,
                              server_cpus=frozenset({0}) if len(ALL_CPUS) > 1 else frozenset())
    rows = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for r in range(rounds):
            for n in (0, viewers):
                for server in servers:
                    row = await step_class(server, n, args, logdir).run(http)
                    rows.append(row)
                    print(f"  round {r + 1} {server:19} N={n:<3} CPU {row['cpu_pct']:5.1f}%  "
                          f"{row['packets_out_per_s']:7.0f} pkt/s out", flush=True)
    m = medians([r for r in rows if not starved(r, rate)])
    return {"rate": rate, "medians": m, "logs": str(logdir),
            "us": {s: us_per_packet(m, s, viewers) for s in servers}}


async def worker_hop(seconds: float) -> dict:
    """Decode-time differences of one frame number: relayed viewers vs host viewers."""
    with tempfile.TemporaryDirectory(prefix="scale-hop-") as tmp:
        proc, base = await start_server(Path(tmp), "--workers", "2", "--rooms", f"bench={KEY}", "--recordings", "off",
                                        "--rtmp-port", "0", "--log-level", "WARNING", ready_path="/api/live")
        publisher = Publisher(base)
        joined: list[Viewer] = []
        try:
            if await publisher.publish("bench", KEY) != 201:
                raise RuntimeError(f"WHIP: {publisher.status} {publisher.error}")
            while not (await room(base))["live"]:
                await asyncio.sleep(0.1)
            # the least-loaded placement: the publisher's worker hosts, viewers alternate other/host
            for _ in range(4):
                joined.append((await join(base))[0])
            relayed_1, host_1, relayed_2, host_2 = joined
            workers = (await room(base))["workers"]
            host = next(w for w, info in workers.items() if info["host"])
            if sorted(info["viewers"] for info in workers.values()) != [2, 2] or len(workers) != 2:
                raise RuntimeError(f"viewers not spread two and two: {workers}")
            await asyncio.sleep(seconds)
        finally:
            for viewer in joined:
                await leave(viewer)
            await publisher.close()
            stop(proc)
    t = [frame_times(v) for v in (host_1, host_2, relayed_1, relayed_2)]
    common = sorted(set(t[0]).intersection(*t[1:]))
    return {"frames": len(common), "host": host,
            "same_worker_ms": [(t[1][n] - t[0][n]) * 1000 for n in common],
            "pipe_hop_ms": [(t[k][n] - t[0][n]) * 1000 for n in common for k in (2, 3)]}


def print_workers(cpu: Optional[dict], hop: dict) -> None:
    print(f"\nworker pipe hop, capture-to-viewer (decode time of the same frame number, {hop['frames']} frames), ms")
    print("| pair                         | n     |   median |      p95 |")
    print("|---|---|---|---|")
    print(row("host viewer 2 - host viewer 1", hop["same_worker_ms"]))
    print(row("relayed viewer - host viewer 1", hop["pipe_hop_ms"]))
    if cpu is None:
        return
    print(f"\nserver CPU per forwarded packet, net of ingest (control plane + workers, the stream "
          f"{cpu['rate']:.0f} packets/s)")
    print("| media workers | CPU % at 0 viewers | CPU % at N | packets/s out | us/packet | viewers per core |")
    print("|---|---|---|---|---|---|")
    for server, us in cpu["us"].items():
        idle = next((v for (s, n), v in cpu["medians"].items() if s == server and n == 0), None)
        busy = next((v for (s, n), v in cpu["medians"].items() if s == server and n), None)
        if idle is None or busy is None or us is None:
            print(f"| {server.removeprefix('stagepass-workers')} | - | - | - | - | - |")
            continue
        print(f"| {server.removeprefix('stagepass-workers')} | {idle['cpu_pct']:.1f} | {busy['cpu_pct']:.1f} | "
              f"{busy['packets_out_per_s']:.0f} | {us:.1f} | {viewers_per_core(us, cpu['rate']):.0f} |")
    one, two = cpu["us"].get("stagepass-workers1"), cpu["us"].get("stagepass-workers2")
    if one and two:
        print(f"\nratio 2 workers / 1 worker: {two / one:.2f} (the pipe's cost per forwarded packet: "
              f"{two - one:+.1f} us)")


def viewers_per_core(us_per_packet: float, rate: float) -> float:
    """How many viewers of this stream (30 fps, ``rate`` packets/s) one core forwards to at
    this marginal cost: a viewer costs ``rate`` packets/s x ``us_per_packet``."""
    return 1e6 / (us_per_packet * rate)


def row(name: str, values: list[float], scale: float = 1.0) -> str:
    med, p95 = statistics.median(values) * scale if values else None, pct(values, 0.95)
    p95 = p95 * scale if p95 is not None else None
    fmt = (lambda v: f"{v:8.1f}" if v is not None else "       -")
    return f"| {name:<28} | {len(values):5d} | {fmt(med)} | {fmt(p95)} |"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds the three viewers watch together")
    parser.add_argument("--joins", type=int, default=6, help="rounds of origin/cold edge/warm edge joins")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--worker-viewers", type=int, default=20, help="light viewers of the 1-vs-2-workers CPU steps")
    parser.add_argument("--worker-seconds", type=int, default=8, help="seconds each CPU step is measured")
    parser.add_argument("--worker-rounds", type=int, default=1, help="rounds of the CPU steps")
    parser.add_argument("--no-workers", action="store_true", help="skip the media worker measurements")
    parser.add_argument("--workers-only", action="store_true", help="only the media worker measurements")
    args = parser.parse_args()
    if not args.no_workers:
        worker_latency = await worker_hop(args.seconds)
        cpu = await worker_cpu(args.worker_viewers, args.worker_seconds, args.worker_rounds)
        print_workers(cpu, worker_latency)
        if args.workers_only:
            return 0
    procs = []
    async with flushed_redis(REDIS_DB):
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            try:
                node_a = await start_server(Path(tmp) / "a", *flags(Path(tmp) / "shared.db"), ready_path="/api/live")
                procs.append(node_a[0])
                node_b = await start_server(Path(tmp) / "b", *flags(Path(tmp) / "shared.db"), ready_path="/api/live")
                procs.append(node_b[0])
                base_a, base_b = node_a[1], node_b[1]
                publisher = Publisher(base_a)
                if await publisher.publish("bench", KEY) != 201:
                    raise RuntimeError(f"WHIP on A: {publisher.status} {publisher.error}")
                try:
                    while not (await room(base_a))["live"]:
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(1.0)  # registry heartbeat: B sees A's claim
                    hop = await hop_latency(base_a, base_b, args.seconds)
                    joins = await join_times(base_a, base_b, args.joins)
                finally:
                    await publisher.close()
            finally:
                for proc in procs:
                    stop(proc)
    print(f"\nnode hop, capture-to-viewer (decode time of the same frame number, {hop['frames']} frames), ms")
    print("| pair                         | n     |   median |      p95 |")
    print("|---|---|---|---|")
    print(row("A viewer 2 - A viewer 1", hop["same_node_ms"]))
    print(row("B (edge) viewer - A viewer 1", hop["node_hop_ms"]))
    print("\njoin time, WHEP POST -> first decoded frame, ms")
    print("| node                         | n     |   median |      p95 |")
    print("|---|---|---|---|")
    for name, values in joins.items():
        print(row(name, values, 1000.0))
    origin = statistics.median(joins["origin"])
    print(f"\nratios of medians: edge cold / origin {statistics.median(joins['edge cold']) / origin:.2f}, "
          f"edge warm / origin {statistics.median(joins['edge warm']) / origin:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"hop": hop, "joins": joins}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
