"""``ClusterBus``: room-level notices every node must act on (bans, settings changes).

A channel of the ``Cluster``: in process on one node; with Redis, a ban issued on node A
disconnects the user's sockets on node B too. Handlers run on every node, the
publishing one included (after ``start``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Optional

from core.cluster import Cluster, LocalCluster, Subscription

__all__ = ["ClusterBus"]

log = logging.getLogger("stagepass.bus")
Listener = Callable[[dict], Awaitable[None]]


class ClusterBus:
    def __init__(self, cluster: Optional[Cluster] = None, channel: str = "interaction") -> None:
        self._cluster = cluster or LocalCluster()
        self._channel = channel
        self._listeners: dict[str, list[Listener]] = {}
        self._subscription: Optional[Subscription] = None

    def subscribe(self, kind: str, listener: Listener) -> None:
        self._listeners.setdefault(kind, []).append(listener)

    async def start(self) -> None:
        if self._subscription is None:
            self._subscription = await self._cluster.subscribe(self._channel, self._received)

    async def publish(self, kind: str, **data: Any) -> None:
        await self._cluster.publish(self._channel, json.dumps({"kind": kind, **data}))

    async def _received(self, data: str) -> None:
        try:
            message = json.loads(data)
        except (ValueError, TypeError):
            message = None
        if not isinstance(message, dict):
            log.warning("ignoring a malformed bus message")
            return
        for listener in self._listeners.get(message.get("kind", ""), []):
            try:
                await listener(message)
            except Exception:
                log.exception("bus listener for %s failed", message.get("kind"))

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
