"""What the cluster seam costs: its primitives in process and on Redis, and Socket.IO's
cross-node messages through ``ClusterManager`` against python-socketio's own
``AsyncRedisManager`` (the baseline it replaces), in one run on one Redis.

    .venv/bin/python benchmarks/cluster.py                 # Redis at 127.0.0.1:6379/7
    .venv/bin/python benchmarks/cluster.py --redis redis://127.0.0.1:6379/7 --ops 2000 --messages 5000

The database given is flushed before and after. Figures are medians of ``--rounds``
rounds (latency per operation in microseconds; messages per second from publish to
the other manager's listener).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis  # noqa: E402
from socketio import AsyncRedisManager  # noqa: E402

from core.cluster import Cluster, LocalCluster, RedisCluster  # noqa: E402
from interaction.socketio_manager import ClusterManager  # noqa: E402


async def per_op_us(ops: int, op: Callable[[int], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for i in range(ops):
        await op(i)
    return (time.perf_counter() - started) / ops * 1e6


async def primitives(cluster: Cluster, ops: int) -> dict[str, float]:
    got = asyncio.Event()
    count = 0

    async def received(message: str) -> None:
        nonlocal count
        count += 1
        got.set()

    await cluster.subscribe("bench", received)

    async def round_trip(i: int) -> None:
        got.clear()
        await cluster.publish("bench", str(i))
        await got.wait()

    return {
        "incr (likes)": await per_op_us(ops, lambda i: cluster.incr("bench:likes", 1, ttl=60)),
        "set_if_absent (tips)": await per_op_us(ops, lambda i: cluster.set_if_absent(f"bench:tip:{i}", "1", ttl=60)),
        "ordered_add, limit 2 (seats)": await per_op_us(
            ops, lambda i: cluster.ordered_add("bench:seats", f"s{i}", limit=2, ttl=60)),
        "hash_incr (presence)": await per_op_us(ops, lambda i: cluster.hash_incr("bench:presence", str(i % 50), 1)),
        "publish -> handler": await per_op_us(ops, round_trip),
    }


async def socketio_rate(make: Callable[[], Any], messages: int) -> float:
    """Messages a second from one manager's ``_publish`` to another's ``_listen``."""
    sender, receiver = make(), make()
    listen = receiver._listen()
    first = asyncio.ensure_future(listen.__anext__())
    await asyncio.sleep(0.3)  # the receiver subscribes
    await sender._publish({"method": "emit", "event": "warmup", "data": [1]})
    await first

    async def send() -> None:  # one after the other, as one node's emits go out
        for i in range(messages):
            await sender._publish({"method": "emit", "event": "likes", "data": [{"total": i, "recent": 1}],
                                   "room": "room:maths", "namespace": "/"})

    started = time.perf_counter()
    sending = asyncio.ensure_future(send())
    for _ in range(messages):
        await listen.__anext__()
    elapsed = time.perf_counter() - started
    await sending
    await listen.aclose()
    for manager in (sender, receiver):
        if isinstance(manager, AsyncRedisManager) and manager.redis is not None:
            await manager.redis.aclose()
    return messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raw = Redis.from_url(args.redis)
    await raw.flushdb()
    try:
        rows: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for name, cluster in (("local", LocalCluster()), ("redis", RedisCluster.from_url(args.redis))):
                for op, us in (await primitives(cluster, args.ops)).items():
                    rows.setdefault(op, {}).setdefault(name, []).append(us)
                await cluster.close()
        print(f"Cluster primitives, µs per operation (median of {args.rounds} x {args.ops})")
        print(f"{'operation':32} {'LocalCluster':>13} {'RedisCluster':>13}")
        for op, by in rows.items():
            print(f"{op:32} {statistics.median(by['local']):13.1f} {statistics.median(by['redis']):13.1f}")

        clusters: list[RedisCluster] = []

        def ours() -> ClusterManager:
            cluster = RedisCluster.from_url(args.redis)
            clusters.append(cluster)
            return ClusterManager(cluster)

        def baseline() -> AsyncRedisManager:
            return AsyncRedisManager(args.redis, channel="bench-socketio")

        rates: dict[str, list[float]] = {"AsyncRedisManager (baseline)": [], "ClusterManager": []}
        for _ in range(args.rounds):
            rates["AsyncRedisManager (baseline)"].append(await socketio_rate(baseline, args.messages))
            rates["ClusterManager"].append(await socketio_rate(ours, args.messages))
            for cluster in clusters:
                await cluster.close()
            clusters.clear()
        base = statistics.median(rates["AsyncRedisManager (baseline)"])
        print(f"\nSocket.IO cross-node messages, publish -> other node's listener "
              f"(median of {args.rounds} x {args.messages})")
        print(f"{'manager':30} {'messages/s':>11} {'vs baseline':>12}")
        for name, values in rates.items():
            print(f"{name:30} {statistics.median(values):11.0f} {statistics.median(values) / base:11.2f}x")
    finally:
        await raw.flushdb()
        await raw.aclose()


if __name__ == "__main__":
    asyncio.run(main())
