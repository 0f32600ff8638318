"""``PubSubListener``: a Redis pub/sub subscription that survives lost connections.

redis-py's ``pubsub.listen()`` ends with ``ConnectionError`` when the connection drops;
a bare ``async for`` then stops for good and the node silently stops hearing the
cluster (seat evictions, bans). This listener logs, backs off, resubscribes and goes on
until it is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["PubSubListener"]

log = logging.getLogger("stagepass.pubsub")


class PubSubListener:
    def __init__(self, redis: Any, channel: str, on_message: Callable[[bytes | str], Awaitable[None]],
                 max_backoff: float = 5.0) -> None:
        self._redis = redis
        self.channel = channel
        self._on_message = on_message
        self._max_backoff = max_backoff
        self._pubsub: Any = None
        self._task: Optional[asyncio.Task] = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe (so nothing published after this returns is missed) and listen."""
        await self._subscribe()
        self._task = asyncio.create_task(self._run(), name=f"pubsub-{self.channel}")

    async def _subscribe(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self.channel)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for message in self._pubsub.listen():
                    backoff = 0.1
                    if message.get("type") != "message":
                        continue
                    try:
                        await self._on_message(message["data"])
                    except Exception:
                        log.exception("handling a message on %s failed", self.channel)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("lost the Redis subscription to %s (%s); resubscribing", self.channel, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            try:
                await self._subscribe()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("resubscribing to %s failed (%s)", self.channel, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
