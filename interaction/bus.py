"""``ClusterBus``: room-level notices every node must act on (bans, settings changes).

In-process by default; with Redis, a pub/sub channel, so a ban issued on node A
disconnects the user's sockets on node B too. Handlers run on every node, the
publishing one included.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from core.pubsub import PubSubListener

__all__ = ["ClusterBus"]

log = logging.getLogger("stagepass.bus")
Listener = Callable[[dict], Awaitable[None]]


class ClusterBus:
    def __init__(self, redis: Any = None, channel: str = "stagepass:interaction") -> None:
        self._redis = redis
        self._channel = channel
        self._listeners: dict[str, list[Listener]] = {}
        self._subscription = PubSubListener(redis, channel, self._received) if redis is not None else None

    def subscribe(self, kind: str, listener: Listener) -> None:
        self._listeners.setdefault(kind, []).append(listener)

    async def start(self) -> None:
        if self._subscription is not None:
            await self._subscription.start()

    async def publish(self, kind: str, **data: Any) -> None:
        message = {"kind": kind, **data}
        if self._redis is None:
            await self._deliver(message)
        else:
            await self._redis.publish(self._channel, json.dumps(message))

    async def _received(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
        except (ValueError, TypeError):
            log.warning("ignoring a malformed bus message")
            return
        await self._deliver(message)

    async def _deliver(self, message: dict) -> None:
        for listener in self._listeners.get(message.get("kind", ""), []):
            try:
                await listener(message)
            except Exception:
                log.exception("bus listener for %s failed", message.get("kind"))

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
