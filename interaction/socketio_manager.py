"""``ClusterManager``: python-socketio's pub/sub client manager over the ``Cluster``.

python-socketio's own ``AsyncRedisManager`` builds its Redis client from a URL (its
``_redis_connect`` calls ``Redis.from_url``; no parameter takes an existing client or
pool), so it would open a second pool and a second pub/sub connection. Its base class,
``AsyncPubSubManager``, asks a backend for exactly two things, ``_publish`` and
``_listen``; this manager answers them with the cluster's ``publish`` and ``subscribe``,
so emits to clients on other nodes, and disconnects of their sockets, travel on the
process's one Redis pool and its one pub/sub connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Optional

from socketio.async_pubsub_manager import AsyncPubSubManager

from core.cluster import Cluster, Subscription

__all__ = ["ClusterManager"]

log = logging.getLogger("stagepass.interaction")


class ClusterManager(AsyncPubSubManager):
    name = "stagepass-cluster"

    def __init__(self, cluster: Cluster, channel: str = "socketio") -> None:
        super().__init__(channel=channel, logger=log)
        self.cluster = cluster
        self._subscription: Optional[Subscription] = None

    async def _publish(self, data: Any) -> None:
        """Like ``AsyncRedisManager``: an unreachable Redis is logged, not raised (the
        emit still reaches this node's clients)."""
        try:
            await self.cluster.publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            log.error("Socket.IO: publishing to the cluster failed (%s: %s)", type(exc).__name__, exc)

    async def _listen(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def received(message: str) -> None:
            queue.put_nowait(message)

        while self._subscription is None:
            try:
                self._subscription = await self.cluster.subscribe(self.channel, received)
            except Exception as exc:  # Redis down at the first connection: try again
                log.error("Socket.IO: subscribing to the cluster failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
        try:
            while True:
                yield await queue.get()
        finally:
            await self._subscription.close()
            self._subscription = None

    async def close(self) -> None:
        """End the listening task python-socketio started (``initialize``), if any."""
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
