"""What Prometheus metrics cost the live path: server CPU per forwarded packet with
``/metrics`` scraped and not, in one server, in interleaved slices (issue 20's "under 2%").

Run from the repository root::

    .venv/bin/python benchmarks/metrics_cost.py [--viewers 10,25] [--pairs 8] [--slice 3]

For each viewer count N: one ``stagepass serve`` (``STAGEPASS_METRICS_TOKEN`` set, pinned
to ``--server-cpus``), the synthetic 1.5 Mbit/s H.264 + Opus publisher and N light
viewers of ``benchmarks/live_fanout.py`` (its worker modes) in their own processes. Then
``--pairs`` rounds of three ``--slice``-second slices, in a shuffled order each round:

* ``off``: nobody scrapes (the same as no token: collection does no work per packet, the
  collector reads the live path's own counters only when scraped);
* ``1/s``: ``GET /metrics`` every second, 15 times Prometheus' default rate;
* ``10/s``: every 100 ms, which makes the scrapes' cost ten times larger than ``1/s``,
  so that it stands out of the noise of a shared machine.

Per slice: the server's CPU time (``/proc``) over the packets it forwarded (its fanouts'
``packets_out``), in microseconds. Each round's ratios to its own ``off`` slice, and their
medians, are printed; ``per scrape`` is the server's extra CPU per scrape measured by the
``10/s`` slices, and ``1/s cost`` what that makes at one scrape a second, as a share of
the server's CPU per forwarded packet (the bound: < 2%). Linux only.

``--workers 2``: the server runs two media workers (``stagepass serve --workers 2``; the
viewers spread over both, one relaying the room through the worker pipe); its CPU is the
control plane's and its workers' together, and each scrape asks both workers for their
samples over their channels (``ops/worker_metrics.py``). The forwarded packets are then
the workers' snapshots (every 0.5 s): use longer slices (``--slice 6``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from common.children import ALL_CPUS, Child, free_port  # noqa: E402
from common.measure import git_commit, machine_cpu, median, server_cpu_seconds  # noqa: E402
from fanout import KEY, LIGHT_VIEWER_NICE, METRICS_TOKEN, ROOM, SCRIPT, VIEWERS_PER_PROCESS  # noqa: E402

MODES = {"off": 0.0, "1/s": 1.0, "10/s": 0.1}  # seconds between scrapes (0: none)


async def forwarded(http: aiohttp.ClientSession, base: str) -> int:
    """Packets the room's fanouts forwarded so far (0 before the room exists)."""
    async with http.get(f"{base}/api/rooms/{ROOM}") as r:
        stats = await r.json()
    if "room" not in stats:
        raise RuntimeError(f"/api/rooms/{ROOM} answered {stats}")
    return sum(f["packets_out"] for f in stats.get("fanouts", {}).values())


async def scrape_every(http: aiohttp.ClientSession, base: str, interval: float, count: list[int]) -> None:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    next_at = time.monotonic()
    while True:
        async with http.get(base + "/metrics", headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"/metrics answered {r.status}")
            await r.read()
        count[0] += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def one_slice(http: aiohttp.ClientSession, base: str, pid: int, mode: str, seconds: float) -> dict:
    count = [0]
    interval = MODES[mode]
    packets0, cpu0, t0 = await forwarded(http, base), server_cpu_seconds(pid), time.monotonic()
    scraper = asyncio.ensure_future(scrape_every(http, base, interval, count)) if interval else None
    try:
        await asyncio.sleep(seconds)
    finally:
        if scraper is not None:
            scraper.cancel()
            await asyncio.gather(scraper, return_exceptions=True)
    cpu1, t1 = server_cpu_seconds(pid), time.monotonic()
    packets = await forwarded(http, base) - packets0
    cpu = cpu1 - cpu0
    return {"mode": mode, "cpu_s": cpu, "wall_s": t1 - t0, "packets": packets, "scrapes": count[0],
            "us_per_packet": cpu / packets * 1e6 if packets else None}


async def measure(n: int, args: argparse.Namespace, logdir: Path, rng: random.Random) -> dict:
    server_cpus = args.server_cpus if args.server_cpus and args.server_cpus < ALL_CPUS else ALL_CPUS
    client_cpus = ALL_CPUS - server_cpus or ALL_CPUS
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, STAGEPASS_METRICS_TOKEN=METRICS_TOKEN)
    children: list[Child] = []
    try:
        server = await Child.start(f"metrics-{n}-server", [
            sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir",
            str(logdir / f"data-{n}"), "--rooms", f"{ROOM}={KEY}", "--log-level", "WARNING",
            "--workers", str(args.workers), "--interaction-workers", "1"],  # no idle Socket.IO processes
            logdir, server_cpus, cwd=ROOT, env=env)
        server.takes_commands = False
        children.append(server)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    await forwarded(http, base)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the server did not start; see {server.log}")
            publisher = await Child.worker(SCRIPT, f"metrics-{n}-publisher", logdir, client_cpus,
                                           "--worker", "publisher", "--url", base)
            children.append(publisher)
            viewers = []
            for i in range(math.ceil(n / VIEWERS_PER_PROCESS)):
                viewers.append(await Child.worker(SCRIPT, f"metrics-{n}-viewers{i}", logdir, client_cpus,
                                                  "--worker", "viewers", "--url", base, nice=LIGHT_VIEWER_NICE))
            children.extend(viewers)
            sizes = [min(VIEWERS_PER_PROCESS, n - i * VIEWERS_PER_PROCESS) for i in range(len(viewers))]
            added = await asyncio.gather(*(v.request({"cmd": "add", "n": k}) for v, k in zip(viewers, sizes)))
            connected = sum(r["connected"] for r in added)
            await publisher.request({"cmd": "publish"})
            await asyncio.sleep(args.warmup)
            if not await forwarded(http, base):
                raise RuntimeError(f"nothing forwarded after the warm-up; see {logdir}")
            slices = []
            for _ in range(args.pairs):
                order = list(MODES)
                rng.shuffle(order)
                round_ = {mode: await one_slice(http, base, server.proc.pid, mode, args.slice) for mode in order}
                slices.append(round_)
    finally:
        await asyncio.gather(*(c.stop() for c in reversed(children)))
    return summarize(n, connected, slices)


