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

The per-core media workers (``--workers N``) are not built yet, so the worker rows of
issue 12 are not measured here.
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
    args = parser.parse_args()
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
