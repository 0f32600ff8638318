"""``ClusterBus``: room-level notices every node must act on (bans, settings changes).

In-process by default; with Redis, a pub/sub channel, so a ban issued on node A
disconnects the user's sockets on node B too. Handlers run on every node, the
publishing one included.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Optional

__all__ = ["ClusterBus"]

log = logging.getLogger("stagepass.bus")
Listener = Callable[[dict], Awaitable[None]]


class ClusterBus:
    def __init__(self, redis: Any = None, channel: str = "stagepass:interaction") -> None:
        self._redis = redis
        self._channel = channel
        self._listeners: dict[str, list[Listener]] = {}
        self._pubsub = None
        self._task: Optional[asyncio.Task] = None

    def subscribe(self, kind: str, listener: Listener) -> None:
        self._listeners.setdefault(kind, []).append(listener)

    async def start(self) -> None:
        if self._redis is not None:
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(self._channel)
            self._task = asyncio.create_task(self._listen(), name="interaction-bus")

    async def publish(self, kind: str, **data: Any) -> None:
        message = {"kind": kind, **data}
        if self._redis is None:
            await self._deliver(message)
        else:
            await self._redis.publish(self._channel, json.dumps(message))

    async def _listen(self) -> None:
        async for raw in self._pubsub.listen():
            if raw.get("type") != "message":
                continue
            try:
                message = json.loads(raw["data"])
            except (ValueError, TypeError):
                log.warning("ignoring a malformed bus message")
                continue
            await self._deliver(message)

    async def _deliver(self, message: dict) -> None:
        for listener in self._listeners.get(message.get("kind", ""), []):
            try:
                await listener(message)
            except Exception:
                log.exception("bus listener for %s failed", message.get("kind"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