def summarize(n: int, connected: int, rounds: list[dict]) -> dict:
    def us(mode: str) -> Optional[float]:
        return median([r[mode]["us_per_packet"] for r in rounds if r[mode]["us_per_packet"]])

    ratio = {mode: median([r[mode]["us_per_packet"] / r["off"]["us_per_packet"] for r in rounds
                           if r[mode]["us_per_packet"] and r["off"]["us_per_packet"]]) for mode in ("1/s", "10/s")}
    # the extra server CPU of one scrape: (CPU/s at 10/s - CPU/s off) / scrapes/s, per round
    per_scrape = []
    for r in rounds:
        hot, off = r["10/s"], r["off"]
        if hot["scrapes"]:
            extra = hot["cpu_s"] / hot["wall_s"] - off["cpu_s"] / off["wall_s"]
            per_scrape.append(extra / (hot["scrapes"] / hot["wall_s"]))
    scrape_s = median(per_scrape)
    off_cpu_per_s = median([r["off"]["cpu_s"] / r["off"]["wall_s"] for r in rounds])
    cost_1s = scrape_s / off_cpu_per_s * 100 if scrape_s is not None and off_cpu_per_s else None
    return {"viewers": n, "connected": connected, "rounds": len(rounds),
            "cpu_pct_off": off_cpu_per_s * 100 if off_cpu_per_s else None,
            "us_per_packet": {mode: us(mode) for mode in MODES}, "ratio": ratio,
            "scrape_cpu_ms": scrape_s * 1000 if scrape_s is not None else None, "cost_pct_at_1s": cost_1s,
            "slices": rounds}


def fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def print_table(rows: list[dict]) -> None:
    print("\nserver CPU per forwarded packet, medians of the rounds (ratios: each round to its own 'off')")
    print(f"{'N':>4} {'rounds':>6} {'cpu% off':>8} {'us/pkt off':>10} {'1/s':>7} {'10/s':>7} "
          f"{'1/s:off':>8} {'10/s:off':>8} {'per scrape':>11} {'1/s cost':>9}")
    for r in rows:
        u = r["us_per_packet"]
        print(f"{r['viewers']:>4} {r['rounds']:>6} {fmt(r['cpu_pct_off']):>8} {fmt(u['off'], '.2f'):>10} "
              f"{fmt(u['1/s'], '.2f'):>7} {fmt(u['10/s'], '.2f'):>7} {fmt(r['ratio']['1/s'], '.3f'):>8} "
              f"{fmt(r['ratio']['10/s'], '.3f'):>8} {fmt(r['scrape_cpu_ms'], '.2f') + ' ms':>11} "
              f"{fmt(r['cost_pct_at_1s'], '.2f') + '%':>9}")
    worst = max((r["cost_pct_at_1s"] for r in rows if r["cost_pct_at_1s"] is not None), default=None)
    if worst is not None:
        print(f"\nmetrics at one scrape a second cost at most {worst:.2f}% of the server's CPU per forwarded "
              f"packet (bound: < 2%): {'OK' if worst < 2 else 'OVER'}")


async def run(args: argparse.Namespace) -> list[dict]:
    logdir = Path(tempfile.mkdtemp(prefix="stagepass-metrics-cost-"))
    before = machine_cpu()
    await asyncio.sleep(2)
    after = machine_cpu()
    busy = (after[0] - before[0]) / max(1, after[1] - before[1]) * 100
    print(f"Stagepass {git_commit(ROOT) or ''}; {args.workers} media worker(s); {len(ALL_CPUS)} cores, server on CPU "
          f"{','.join(map(str, sorted(args.server_cpus))) or 'any'}; {busy:.0f}% busy before the run; logs in {logdir}",
          flush=True)
    rng = random.Random(args.seed)
    rows = []
    for n in args.viewers:
        row = await measure(n, args, logdir, rng)
        rows.append(row)
        print(f"  N={n}: {row['connected']} viewers connected, {row['rounds']} rounds", flush=True)
    print_table(rows)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="10,25", help="viewer counts, one server each")
    parser.add_argument("--pairs", type=int, default=8, help="rounds of off / 1/s / 10/s slices")
    parser.add_argument("--slice", type=float, default=3.0, help="seconds per slice")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after publishing before measuring")
    parser.add_argument("--seed", type=int, default=20, help="the slices' shuffle")
    parser.add_argument("--server-cpus", default="0" if len(ALL_CPUS) > 1 else "",
                        help="CPUs the server is pinned to, the publisher and viewers getting the others")
    parser.add_argument("--workers", type=int, default=1,
                        help="media workers of the server (1: media in the server's process)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.viewers = sorted({int(x) for x in args.viewers.split(",") if x.strip()})
    args.server_cpus = frozenset(int(c) for c in args.server_cpus.split(",") if c.strip())
    rows = asyncio.run(run(args))
    if args.json:
        import json

        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
