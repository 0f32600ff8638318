"""Two processes' (or nodes') views of one cluster, for tests of anything built on the
``Cluster`` seam: the same ``LocalCluster`` twice, the control plane's view of its local bus
with a worker's client of it over a real Unix socket, or two ``RedisCluster`` clients on one
Redis database of the machine's."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

from core.cluster import Cluster, LocalCluster, RedisCluster
from tests.support.paywall_fixtures import flushed_redis

KINDS = ("local", "local bus", "redis")


@contextlib.asynccontextmanager
async def two_cluster_views(kind: str, redis_db: int, tmp_path: Path) -> AsyncIterator[tuple[Cluster, Cluster]]:
    """Two views of one cluster of ``kind`` (one of ``KINDS``): ``local`` is one
    ``LocalCluster`` seen twice (one process); ``local bus`` is ``--interaction-workers``
    without Redis (the hub's socket lives in ``tmp_path``); ``redis`` is two processes on
    Redis database ``redis_db``, flushed before and after."""
    if kind == "local":
        one = LocalCluster()
        try:
            yield one, one
        finally:
            await one.close()
    elif kind == "local bus":
        from core.cluster.linked import ClusterHub, HubView, LinkedCluster

        local = LocalCluster()
        hub = ClusterHub(local, str(tmp_path / "bus.sock"))
        await hub.start()
        worker = LinkedCluster(hub.path)
        await worker.start()
        try:
            yield HubView(hub), worker
        finally:
            await worker.close()
            await hub.close()
            await local.close()
    elif kind == "redis":
        async with flushed_redis(redis_db):
            url = f"redis://127.0.0.1:6379/{redis_db}"
            a, b = RedisCluster.from_url(url), RedisCluster.from_url(url)
            try:
                yield a, b
            finally:
                await a.close()
                await b.close()
    else:
        raise ValueError(f"unknown cluster kind {kind!r}: expected one of {KINDS}")
