"""Danmaku delivery under load: batched broadcasts against one-message-per-frame.

One room, N Socket.IO viewers spread over worker processes (so the viewers' CPU is not
the server's), one sender emitting M danmaku per second for D seconds. For each N the
script runs the server twice, with batching (``--danmaku-batch-ms 100``) and without
(``0``), and prints per run: delivery delay from send to receipt at every viewer
(p50/p99), messages delivered per second, Socket.IO frames per viewer per second, and the
server's CPU (its own process time). The last column is the ratio of server CPU without
batching to with it.

    .venv/bin/python benchmarks/danmaku.py [--viewers 10,100,250,500] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
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

ROOT = Path(__file__).resolve().parents[1]
PER_WORKER = 125


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, data_dir: str, batch_ms: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir", data_dir,
           "--log-level", "WARNING", "--danmaku-batch-ms", str(batch_ms), "--danmaku-user-rate", "10000",
           "--danmaku-user-burst", "10000", "--danmaku-room-rate", "100000"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_up(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(base + "/api/catalog") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def setup(base: str) -> tuple[str, str]:
    """A creator's free room and one viewer account: (viewer token, sender token)."""
    async with aiohttp.ClientSession() as http:
        async def signup(role: str) -> str:
            async with http.post(base + "/api/auth/signup", json={
                    "email": f"{role}-{time.time_ns()}@bench.org", "password": "benchmark pw", "role": role}) as r:
                return (await r.json())["token"]

        creator, viewer = await signup("creator"), await signup("viewer")
        auth = {"Authorization": f"Bearer {creator}"}
        async with http.post(base + "/api/rooms", headers=auth, json={
                "slug": "bench", "title": "bench", "currency": "USD", "ticket_price": 0}) as r:
            assert r.status == 201, await r.text()

        async def token(login: str) -> str:
            async with http.post(base + "/api/rooms/bench/tokens", json={"scope": "view"},
                                 headers={"Authorization": f"Bearer {login}"}) as r:
                return (await r.json())["token"]

        return await token(viewer), await token(creator)


def viewer_worker(base: str, token: str, count: int, seconds: float, ready: mp.Queue, go: mp.Event,
                  out: mp.Queue) -> None:
    asyncio.run(_viewers(base, token, count, seconds, ready, go, out))


async def _viewers(base, token, count, seconds, ready, go, out) -> None:
    delays: list[float] = []
    frames = 0
    clients = []

    def handler(data):
        nonlocal frames
        now = time.time()
        frames += 1
        for item in data["items"]:
            delays.append(now - float(item["text"].split()[0]))

    for _ in range(count):
        c = socketio.AsyncClient(reconnection=False)
        c.on("danmaku", handler)
        await c.connect(base, auth={"room": "bench", "token": token}, transports=["websocket"], wait_timeout=30)
        clients.append(c)
    ready.put(count)
    while not go.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds + 2.0)
    out.put({"delays": delays, "frames": frames, "clients": count})
    for c in clients:
        await c.disconnect()


async def send(base: str, token: str, rate: float, seconds: float) -> int:
    c = socketio.AsyncClient(reconnection=False)
    await c.connect(base, auth={"room": "bench", "token": token}, transports=["websocket"])
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        target = t0 + sent / rate
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        ack = await c.call("danmaku:send", {"text": f"{time.time():.6f} hello"})
        if ack.get("ok"):
            sent += 1
    await c.disconnect()
    return sent


def run(viewers: int, rate: float, seconds: float, batch_ms: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(port, data_dir, batch_ms)
        workers: list[mp.Process] = []
        try:
            asyncio.run(wait_up(base))
            view_token, send_token = asyncio.run(setup(base))
            ctx = mp.get_context("spawn")
            ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
            left = viewers
            while left > 0:
                n = min(PER_WORKER, left)
                p = ctx.Process(target=viewer_worker, args=(base, view_token, n, seconds, ready, go, out), daemon=True)
                p.start()
                workers.append(p)
                left -= n
            connected = sum(ready.get(timeout=300) for _ in workers)
            proc = psutil.Process(server.pid)
            cpu0 = sum(proc.cpu_times()[:2])
            go.set()
            t0 = time.monotonic()
            sent = asyncio.run(send(base, send_token, rate, seconds))
            elapsed = time.monotonic() - t0
            results = [out.get(timeout=120) for _ in workers]
            cpu = sum(proc.cpu_times()[:2]) - cpu0
        finally:
            for p in workers:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
            server.terminate()
            server.wait(timeout=10)
    delays = sorted(d for r in results for d in r["delays"])
    frames = sum(r["frames"] for r in results)
    return {
        "viewers": connected, "batch_ms": batch_ms, "sent": sent,
        "delivered": len(delays), "expected": sent * connected,
        "p50_ms": statistics.median(delays) * 1000 if delays else None,
        "p99_ms": delays[int(0.99 * (len(delays) - 1))] * 1000 if delays else None,
        "delivered_per_s": len(delays) / elapsed,
        "frames_per_viewer_s": frames / connected / elapsed,
        "server_cpu_pct": 100 * cpu / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="10,100,250,500")
    parser.add_argument("--rate", type=float, default=20.0, help="danmaku per second sent")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.chdir(ROOT)
    rows = []
    header = (f"{'viewers':>7} {'batch':>5} {'sent':>5} {'delivered':>10} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'msg/s':>8} {'frames/v/s':>10} {'cpu %':>6} {'cpu ratio':>9}")
    print(header)
    for n in [int(x) for x in args.viewers.split(",")]:
        pair = {}
        for batch_ms in (100, 0):
            r = run(n, args.rate, args.seconds, batch_ms)
            pair[batch_ms] = r
            rows.append(r)
        for batch_ms, r in pair.items():
            ratio = pair[0]["server_cpu_pct"] / pair[100]["server_cpu_pct"] if batch_ms == 0 else 1.0
            print(f"{r['viewers']:>7} {batch_ms:>5} {r['sent']:>5} {r['delivered']:>5}/{r['expected']:<5}"
                  f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['delivered_per_s']:>8.0f} "
                  f"{r['frames_per_viewer_s']:>10.1f} {r['server_cpu_pct']:>6.1f} {ratio:>9.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
